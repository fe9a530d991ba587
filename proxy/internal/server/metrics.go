package server

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
)

// durationBuckets are the request-duration histogram's upper bounds, in
// seconds.
var durationBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// metrics holds the proxy's Prometheus metrics and writes them in the
// text exposition format (version 0.0.4): a handful of counters and one
// histogram, which does not need a client library.
type metrics struct {
	mu        sync.Mutex
	requests  map[requestKey]uint64
	durations map[string]*histogram
	authzErrs map[[2]string]uint64 // route, outcome (denied, allowed)
	reloads   map[string]uint64    // result
	rejected  map[string]uint64    // reason a caller's certificate was refused per request
	gauges    func() map[string]float64
}

type requestKey struct {
	route    string
	code     int
	decision string
}

type histogram struct {
	counts []uint64 // per bucket, not cumulative
	sum    float64
	count  uint64
}

func newMetrics(gauges func() map[string]float64) *metrics {
	return &metrics{
		requests: map[requestKey]uint64{}, durations: map[string]*histogram{},
		authzErrs: map[[2]string]uint64{}, reloads: map[string]uint64{}, rejected: map[string]uint64{},
		gauges: gauges,
	}
}

func (m *metrics) request(route string, code int, decision string, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests[requestKey{route, code, decision}]++
	h := m.durations[route]
	if h == nil {
		h = &histogram{counts: make([]uint64, len(durationBuckets)+1)}
		m.durations[route] = h
	}
	s := d.Seconds()
	i, _ := slices.BinarySearch(durationBuckets, s)
	h.counts[i]++
	h.sum += s
	h.count++
}

func (m *metrics) authzError(route, outcome string) {
	m.mu.Lock()
	m.authzErrs[[2]string{route, outcome}]++
	m.mu.Unlock()
}

func (m *metrics) reload(result string) {
	m.mu.Lock()
	m.reloads[result]++
	m.mu.Unlock()
}

func (m *metrics) rejectedCaller(reason string) {
	m.mu.Lock()
	m.rejected[reason]++
	m.mu.Unlock()
}

// label quotes a label value as the text format wants.
func label(v string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
}

func sortedMap[K comparable, V any](m map[K]V, key func(K) string) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b K) int { return strings.Compare(key(a), key(b)) })
	return keys
}

// write renders every metric.
func (m *metrics) write(w io.Writer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprintln(w, "# HELP secinfra_proxy_requests_total Requests answered, by route, status code and decision.")
	fmt.Fprintln(w, "# TYPE secinfra_proxy_requests_total counter")
	for _, k := range sortedMap(m.requests, func(k requestKey) string { return fmt.Sprint(k.route, "\x00", k.code, "\x00", k.decision) }) {
		fmt.Fprintf(w, "secinfra_proxy_requests_total{route=\"%s\",code=\"%d\",decision=\"%s\"} %d\n",
			label(k.route), k.code, k.decision, m.requests[k])
	}
	fmt.Fprintln(w, "# HELP secinfra_proxy_request_duration_seconds Time from the request's headers to the end of its response, by route.")
	fmt.Fprintln(w, "# TYPE secinfra_proxy_request_duration_seconds histogram")
	for _, route := range sortedMap(m.durations, func(k string) string { return k }) {
		h := m.durations[route]
		var cum uint64
		for i, le := range durationBuckets {
			cum += h.counts[i]
			fmt.Fprintf(w, "secinfra_proxy_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %d\n", label(route), le, cum)
		}
		fmt.Fprintf(w, "secinfra_proxy_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %d\n", label(route), h.count)
		fmt.Fprintf(w, "secinfra_proxy_request_duration_seconds_sum{route=\"%s\"} %g\n", label(route), h.sum)
		fmt.Fprintf(w, "secinfra_proxy_request_duration_seconds_count{route=\"%s\"} %d\n", label(route), h.count)
	}
	fmt.Fprintln(w, "# HELP secinfra_proxy_authz_unavailable_total Checks the authorization service could not answer, by route and what the route's on_authz_error did.")
	fmt.Fprintln(w, "# TYPE secinfra_proxy_authz_unavailable_total counter")
	for _, k := range sortedMap(m.authzErrs, func(k [2]string) string { return k[0] + "\x00" + k[1] }) {
		fmt.Fprintf(w, "secinfra_proxy_authz_unavailable_total{route=\"%s\",outcome=\"%s\"} %d\n", label(k[0]), k[1], m.authzErrs[k])
	}
	fmt.Fprintln(w, "# HELP secinfra_proxy_caller_rejected_total Requests refused because the caller's certificate expired or was revoked after its handshake.")
	fmt.Fprintln(w, "# TYPE secinfra_proxy_caller_rejected_total counter")
	for _, k := range sortedMap(m.rejected, func(k string) string { return k }) {
		fmt.Fprintf(w, "secinfra_proxy_caller_rejected_total{reason=\"%s\"} %d\n", k, m.rejected[k])
	}
	fmt.Fprintln(w, "# HELP secinfra_proxy_config_reloads_total Configuration reloads, by result.")
	fmt.Fprintln(w, "# TYPE secinfra_proxy_config_reloads_total counter")
	for _, k := range sortedMap(m.reloads, func(k string) string { return k }) {
		fmt.Fprintf(w, "secinfra_proxy_config_reloads_total{result=\"%s\"} %d\n", k, m.reloads[k])
	}
	if m.gauges != nil {
		g := m.gauges()
		for _, name := range sortedMap(g, func(k string) string { return k }) {
			fmt.Fprintf(w, "# TYPE %s gauge\n%s %g\n", name, name, g[name])
		}
	}
}
