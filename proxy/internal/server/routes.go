package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"

	"github.com/secinfra/secinfra/proxy/config"
	"github.com/secinfra/secinfra/sdk-go/mtls"
)

// table is one configuration's routes and upstream connection pools; a
// reload builds a new one and swaps it in whole.
type table struct {
	mux        *http.ServeMux
	transports []*http.Transport
}

// route is one configured route, ready to serve.
type route struct {
	cfg     *config.Route
	allow   mtls.Authorizer // nil for an authz route
	object  []objectPart    // the authz object template, split
	forward *httputil.ReverseProxy
	// authzTimeout bounds the check, retries included.
	authzTimeout time.Duration
}

// objectPart is literal text, or a path parameter to fill in.
type objectPart struct {
	text  string
	param bool
}

func splitTemplate(t string) []objectPart {
	var parts []objectPart
	for t != "" {
		i := strings.IndexByte(t, '{')
		if i < 0 {
			parts = append(parts, objectPart{text: t})
			break
		}
		j := strings.IndexByte(t[i:], '}') + i
		if i > 0 {
			parts = append(parts, objectPart{text: t[:i]})
		}
		parts = append(parts, objectPart{text: t[i+1 : j], param: true})
		t = t[j+1:]
	}
	return parts
}

// objectFor fills the template from r's path parameters.
func (rt *route) objectFor(r *http.Request) string {
	var b strings.Builder
	for _, p := range rt.object {
		if p.param {
			b.WriteString(r.PathValue(p.text))
		} else {
			b.WriteString(p.text)
		}
	}
	return b.String()
}

// bufferPool lends the reverse proxies their copy buffers.
type bufferPool struct{ pool sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.pool.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32*1024)
}

func (b *bufferPool) Put(buf []byte) { b.pool.Put(&buf) }

var buffers = &bufferPool{}

// newTransport is the connection pool to one upstream.
func newTransport(u *config.Upstream, t config.Timeouts) *http.Transport {
	dialer := &net.Dialer{Timeout: t.Dial.D(), KeepAlive: 30 * time.Second}
	network, address := u.Network, u.Address
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, address)
		},
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: t.UpstreamHeader.D(),
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true, // forward bodies as they are
	}
	if u.Protocol == config.ProtocolH2C {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	return tr
}

// buildTable turns a validated configuration into a routing table; it
// fails on two routes whose patterns conflict.
func (p *Proxy) buildTable(c *config.Config) (*table, error) {
	t := &table{mux: http.NewServeMux()}
	transports := map[string]*http.Transport{}
	for name, u := range c.Upstreams {
		tr := newTransport(u, c.Timeouts)
		transports[name] = tr
		t.transports = append(t.transports, tr)
	}
	for i, rc := range c.Routes {
		rt := &route{cfg: rc, forward: p.reverseProxy(rc, transports[rc.Upstream]), authzTimeout: c.AuthzTimeout.D()}
		if rc.Allow != nil {
			rt.allow = rc.Allow.Authorizer(c.TrustDomain)
		} else {
			rt.object = splitTemplate(rc.Authz.Object)
		}
		for _, pattern := range rc.Patterns() {
			if err := handle(t.mux, pattern, p.routeHandler(rt)); err != nil {
				t.close()
				return nil, fmt.Errorf("routes[%d] (%s): %w", i, rc.Name, err)
			}
		}
	}
	return t, nil
}

// handle registers h, turning ServeMux's panic on a conflict into an error.
func handle(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%v", v)
		}
	}()
	mux.Handle(pattern, h)
	return nil
}

// close releases the table's idle upstream connections.
func (t *table) close() {
	for _, tr := range t.transports {
		tr.CloseIdleConnections()
	}
}

// reverseProxy forwards to upstream with the identity headers set.
func (p *Proxy) reverseProxy(rc *config.Route, tr *http.Transport) *httputil.ReverseProxy {
	name := rc.Name
	return &httputil.ReverseProxy{
		Transport:  tr,
		BufferPool: buffers,
		ErrorLog:   p.stdErrorLog,
		Rewrite: func(pr *httputil.ProxyRequest) {
			// Rewrite runs after hop-by-hop headers (those named in
			// Connection too) and any X-Forwarded-* were removed.
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = "upstream" // the transport dials the configured address
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
			stripOwned(pr.Out.Header)
			ex := exchangeOf(pr.In.Context())
			pr.Out.Header.Set(HeaderCallerID, ex.caller)
			pr.Out.Header.Set(HeaderCallerKind, ex.kind)
			pr.Out.Header.Set(HeaderCallerSerial, ex.serial)
			pr.Out.Header.Set(HeaderRoute, name)
			pr.Out.Header.Set(HeaderRequestID, ex.id)
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			ex := exchangeOf(r.Context())
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				ex.decision = "body_too_large"
				writeError(w, http.StatusRequestEntityTooLarge, "invalid_argument", ex.id,
					fmt.Sprintf("secinfra-proxy: the request body is larger than the route %s allows (%d bytes)", name, tooBig.Limit))
				return
			}
			if r.Context().Err() != nil {
				ex.decision = "client_gone"
				w.WriteHeader(499) // nginx's "client closed request": no one reads it
				return
			}
			ex.decision = "upstream_error"
			p.log.Warn("upstream failed", "route", name, "request_id", ex.id, "error", err.Error())
			writeError(w, http.StatusBadGateway, "unavailable", ex.id,
				"secinfra-proxy: the upstream of route "+name+" did not answer")
		},
	}
}
