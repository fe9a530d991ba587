package server

import (
	"encoding/json"
	"net/http"
	"time"
)

// adminHandler serves the loopback-only admin endpoints: /healthz (the
// process answers), /readyz (it can serve: a valid identity of its own
// and a revocation list loaded) and /metrics (Prometheus text format).
func (p *Proxy) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		problems := p.notReady(time.Now())
		w.Header().Set("Content-Type", "application/json")
		status := http.StatusOK
		if len(problems) > 0 {
			status = http.StatusServiceUnavailable
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"ready": len(problems) == 0, "problems": problems})
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		p.metrics.write(w)
	})
	return mux
}

// notReady lists what keeps the proxy from serving.
func (p *Proxy) notReady(now time.Time) []string {
	problems := []string{}
	if s := p.client.Source().Snapshot(); s == nil || now.After(s.NotAfter) {
		problems = append(problems, "the proxy's own certificate expired and could not be renewed")
	}
	if !p.revocations.loaded() {
		problems = append(problems, "no revocation list loaded yet")
	}
	return problems
}

// gauges are the metrics read at scrape time.
func (p *Proxy) gauges() map[string]float64 {
	now := time.Now()
	g := map[string]float64{}
	if s := p.client.Source().Snapshot(); s != nil {
		g["secinfra_proxy_certificate_expiry_seconds"] = s.NotAfter.Sub(now).Seconds()
	}
	if p.revocations != nil {
		g["secinfra_proxy_crl_age_seconds"] = p.revocations.age(now).Seconds()
	}
	return g
}
