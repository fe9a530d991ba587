package e2e_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/secinfra/secinfra/sdk-go/gen/secinfrav1"
	"github.com/secinfra/secinfra/sdk-go/secinfratest"
)

// One server, one upstream and one proxy serve these subtests; each
// enrols callers of its own.
func TestProxy(t *testing.T) {
	srv := secinfratest.Start(t)
	writeModel(t, srv)
	up := startUpstream(t)
	proxy := startProxy(t, srv, up, "timeouts:\n  upstream_header: 500ms\n")
	billingID, ledgerID := secinfratest.SpiffeID("billing"), secinfratest.SpiffeID("ledger")
	billing := srv.StaticIdentity(t, billingID)
	ledger := srv.StaticIdentity(t, ledgerID)
	billingClient, ledgerClient := caller(t, billing, false), caller(t, ledger, false)
	billingHost := http.Header{"Host": {"billing.internal"}}

	t.Run("a route's allow list admits its services and refuses others", func(t *testing.T) {
		a, err := do(t, billingClient, http.MethodGet, proxy.URL+"/api/v1/charges", nil, billingHost)
		if err != nil || a.Status != http.StatusOK {
			t.Fatalf("billing: %+v, %v", a, err)
		}
		// Over HTTP/2 from the caller, h2c to this upstream, Host kept.
		if a.Seen.Path != "/api/v1/charges" || a.Seen.Host != "billing.internal" || a.Seen.Proto != "HTTP/2.0" {
			t.Fatalf("the upstream saw %+v", a.Seen)
		}
		h := a.Seen.Header
		if h.Get("Secinfra-Caller-Id") != billingID || h.Get("Secinfra-Caller-Kind") != "workload" ||
			h.Get("Secinfra-Route") != "billing-api" || h.Get("Secinfra-Caller-Serial") != billing.Snapshot().Serial {
			t.Fatalf("identity headers: %v", h)
		}
		if h.Get("Request-Id") == "" || h.Get("Request-Id") != a.Header.Get("Request-Id") {
			t.Fatalf("Request-Id to the upstream %q, to the caller %q", h.Get("Request-Id"), a.Header.Get("Request-Id"))
		}
		if a, _ := do(t, ledgerClient, http.MethodGet, proxy.URL+"/api/v1/charges", nil, billingHost); a.Status != http.StatusForbidden || a.Code != "permission_denied" {
			t.Fatalf("ledger: %+v", a)
		}
		// The route is for the host billing.internal and for GET and POST only.
		if a := get(t, billingClient, proxy.URL+"/api/v1/charges"); a.Status != http.StatusNotFound || a.Code != "not_found" {
			t.Fatalf("another host: %+v", a)
		}
		if a, _ := do(t, billingClient, http.MethodDelete, proxy.URL+"/api/v1/charges", nil, billingHost); a.Status != http.StatusNotFound {
			t.Fatalf("DELETE: %+v", a)
		}
	})

	t.Run("an authz route asks the server, through the SDK's decision cache", func(t *testing.T) {
		srv.Grant(t, billingID, "viewer", "dashboard:ops")
		for i := 0; i < 3; i++ {
			if a := get(t, billingClient, proxy.URL+"/dashboards/ops"); a.Status != http.StatusOK || a.Seen.Header.Get("Secinfra-Route") != "dashboards" {
				t.Fatalf("billing on ops: %+v", a)
			}
		}
		if a := get(t, billingClient, proxy.URL+"/dashboards/finance"); a.Status != http.StatusForbidden || a.Code != "permission_denied" {
			t.Fatalf("billing on finance: %+v", a)
		}
		if a := get(t, ledgerClient, proxy.URL+"/dashboards/ops"); a.Status != http.StatusForbidden {
			t.Fatalf("ledger on ops: %+v", a)
		}
		if a, _ := do(t, billingClient, http.MethodPost, proxy.URL+"/dashboards/ops", nil, nil); a.Status != http.StatusNotFound {
			t.Fatalf("POST on a GET route: %+v", a)
		}
		// The server answered the first check; the next two came from the
		// cache. (The access log is flushed within 100 ms.)
		var fromServer, fromCache int
		waitUntil(t, 5*time.Second, "the access log has the three checks", func() bool {
			fromServer, fromCache = 0, 0
			for _, rec := range accessLog(t, proxy) {
				if rec["route"] == "dashboards" && rec["caller"] == billingID && strings.HasSuffix(rec["path"].(string), "/ops") {
					switch rec["authz"] {
					case "server":
						fromServer++
					case "cache":
						fromCache++
					}
				}
			}
			return fromServer+fromCache >= 3
		})
		if fromServer != 1 || fromCache != 2 {
			t.Fatalf("checks answered by the server %d, by the cache %d; want 1 and 2", fromServer, fromCache)
		}
	})

	t.Run("a person under /user/ reaches a route for people, over a Unix socket", func(t *testing.T) {
		// A certificate for spiffe://secinfra.local/user/alice issued through
		// the server's API (join token and CSR), as `secinfra login` will.
		aliceID := secinfratest.SpiffeID("user/alice")
		alice := caller(t, srv.StaticIdentity(t, aliceID), false)
		a := get(t, alice, proxy.URL+"/people/profile")
		if a.Status != http.StatusOK || a.Seen.Network != "unix" || a.Seen.Header.Get("Secinfra-Caller-Kind") != "user" ||
			a.Seen.Header.Get("Secinfra-Caller-Id") != aliceID {
			t.Fatalf("alice: %+v", a)
		}
		if a := get(t, billingClient, proxy.URL+"/people/profile"); a.Status != http.StatusForbidden {
			t.Fatalf("a workload on the people route: %+v", a)
		}
	})

	t.Run("identity headers from the client are stripped", func(t *testing.T) {
		spoof := http.Header{
			"Host":                   {"billing.internal"},
			"Secinfra-Caller-Id":     {secinfratest.SpiffeID("secinfra/admin")},
			"Secinfra_Caller_Kind":   {"user"},
			"SECINFRA-CALLER-GROUPS": {"admins"},
			"Secinfra-Route":         {"admin"},
			"Request-Id":             {"chosen-by-client"},
			"X-Forwarded-For":        {"10.0.0.1"},
			// A hop-by-hop trick: naming our header in Connection must not
			// make the proxy drop the value it sets.
			"Connection": {"Secinfra-Caller-Id"},
		}
		a, err := do(t, caller(t, billing, true), http.MethodGet, proxy.URL+"/api/x", nil, spoof)
		if err != nil || a.Status != http.StatusOK {
			t.Fatalf("%+v, %v", a, err)
		}
		h := a.Seen.Header
		if got := h.Values("Secinfra-Caller-Id"); len(got) != 1 || got[0] != billingID {
			t.Fatalf("Secinfra-Caller-Id = %q", got)
		}
		if h.Get("Secinfra-Caller-Kind") != "workload" || h.Get("Secinfra-Route") != "billing-api" || h.Get("Request-Id") == "chosen-by-client" {
			t.Fatalf("headers: %v", h)
		}
		for name := range h {
			if n := strings.ToLower(name); n == "secinfra_caller_kind" || n == "secinfra-caller-groups" {
				t.Fatalf("the client's %s reached the upstream", name)
			}
		}
		if xff := h.Get("X-Forwarded-For"); xff != "127.0.0.1" {
			t.Fatalf("X-Forwarded-For = %q, want the proxy's own view of the client", xff)
		}
	})

	t.Run("a body over the route's limit is refused", func(t *testing.T) {
		body := strings.Repeat("x", 2048)
		a, _ := do(t, billingClient, http.MethodPost, proxy.URL+"/api/upload", strings.NewReader(body), billingHost)
		if a.Status != http.StatusRequestEntityTooLarge {
			t.Fatalf("declared length: %+v", a)
		}
		// No declared length: the limit holds while the body streams.
		a, _ = do(t, billingClient, http.MethodPost, proxy.URL+"/api/upload", io.MultiReader(strings.NewReader(body)), billingHost)
		if a.Status != http.StatusRequestEntityTooLarge {
			t.Fatalf("streamed: %+v", a)
		}
		a, _ = do(t, billingClient, http.MethodPost, proxy.URL+"/api/upload", strings.NewReader(body[:512]), billingHost)
		if a.Status != http.StatusOK || a.Seen.Body != 512 {
			t.Fatalf("under the limit: %+v", a)
		}
	})

	t.Run("an upstream slower than timeouts.upstream_header gets 502", func(t *testing.T) {
		start := time.Now()
		a, err := do(t, billingClient, http.MethodGet, proxy.URL+"/api/slow", nil, billingHost)
		if err != nil || a.Status != http.StatusBadGateway || a.Code != "unavailable" {
			t.Fatalf("%+v, %v", a, err)
		}
		if took := time.Since(start); took > 1400*time.Millisecond {
			t.Fatalf("the proxy answered after %s, not at its 500 ms timeout", took)
		}
	})

	t.Run("WebSockets pass through", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		wsURL := "wss" + strings.TrimPrefix(proxy.URL, "https") + "/ws/room1"
		conn, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPClient: caller(t, billing, true)})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.CloseNow()
		for _, msg := range []string{"hello", "again"} {
			if err := conn.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			_, got, err := conn.Read(ctx)
			if err != nil || string(got) != "echo: "+msg {
				t.Fatalf("read %q, %v", got, err)
			}
		}
		conn.Close(websocket.StatusNormalClosure, "")
		_, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPClient: caller(t, ledger, true)})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("ledger's WebSocket: %v, %v", resp, err)
		}
	})

	t.Run("a caller of another CA is refused at the handshake", func(t *testing.T) {
		other := secinfratest.Start(t) // its own CA, the same trust domain name
		cert := other.StaticIdentity(t, billingID).Snapshot().TLSCertificate()
		// This client does not check the proxy: the test is of the proxy's side.
		foreign := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			Certificates: []tls.Certificate{*cert}, InsecureSkipVerify: true, //nolint:gosec // see above
		}}}
		_, err := do(t, foreign, http.MethodGet, proxy.URL+"/api/x", nil, billingHost)
		if err == nil {
			t.Fatal("a certificate of another CA was accepted")
		}
		waitUntil(t, 5*time.Second, "the proxy logs the chain refusal", func() bool {
			return strings.Contains(proxy.Logs(), "the peer "+billingID+" was refused (chain rule)")
		}, proxy.Logs)
	})

	t.Run("a revoked caller is refused on its open connection and on new ones", func(t *testing.T) {
		bobID := secinfratest.SpiffeID("user/bob")
		bob := srv.StaticIdentity(t, bobID)
		client := caller(t, bob, true)
		if a := get(t, client, proxy.URL+"/people/x"); a.Status != http.StatusOK {
			t.Fatalf("before: %+v", a)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := srv.Admin(t).Identity.Revoke(ctx, &secinfrav1.RevokeRequest{SpiffeID: &bobID, Reason: "proxy e2e"}); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 5*time.Second, "the proxy refuses the revoked caller", func() bool {
			a, err := do(t, client, http.MethodGet, proxy.URL+"/people/x", nil, nil)
			return err == nil && a.Status == http.StatusUnauthorized && a.Code == "unauthenticated"
		})
		if a := get(t, caller(t, bob, true), proxy.URL+"/people/x"); a.Status != http.StatusUnauthorized {
			t.Fatalf("a new connection: %+v", a)
		}
	})

	t.Run("an expired caller is refused on its open connection and at the handshake", func(t *testing.T) {
		srv.Control(t, http.MethodPost, "/_test/ca/leaf-ttl", map[string]int{"seconds": 3}, nil)
		carol := srv.StaticIdentity(t, secinfratest.SpiffeID("user/carol"))
		srv.Control(t, http.MethodPost, "/_test/ca/leaf-ttl", map[string]int{"seconds": 3600}, nil)
		client := caller(t, carol, true)
		if a := get(t, client, proxy.URL+"/people/x"); a.Status != http.StatusOK {
			t.Fatalf("while valid: %+v", a)
		}
		time.Sleep(time.Until(carol.Snapshot().NotAfter) + 1100*time.Millisecond)
		// The kept-alive connection was verified when it was made; the
		// proxy checks the certificate again on every request.
		a, err := do(t, client, http.MethodGet, proxy.URL+"/people/x", nil, nil)
		if err != nil || a.Status != http.StatusUnauthorized || !a.Close {
			t.Fatalf("on the open connection: %+v, %v", a, err)
		}
		if _, err := do(t, client, http.MethodGet, proxy.URL+"/people/x", nil, nil); err == nil {
			t.Fatal("a new connection with an expired certificate was accepted")
		}
	})

	t.Run("SIGHUP reloads the routes; a bad file changes nothing", func(t *testing.T) {
		original, err := os.ReadFile(proxy.Config)
		if err != nil {
			t.Fatal(err)
		}
		added := string(original) + `
  - name: added
    path: /added/{x}
    upstream: app
    allow:
      spiffe_ids: [` + ledgerID + `]
`
		if err := os.WriteFile(proxy.Config, []byte(added), 0o644); err != nil {
			t.Fatal(err)
		}
		proxy.signal(t, syscall.SIGHUP)
		waitUntil(t, 5*time.Second, "the added route serves", func() bool {
			return get(t, ledgerClient, proxy.URL+"/added/1").Status == http.StatusOK
		})
		bad := strings.Replace(added, "path: /added/{x}", "path: /added/{x}\n    colour: blue", 1)
		if err := os.WriteFile(proxy.Config, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		proxy.signal(t, syscall.SIGHUP)
		waitUntil(t, 5*time.Second, "the refusal is logged", func() bool {
			return strings.Contains(proxy.Logs(), "config reload refused") && strings.Contains(proxy.Logs(), "field colour not found")
		})
		if a := get(t, ledgerClient, proxy.URL+"/added/1"); a.Status != http.StatusOK {
			t.Fatalf("after a bad reload: %+v", a)
		}
		metrics := scrape(t, proxy)
		for _, want := range []string{
			`secinfra_proxy_config_reloads_total{result="ok"} 1`,
			`secinfra_proxy_config_reloads_total{result="failed"} 1`,
		} {
			if !strings.Contains(metrics, want) {
				t.Fatalf("metrics lack %s:\n%s", want, metrics)
			}
		}
	})

	t.Run("health, readiness, metrics and the access log", func(t *testing.T) {
		for _, path := range []string{"/healthz", "/readyz"} {
			resp, err := http.Get(proxy.Admin + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: HTTP %d", path, resp.StatusCode)
			}
		}
		metrics := scrape(t, proxy)
		for _, want := range []string{
			`secinfra_proxy_requests_total{route="dashboards",code="200",decision="authz_allowed"} 3`,
			`secinfra_proxy_requests_total{route="billing-api",code="403",decision="denied"}`,
			`secinfra_proxy_caller_rejected_total{reason="certificate_revoked"}`,
			`secinfra_proxy_caller_rejected_total{reason="certificate_expired"} 1`,
			`secinfra_proxy_request_duration_seconds_count{route="dashboards"}`,
			"secinfra_proxy_certificate_expiry_seconds ",
		} {
			if !strings.Contains(metrics, want) {
				t.Fatalf("metrics lack %s:\n%s", want, metrics)
			}
		}
		for _, rec := range accessLog(t, proxy) {
			if rec["msg"] != "request" || rec["request_id"] == "" || rec["status"] == nil {
				t.Fatalf("access log line %v", rec)
			}
		}
	})
}

// accessLog is the proxy's access log, one JSON object per line.
func accessLog(t *testing.T, p *proxyProcess) []map[string]any {
	t.Helper()
	var out []map[string]any
	scanner := bufio.NewScanner(strings.NewReader(p.Stdout()))
	for scanner.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(scanner.Bytes(), &rec); err != nil {
			t.Fatalf("access log line %q is not JSON: %v", scanner.Text(), err)
		}
		out = append(out, rec)
	}
	return out
}

func scrape(t *testing.T, p *proxyProcess) string {
	t.Helper()
	resp, err := http.Get(p.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// With the authorization server down, a route fails closed (503) unless
// it says on_authz_error: allow; a decision still fresh in the cache is
// served without the server.
func TestAuthzServerDown(t *testing.T) {
	srv := secinfratest.Start(t)
	writeModel(t, srv)
	proxy := startProxy(t, srv, startUpstream(t), "")
	billingID := secinfratest.SpiffeID("billing")
	srv.Grant(t, billingID, "viewer", "dashboard:ops")
	client := caller(t, srv.StaticIdentity(t, billingID), false)
	if a := get(t, client, proxy.URL+"/dashboards/ops"); a.Status != http.StatusOK {
		t.Fatalf("before: %+v", a)
	}
	srv.Stop()

	if a := get(t, client, proxy.URL+"/dashboards/ops"); a.Status != http.StatusOK {
		t.Fatalf("a fresh cached decision, server down: %+v", a)
	}
	a := get(t, client, proxy.URL+"/dashboards/new")
	if a.Status != http.StatusServiceUnavailable || a.Code != "unavailable" {
		t.Fatalf("fail closed: %+v", a)
	}
	a = get(t, client, proxy.URL+"/open/new")
	if a.Status != http.StatusOK || a.Seen.Header.Get("Secinfra-Route") != "reports-open" {
		t.Fatalf("on_authz_error: allow: %+v", a)
	}
	metrics := scrape(t, proxy)
	for _, want := range []string{
		`secinfra_proxy_authz_unavailable_total{route="dashboards",outcome="denied"} 1`,
		`secinfra_proxy_authz_unavailable_total{route="reports-open",outcome="allowed"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Fatalf("metrics lack %s:\n%s", want, metrics)
		}
	}
}

// The proxy renews its own certificate every ~2 s while callers keep
// sending requests over new and kept-alive connections: no request fails,
// and the callers see several of the proxy's certificates. Bounded: 8 s.
func TestRotationUnderLoad(t *testing.T) {
	srv := secinfratest.Start(t)
	writeModel(t, srv)
	billingID := secinfratest.SpiffeID("billing")
	srv.Grant(t, billingID, "viewer", "dashboard:ops")
	billing := srv.StaticIdentity(t, billingID) // 1 h, issued before the TTL drops
	srv.Control(t, http.MethodPost, "/_test/ca/leaf-ttl", map[string]int{"seconds": 4}, nil)
	proxy := startProxy(t, srv, startUpstream(t), "")

	const workers, perConnection = 4, 20
	deadline := time.Now().Add(8 * time.Second)
	type result struct {
		requests int
		serials  map[string]bool
		err      error
	}
	results := make(chan result, workers)
	for w := 0; w < workers; w++ {
		go func() {
			r := result{serials: map[string]bool{}}
			client := caller(t, billing, w%2 == 0)
			for time.Now().Before(deadline) && r.err == nil {
				resp, err := client.Get(proxy.URL + "/dashboards/ops")
				if err != nil {
					r.err = err
					break
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					r.err = errors.New(resp.Status)
					break
				}
				r.serials[resp.TLS.PeerCertificates[0].SerialNumber.Text(16)] = true
				r.requests++
				if r.requests%perConnection == 0 {
					client.CloseIdleConnections() // the next request makes a new handshake
				}
			}
			results <- r
		}()
	}
	total, serials := 0, map[string]bool{}
	for w := 0; w < workers; w++ {
		r := <-results
		if r.err != nil {
			t.Errorf("a request failed after %d: %v", r.requests, r.err)
		}
		total += r.requests
		for s := range r.serials {
			serials[s] = true
		}
	}
	if len(serials) < 3 {
		t.Fatalf("the callers saw %d proxy certificates in 8 s, want at least 3 (renewal every ~2 s)", len(serials))
	}
	t.Logf("%d requests, %d proxy certificates, no failure", total, len(serials))
}
