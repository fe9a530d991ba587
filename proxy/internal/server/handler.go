package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/secinfra/secinfra/sdk-go/gen/secinfrav1"
	"github.com/secinfra/secinfra/sdk-go/mtls"
	"github.com/secinfra/secinfra/sdk-go/rpc"

	"github.com/secinfra/secinfra/proxy/config"
)

// exchange is what the proxy learns about one request; the access log
// line and the metrics are written from it.
type exchange struct {
	id       string
	caller   string
	kind     string
	serial   string
	route    string
	decision string
	authz    string // "", "cache" or "server"
}

type exchangeKey struct{}

func exchangeOf(ctx context.Context) *exchange {
	if ex, ok := ctx.Value(exchangeKey{}).(*exchange); ok {
		return ex
	}
	return &exchange{}
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// writeError answers with the platform's one error envelope.
func writeError(w http.ResponseWriter, status int, code, requestID, message string) {
	body, _ := json.Marshal(map[string]any{"error": map[string]string{
		"code": code, "message": message, "request_id": requestID}})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set(HeaderRequestID, requestID)
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// recorder keeps the status and size of a response. Unwrap lets
// http.ResponseController reach the connection (Hijack for WebSockets,
// Flush for streams).
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// ServeHTTP checks the caller's certificate again (the handshake checked
// it when the connection was made, a request may come much later), finds
// the route and lets it decide and forward; then it writes the access log
// line and the metrics.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ex := &exchange{id: newRequestID()}
	rec := &recorder{ResponseWriter: w}
	r = r.WithContext(context.WithValue(r.Context(), exchangeKey{}, ex))
	defer func() {
		status := rec.status
		if status == 0 {
			status = http.StatusSwitchingProtocols // a hijacked WebSocket
			if r.Header.Get("Upgrade") == "" {
				status = http.StatusOK
			}
		}
		elapsed := time.Since(start)
		route := ex.route
		if route == "" {
			route = "-"
		}
		p.metrics.request(route, status, ex.decision, elapsed)
		p.access.LogAttrs(context.Background(), slog.LevelInfo, "request",
			slog.String("request_id", ex.id), slog.String("caller", ex.caller), slog.String("caller_kind", ex.kind),
			slog.String("route", ex.route), slog.String("method", r.Method), slog.String("host", r.Host),
			slog.String("path", r.URL.Path), slog.String("proto", r.Proto), slog.Int("status", status),
			slog.Int64("bytes", rec.bytes), slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
			slog.String("decision", ex.decision), slog.String("authz", ex.authz), slog.String("remote", r.RemoteAddr))
	}()
	if !p.checkCaller(rec, r, ex) {
		return
	}
	t := p.table.Load()
	if _, pattern := t.mux.Handler(r); pattern == "" {
		ex.decision = "no_route"
		writeError(rec, http.StatusNotFound, "not_found", ex.id,
			fmt.Sprintf("secinfra-proxy: no route matches %s %s%s", r.Method, r.Host, r.URL.Path))
		return
	}
	t.mux.ServeHTTP(rec, r)
}

// checkCaller reads the verified caller from the connection and refuses
// it when its certificate expired or was revoked since the handshake.
func (p *Proxy) checkCaller(w http.ResponseWriter, r *http.Request, ex *exchange) bool {
	id, ok := mtls.PeerID(r)
	if !ok {
		ex.decision = "unauthenticated"
		writeError(w, http.StatusUnauthorized, "unauthenticated", ex.id, "secinfra-proxy: no verified client certificate")
		return false
	}
	leaf := r.TLS.PeerCertificates[0]
	ex.caller, ex.kind = id, callerKind(id, p.trustDomain)
	ex.serial = strings.ToLower(leaf.SerialNumber.Text(16))
	refuse := func(reason, message string) bool {
		ex.decision = reason
		p.metrics.rejectedCaller(reason)
		// The connection's certificate is no longer good: close it, so
		// that the client makes a new handshake with a new one.
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusUnauthorized, "unauthenticated", ex.id, message)
		return false
	}
	if time.Now().After(leaf.NotAfter) {
		return refuse("certificate_expired", "secinfra-proxy: the client certificate expired at "+
			leaf.NotAfter.UTC().Format(time.RFC3339)+"; reconnect with a renewed one")
	}
	if !p.revocations.loaded() {
		ex.decision = "revocations_not_loaded"
		writeError(w, http.StatusServiceUnavailable, "unavailable", ex.id,
			"secinfra-proxy: the revocation list is not loaded yet; retry shortly")
		return false
	}
	if p.revocations.revoked(ex.serial) {
		return refuse("certificate_revoked", "secinfra-proxy: the client certificate (serial "+ex.serial+") is revoked")
	}
	return true
}

// routeHandler decides whether the caller may use rt, then forwards.
func (p *Proxy) routeHandler(rt *route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ex := exchangeOf(r.Context())
		ex.route = rt.cfg.Name
		if !p.decide(w, r, rt, ex) {
			return
		}
		if r.ContentLength > rt.cfg.MaxBodyBytes {
			ex.decision = "body_too_large"
			writeError(w, http.StatusRequestEntityTooLarge, "invalid_argument", ex.id,
				fmt.Sprintf("secinfra-proxy: the request body is larger than the route %s allows (%d bytes)", rt.cfg.Name, rt.cfg.MaxBodyBytes))
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, rt.cfg.MaxBodyBytes)
		}
		w.Header().Set(HeaderRequestID, ex.id)
		rt.forward.ServeHTTP(w, r)
	})
}

// decide applies the route's rule: the allow list, or the authz check
// through the SDK's decision cache. When the check cannot be answered
// (the server is unreachable, slow or failing) the route's on_authz_error
// decides; any other error denies.
func (p *Proxy) decide(w http.ResponseWriter, r *http.Request, rt *route, ex *exchange) bool {
	if rt.allow != nil {
		if err := rt.allow.Authorize(ex.caller, nil); err != nil {
			ex.decision = "denied"
			writeError(w, http.StatusForbidden, "permission_denied", ex.id,
				fmt.Sprintf("secinfra-proxy: %s may not use the route %s", ex.caller, rt.cfg.Name))
			return false
		}
		ex.decision = "allowed"
		return true
	}
	object := rt.objectFor(r)
	var meta rpc.Meta
	resp, err := p.client.Authz.Check(r.Context(), &secinfrav1.CheckRequest{
		TupleKey: &secinfrav1.TupleKey{User: "workload:" + ex.caller, Relation: rt.cfg.Authz.Relation, Object: object},
	}, rpc.WithDeadline(rt.authzTimeout), rpc.WithMeta(&meta))
	switch {
	case err == nil:
		ex.authz = "server"
		if meta.FromCache {
			ex.authz = "cache"
		}
		if resp.Allowed {
			ex.decision = "authz_allowed"
			return true
		}
		ex.decision = "authz_denied"
		writeError(w, http.StatusForbidden, "permission_denied", ex.id,
			fmt.Sprintf("secinfra-proxy: %s is not %s of %s", ex.caller, rt.cfg.Authz.Relation, object))
		return false
	case unreachable(err) && rt.cfg.OnAuthzError == config.OnAuthzErrorAllow:
		ex.decision, ex.authz = "authz_unavailable_allowed", "error"
		p.metrics.authzError(rt.cfg.Name, "allowed")
		p.log.Warn("authorization unavailable; the route allows on error", "route", rt.cfg.Name,
			"request_id", ex.id, "error", err.Error())
		return true
	case unreachable(err):
		ex.decision, ex.authz = "authz_unavailable_denied", "error"
		p.metrics.authzError(rt.cfg.Name, "denied")
		p.log.Warn("authorization unavailable; denied (fail closed)", "route", rt.cfg.Name,
			"request_id", ex.id, "error", err.Error())
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "unavailable", ex.id,
			"secinfra-proxy: the authorization service did not answer; denied (the route fails closed)")
		return false
	default:
		ex.decision, ex.authz = "authz_error", "error"
		p.log.Warn("authorization check refused", "route", rt.cfg.Name, "request_id", ex.id, "error", err.Error())
		writeError(w, http.StatusForbidden, "permission_denied", ex.id,
			fmt.Sprintf("secinfra-proxy: the check %s on %s could not be made; denied", rt.cfg.Authz.Relation, object))
		return false
	}
}

// unreachable reports whether err means the authorization service could
// not answer (as opposed to answering with a refusal of the question).
func unreachable(err error) bool {
	var e *rpc.Error
	if !errors.As(err, &e) {
		return true // a context deadline, a dial error outside the SDK
	}
	switch e.Kind {
	case rpc.KindUnavailable, rpc.KindTransport, rpc.KindDeadlineExceeded, rpc.KindRateLimited,
		rpc.KindInternal, rpc.KindIdentityExpired:
		return true
	}
	return false
}
