// Package transport is the client's connections and TLS, and nothing else
// (spec 8.5, 9.6, 10.3): a connection pool for mTLS calls and one for calls
// without a client certificate, each bound to one identity snapshot and
// trust bundle; TLS handshakes that ask the identity source for the current
// snapshot on every handshake; and the server's verification by its chain
// to the bundle and its SPIFFE ID, never by host name.
//
// It sends one HTTP exchange at a time and reads the whole answer. Whether
// to try again, the cache and what an answer means belong to internal/call.
package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"time"

	"github.com/secinfra/secinfra/sdk-go/identity"
)

// DefaultMaxIdleConns is the idle connections kept per server and pool.
const DefaultMaxIdleConns = 16

// DefaultIdleTimeout is how long an idle connection is kept for reuse. It is
// below the reference server's 15 s (idle_timeout_seconds), so the client
// gives a connection up before the server closes it, never sending a request
// into a close it has not seen yet; and as near to it as the Java SDK's, since
// auth-NONE connections are worth keeping as long as the server allows (spec
// 10.3.4).
const DefaultIdleTimeout = 10 * time.Second

// Config configures a Transport.
type Config struct {
	// Source gives identity and trust on every handshake (required).
	Source identity.Source
	// Now is the clock certificates are verified at (default time.Now).
	Now func() time.Time
	// IdleTimeout is how long an idle connection is kept for reuse (default
	// DefaultIdleTimeout).
	IdleTimeout time.Duration
}

// Transport holds the connection pools; safe for concurrent use.
type Transport struct {
	cfg Config

	mu    sync.Mutex
	pools map[bool]*pool // by mTLS
}

// pool is one http.Transport and the snapshot and bundle it was made for.
type pool struct {
	key string
	rt  *http.Transport
}

// New checks cfg and returns a transport without connections.
func New(cfg Config) (*Transport, error) {
	if cfg.Source == nil {
		return nil, errors.New("secinfra: transport: an identity source is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	return &Transport{cfg: cfg, pools: map[bool]*pool{}}, nil
}

// Request is one attempt's HTTP request.
type Request struct {
	// Method and URL say what to ask.
	Method, URL string
	// Header is sent as is.
	Header http.Header
	// Body is the request body; nil for none.
	Body []byte
	// MTLS: present the client's certificate (the descriptor's auth).
	MTLS bool
	// Snapshot is the identity an mTLS request is made with: the pool
	// follows it, so a new snapshot gets new connections (spec 9.6).
	Snapshot *identity.Snapshot
	// Timeout bounds the attempt, answer body included.
	Timeout time.Duration
}

// Response is a whole answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Failure is an attempt that got no whole answer.
type Failure struct {
	// Err is what went wrong; an *identity.VerificationError when the
	// server failed verification.
	Err error
	// Sent: the request was, or may have been, sent (a connection was had).
	Sent bool
	// Timeout: the attempt ran out of time.
	Timeout bool
}

// Error is the underlying error's.
func (f *Failure) Error() string { return f.Err.Error() }

// Unwrap returns the underlying error.
func (f *Failure) Unwrap() error { return f.Err }

// Send makes one attempt and reads the whole answer within req.Timeout
// (and ctx): getting a connection, the TLS handshake included, sending and
// receiving (spec 5.2.2). An attempt that runs out of time is abandoned and
// its connection closed, a connection still being made too (5.2.3).
func (t *Transport) Send(ctx context.Context, req Request) (*Response, *Failure) {
	rt := t.roundTripper(req.MTLS, req.Snapshot)
	ctx, cancel := context.WithTimeout(ctx, req.Timeout)
	defer cancel()
	ctx = context.WithValue(ctx, attemptKey{}, ctx)
	var mu sync.Mutex
	gotConn := false
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) {
		mu.Lock()
		gotConn = true
		mu.Unlock()
	}}
	hreq, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), req.Method, req.URL, nil)
	if err != nil {
		return nil, &Failure{Err: err}
	}
	hreq.Header = req.Header.Clone()
	// A body without GetBody makes the request non-replayable, so net/http
	// never re-sends it on its own: every attempt is the caller's, numbered
	// (spec 3.1). A body-less request gets an empty one, which net/http
	// probes and drops, sending no body and no Content-Length.
	if req.Body != nil {
		hreq.Body = io.NopCloser(bytes.NewReader(req.Body))
		hreq.ContentLength = int64(len(req.Body))
	} else {
		hreq.Body = emptyBody{}
		hreq.ContentLength = 0
	}
	hreq.GetBody = nil
	resp, err := rt.RoundTrip(hreq)
	sent := func() bool { mu.Lock(); defer mu.Unlock(); return gotConn }
	timedOut := func() bool { return errors.Is(ctx.Err(), context.DeadlineExceeded) }
	if err != nil {
		return nil, &Failure{Err: err, Sent: sent(), Timeout: timedOut()}
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, &Failure{Err: err, Sent: true, Timeout: timedOut()}
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: data}, nil
}

// Close closes the pooled idle connections.
func (t *Transport) Close() {
	t.mu.Lock()
	pools := t.pools
	t.pools = map[bool]*pool{}
	t.mu.Unlock()
	for _, p := range pools {
		p.rt.CloseIdleConnections()
	}
}

// roundTripper returns the pool for mTLS or anonymous calls bound to the
// current bundle (and, for mTLS, snap), retiring an outdated one.
func (t *Transport) roundTripper(mtls bool, snap *identity.Snapshot) *http.Transport {
	bundle := t.cfg.Source.Bundle()
	key := bundle.Fingerprint()
	if mtls && snap != nil {
		key += "|" + snap.Serial
	}
	t.mu.Lock()
	held := t.pools[mtls]
	if held != nil && held.key == key {
		t.mu.Unlock()
		return held.rt
	}
	p := &pool{key: key, rt: t.newRoundTripper(mtls)}
	t.pools[mtls] = p
	t.mu.Unlock()
	if held != nil {
		// Idle connections close now; busy ones close once they finish,
		// since a retired pool never gets another request.
		held.rt.CloseIdleConnections()
	}
	return p.rt
}

func (t *Transport) newRoundTripper(mtls bool) *http.Transport {
	src := t.cfg.Source
	conf := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Host names are never what is verified (spec 8.5.3): the callback
		// below checks the chain against the bundle and the SPIFFE ID.
		InsecureSkipVerify: true, //nolint:gosec // replaced by VerifyPeerCertificate
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			return identity.VerifyServer(raw, src.Bundle(), src.ServerID(), t.cfg.Now())
		},
	}
	if mtls {
		conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			// Chain and key come from one snapshot, asked on every handshake.
			if s := src.Snapshot(); s != nil {
				return s.TLSCertificate(), nil
			}
			return &tls.Certificate{}, nil
		}
	}
	dialer := &net.Dialer{KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:               nil,
		DialTLSContext:      dialTLS(dialer, conf),
		ForceAttemptHTTP2:   false,
		MaxIdleConns:        DefaultMaxIdleConns,
		MaxIdleConnsPerHost: DefaultMaxIdleConns,
		IdleConnTimeout:     t.cfg.IdleTimeout,
		DisableCompression:  true,
	}
}

// attemptKey is the context key of the attempt a connection is made for.
type attemptKey struct{}

// dialTLS returns a dialer that connects and completes the TLS handshake
// within the attempt that asked for the connection (spec 5.2.2).
//
// net/http dials on a context cut loose from the request's, so that a
// connection finished after its request gave up can still serve the next
// one; the attempt would end on time, but its handshake would go on with no
// bound and its connection stay open (5.2.3). The dial context keeps the
// request's values, so the attempt's context, carried as one, brings the
// bound back: when the attempt ends, a dial or handshake still under way is
// abandoned and its connection closed.
func dialTLS(dialer *net.Dialer, conf *tls.Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		if attempt, ok := ctx.Value(attemptKey{}).(context.Context); ok {
			stop := context.AfterFunc(attempt, cancel)
			defer stop()
		}
		raw, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		c := conf.Clone()
		if host, _, err := net.SplitHostPort(addr); err == nil {
			c.ServerName = host // SNI, as net/http sends it; never verified
		}
		conn := tls.Client(raw, c)
		if err := conn.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, err
		}
		return conn, nil
	}
}

type emptyBody struct{}

// Read reports the end at once.
func (emptyBody) Read([]byte) (int, error) { return 0, io.EOF }

// Close does nothing.
func (emptyBody) Close() error { return nil }
