// Package transport is the runtime behind every generated client: it
// implements rpc.Invoker over HTTPS with mTLS (spec 2-7, 10.3).
//
// One call: encode the request; answer cacheable reads from the cache when
// fresh, revalidate them when stale (single-flight per key), fall back to a
// stale value within stale-if-error; otherwise attempt the request with one
// Idempotency-Key for every attempt, Secinfra-Attempt numbering, a
// per-attempt timeout and a per-call deadline, retrying as retry.Decide says
// and as the client's budget allows. TLS callbacks ask the identity source
// on every handshake; connection pools are bound to one identity snapshot
// and bundle, and a rotation retires the old pool (its idle connections are
// closed, busy ones close when they finish).
package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/secinfra/secinfra/sdk-go/identity"
	"github.com/secinfra/secinfra/sdk-go/internal/cache"
	"github.com/secinfra/secinfra/sdk-go/internal/retry"
	"github.com/secinfra/secinfra/sdk-go/rpc"
)

// Header names.
const (
	AttemptHeader     = "Secinfra-Attempt"
	IdempotencyHeader = "Idempotency-Key"
	RequestIDHeader   = "Request-Id"
	// revisionField is the response field holding an authz revision token.
	revisionField = "revision"
)

// DefaultMaxIdleConns is the idle connections kept per server and pool.
const DefaultMaxIdleConns = 16

// Config configures a Transport.
type Config struct {
	// BaseURL is the server's https:// URL.
	BaseURL string
	// Source gives identity and trust on every handshake.
	Source identity.Source
	// Policy is the client's retry policy.
	Policy retry.Policy
	// Budget is the client's retry budget.
	Budget *retry.Budget
	// Cache is the client's response cache.
	Cache *cache.Cache
	// UseCache is the client's default for cacheable calls.
	UseCache bool
	// UserAgent is sent on every attempt.
	UserAgent string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Jitter draws uniformly from [0, 1) (required).
	Jitter func() float64
	// Sleep waits d or until ctx ends (default: a timer).
	Sleep func(ctx context.Context, d time.Duration) error
	// NewIdempotencyKey makes a UUIDv4 (default: crypto/rand).
	NewIdempotencyKey func() string
}

// Transport implements rpc.Invoker; safe for concurrent use.
type Transport struct {
	cfg     Config
	base    string
	flights cache.Group[flightResult]

	mu     sync.Mutex
	pools  map[bool]*pool
	closed bool
}

type pool struct {
	key string
	rt  *http.Transport
}

type flightResult struct {
	body []byte
	meta rpc.Meta
}

// New checks cfg and returns a transport.
func New(cfg Config) (*Transport, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("secinfra: transport: the server URL must be https://host[:port], got %q", cfg.BaseURL)
	}
	if cfg.Source == nil || cfg.Budget == nil || cfg.Cache == nil {
		return nil, errors.New("secinfra: transport: source, budget and cache are required")
	}
	if err := cfg.Policy.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Jitter == nil {
		return nil, errors.New("secinfra: transport: a jitter source is required")
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	if cfg.NewIdempotencyKey == nil {
		cfg.NewIdempotencyKey = NewUUID
	}
	t := &Transport{cfg: cfg, base: strings.TrimRight(cfg.BaseURL, "/"), pools: map[bool]*pool{}}
	var lastID string
	if s := cfg.Source.Snapshot(); s != nil {
		lastID = s.SpiffeID
	}
	var idMu sync.Mutex
	cfg.Source.Subscribe(func(e identity.Event) {
		if e.Snapshot == nil {
			return
		}
		idMu.Lock()
		changed := lastID != "" && lastID != e.Snapshot.SpiffeID
		lastID = e.Snapshot.SpiffeID
		idMu.Unlock()
		if changed {
			cfg.Cache.Clear() // answers were given to the old identity (spec 7.11.4)
		}
	})
	return t, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close closes pooled connections and drops the cache's entries.
func (t *Transport) Close() {
	t.mu.Lock()
	pools := t.pools
	t.pools = map[bool]*pool{}
	t.closed = true
	t.mu.Unlock()
	for _, p := range pools {
		p.rt.CloseIdleConnections()
	}
	t.cfg.Cache.Clear()
}

// Budget is the client's retry budget.
func (t *Transport) Budget() *retry.Budget { return t.cfg.Budget }

// roundTripper returns the pool for mTLS or anonymous calls bound to the
// current snapshot and bundle, retiring an outdated one.
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
		DialContext:         dialer.DialContext,
		TLSClientConfig:     conf,
		ForceAttemptHTTP2:   false,
		MaxIdleConns:        DefaultMaxIdleConns,
		MaxIdleConnsPerHost: DefaultMaxIdleConns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
}

// Invoke implements rpc.Invoker.
func (t *Transport) Invoke(ctx context.Context, d *rpc.Descriptor, req, resp any, opts ...rpc.CallOption) error {
	o := rpc.ApplyCallOptions(opts)
	meta := rpc.Meta{}
	err := t.invoke(ctx, d, req, resp, o, &meta)
	if o.Meta != nil {
		var e *rpc.Error
		if errors.As(err, &e) {
			meta = rpc.Meta{Attempts: e.Attempts, RequestID: e.RequestID, Status: e.Status}
		}
		*o.Meta = meta
	}
	return err
}

func (t *Transport) invoke(ctx context.Context, d *rpc.Descriptor, req, resp any, o rpc.CallOptions, meta *rpc.Meta) error {
	name := d.FullName()
	if o.Err != nil {
		return &rpc.Error{Kind: rpc.KindInvalidArgument, Code: rpc.CodeInvalidArgument, Message: o.Err.Error(), Cause: o.Err}
	}
	policy := t.cfg.Policy.Merged(o)
	if err := policy.Validate(); err != nil {
		return &rpc.Error{Kind: rpc.KindInvalidArgument, Code: rpc.CodeInvalidArgument, Message: err.Error(), Cause: err}
	}
	start := t.cfg.Now()
	deadlineAt := start.Add(policy.Deadline)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadlineAt) {
		deadlineAt = dl
	}
	callCtx, cancel := context.WithDeadline(ctx, deadlineAt)
	defer cancel()
	reqJSON, err := toJSONObject(req)
	if err != nil {
		return &rpc.Error{Kind: rpc.KindInvalidArgument, Code: rpc.CodeInvalidArgument,
			Message: fmt.Sprintf("secinfra: transport: %s: cannot encode the request: %v", name, err), Cause: err}
	}
	c := &call{t: t, d: d, name: name, reqJSON: reqJSON, o: o, policy: policy, deadlineAt: deadlineAt, ctx: callCtx}
	useCache := d.Cache != nil && t.cfg.UseCache
	if o.UseCache != nil {
		useCache = d.Cache != nil && *o.UseCache
	}
	if useCache {
		return c.cached(resp, meta)
	}
	ans, err := c.send("")
	if err != nil {
		t.afterUnknownWrite(c, err)
		return err
	}
	if err := c.decode(ans, resp); err != nil {
		return err
	}
	t.afterWrite(c, ans.body)
	*meta = rpc.Meta{Attempts: ans.attempts, RequestID: ans.header.Get(RequestIDHeader), Status: ans.status}
	return nil
}

func (t *Transport) afterWrite(c *call, body []byte) {
	inv := c.d.Invalidates
	if inv == nil {
		return
	}
	t.invalidate(c, inv)
	var rev struct {
		Revision string `json:"revision"`
	}
	if json.Unmarshal(body, &rev) == nil && rev.Revision != "" {
		t.cfg.Cache.RecordWriteRevision(inv.Resource, rev.Revision)
	}
}

// afterUnknownWrite invalidates after a write whose outcome is unknown
// (spec 7.9.3): no answer after sending, or a 5xx.
func (t *Transport) afterUnknownWrite(c *call, err error) {
	var e *rpc.Error
	if c.d.Invalidates == nil || !errors.As(err, &e) {
		return
	}
	if (e.Kind == rpc.KindTransport || e.Kind == rpc.KindDeadlineExceeded) && e.Attempts > 0 || e.Status >= 500 {
		t.invalidate(c, c.d.Invalidates)
	}
}

func (t *Transport) invalidate(c *call, inv *rpc.Invalidation) {
	if inv.KeyField != "" {
		t.cfg.Cache.Invalidate(inv.Resource, valueText(c.reqJSON[inv.KeyField]), false)
	} else {
		t.cfg.Cache.Invalidate(inv.Resource, "", true)
	}
}

// call is one invocation's state.
type call struct {
	t          *Transport
	d          *rpc.Descriptor
	name       string
	reqJSON    map[string]any
	o          rpc.CallOptions
	policy     retry.Policy
	deadlineAt time.Time
	ctx        context.Context
}

type answer struct {
	status   int
	header   http.Header
	body     []byte
	attempts int
}

func (c *call) decode(a *answer, resp any) error {
	body := a.body
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	if err := json.Unmarshal(body, resp); err != nil {
		return &rpc.Error{Kind: rpc.KindTransport, Code: rpc.CodeUnavailable, Status: a.status,
			RequestID: a.header.Get(RequestIDHeader), Attempts: a.attempts, Cause: err,
			Message: fmt.Sprintf("secinfra: transport: %s: the server's answer is not valid JSON of the response message: %v", c.name, err)}
	}
	return nil
}

func (c *call) cached(resp any, meta *rpc.Meta) error {
	t := c.t
	key, err := cache.Key(c.name, c.reqJSON)
	if err != nil {
		return &rpc.Error{Kind: rpc.KindInvalidArgument, Code: rpc.CodeInvalidArgument, Message: err.Error(), Cause: err}
	}
	if hit := t.cfg.Cache.Lookup(key, t.cfg.Now()); hit != nil && hit.Fresh && !c.o.Revalidate {
		if err := c.decode(&answer{body: hit.Body}, resp); err != nil {
			return err
		}
		*meta = rpc.Meta{FromCache: true}
		return nil
	}
	flight := key
	if c.o.Revalidate {
		flight += "\x00revalidate" // never share a flight that may skip the server
	}
	res, err, _ := t.flights.Do(c.ctx, flight, func() (flightResult, error) { return c.fetch(key, resp) })
	if err != nil {
		var e *rpc.Error
		if !errors.As(err, &e) && errors.Is(err, context.Canceled) {
			return &rpc.Error{Kind: rpc.KindTransport, Code: rpc.CodeUnavailable, Cause: err,
				Message: fmt.Sprintf("secinfra: transport: %s: the call was cancelled while waiting for another caller's request for the same key", c.name)}
		}
		if e == nil {
			return &rpc.Error{Kind: rpc.KindDeadlineExceeded, Code: rpc.CodeDeadlineExceeded, Cause: err, Retryable: true,
				Message: fmt.Sprintf("secinfra: transport: %s: deadline of %s passed while waiting for another caller's request for the same key", c.name, c.policy.Deadline)}
		}
		return err
	}
	if err := c.decode(&answer{body: res.body, status: res.meta.Status, attempts: res.meta.Attempts, header: http.Header{}}, resp); err != nil {
		return err
	}
	*meta = res.meta
	return nil
}

func (c *call) fetch(key string, resp any) (flightResult, error) {
	t := c.t
	current := t.cfg.Cache.Lookup(key, t.cfg.Now())
	if current != nil && current.Fresh && !c.o.Revalidate {
		return flightResult{body: current.Body, meta: rpc.Meta{FromCache: true}}, nil
	}
	family := c.d.Cache.Resource
	gen := t.cfg.Cache.Generation(family)
	etag := ""
	if current != nil {
		etag = current.ETag
	}
	a, err := c.send(etag)
	if err != nil {
		var e *rpc.Error
		if current != nil && current.UsableOnError && errors.As(err, &e) && serverFailure(e) {
			return flightResult{body: current.Body, meta: rpc.Meta{FromCache: true, Stale: true,
				Attempts: e.Attempts, RequestID: e.RequestID, Status: e.Status}}, nil
		}
		return flightResult{}, err
	}
	m := rpc.Meta{Attempts: a.attempts, RequestID: a.header.Get(RequestIDHeader), Status: a.status}
	if a.status == http.StatusNotModified && current != nil {
		t.cfg.Cache.Refresh(key, a.header, t.cfg.Now())
		m.FromCache = true
		return flightResult{body: current.Body, meta: m}, nil
	}
	if err := c.decode(a, resp); err != nil {
		return flightResult{}, err
	}
	var rev struct {
		Revision string `json:"revision"`
	}
	_ = json.Unmarshal(a.body, &rev)
	resourceKey := ""
	if c.d.Cache.KeyField != "" {
		resourceKey = valueText(c.reqJSON[c.d.Cache.KeyField])
	}
	t.cfg.Cache.Store(cache.StoreInput{Key: key, Body: a.body, Header: a.header, Family: family,
		ResourceKey: resourceKey, Revision: rev.Revision, Generation: gen, Received: t.cfg.Now()})
	return flightResult{body: a.body, meta: m}, nil
}

func serverFailure(e *rpc.Error) bool {
	return e.Kind == rpc.KindTransport || e.Kind == rpc.KindDeadlineExceeded || e.Status >= 500
}

// send makes attempts until one succeeds or the retry rules end the call.
func (c *call) send(ifNoneMatch string) (*answer, error) {
	t := c.t
	target, body, err := c.urlAndBody()
	if err != nil {
		return nil, &rpc.Error{Kind: rpc.KindInvalidArgument, Code: rpc.CodeInvalidArgument, Message: err.Error(), Cause: err}
	}
	header := http.Header{}
	header.Set("User-Agent", t.cfg.UserAgent)
	header.Set("Accept", "application/json")
	if body != nil {
		header.Set("Content-Type", "application/json")
	}
	hasKey := c.d.Idempotency != rpc.ReadOnly
	if hasKey {
		key := t.cfg.NewIdempotencyKey()
		if c.o.IdempotencyKey != nil {
			key = *c.o.IdempotencyKey
		}
		header.Set(IdempotencyHeader, key)
	}
	if ifNoneMatch != "" {
		header.Set("If-None-Match", ifNoneMatch)
	}
	mtls := c.d.Auth != rpc.AuthNone
	refreshed := false
	for attempt := 1; ; attempt++ {
		remaining := c.deadlineAt.Sub(t.cfg.Now())
		if remaining <= 0 || c.ctx.Err() != nil {
			return nil, c.deadlineError(attempt-1, nil)
		}
		var snap *identity.Snapshot
		if mtls {
			snap, err = t.cfg.Source.Current(c.ctx)
			if err != nil {
				var e *rpc.Error
				if errors.As(err, &e) {
					e.Attempts = attempt - 1
				}
				return nil, err
			}
		}
		header.Set(AttemptHeader, strconv.Itoa(attempt))
		a, fail := c.attempt(mtls, snap, target, body, header, min(c.policy.AttemptTimeout, remaining))
		var out retry.Outcome
		if fail != nil {
			var verr *identity.VerificationError
			if errors.As(fail.err, &verr) {
				if verr.Check == "chain" && !refreshed {
					refreshed = true
					if changed, _ := t.cfg.Source.RefreshBundle(c.ctx); changed {
						attempt-- // the repeat keeps the attempt's number (spec 2.4.2)
						continue
					}
				}
				return nil, &rpc.Error{Kind: rpc.KindTransport, Code: rpc.CodeUnavailable, Attempts: attempt,
					Message: fmt.Sprintf("secinfra: transport: %s: %s", c.name, strings.TrimPrefix(verr.Error(), "secinfra: transport: ")), Cause: fail.err}
			}
			if errors.Is(c.ctx.Err(), context.Canceled) {
				return nil, &rpc.Error{Kind: rpc.KindTransport, Code: rpc.CodeUnavailable, Attempts: attempt, Cause: c.ctx.Err(),
					Message: fmt.Sprintf("secinfra: transport: %s: the call was cancelled", c.name)}
			}
			if !c.deadlineAt.After(t.cfg.Now()) {
				return nil, c.deadlineError(attempt, fail.err)
			}
			out = retry.Outcome{Sent: fail.sent, Timeout: fail.timeout}
		} else {
			if a.status >= 200 && a.status < 300 || a.status == http.StatusNotModified && ifNoneMatch != "" {
				t.cfg.Budget.RecordSuccess()
				a.attempts = attempt
				return a, nil
			}
			if a.status < 400 {
				return nil, &rpc.Error{Kind: rpc.KindInternal, Code: rpc.CodeInternal, Status: a.status, Attempts: attempt,
					RequestID: a.header.Get(RequestIDHeader),
					Message:   fmt.Sprintf("secinfra: transport: %s: unexpected HTTP %d (the API answers 2xx, or 304 to a conditional request)", c.name, a.status)}
			}
			out = retry.Outcome{Status: a.status, Header: a.header}
		}
		dec := retry.Decide(out, retry.Input{
			Policy: c.policy, Idempotency: c.d.Idempotency, HasKey: hasKey, Attempt: attempt,
			Remaining: c.deadlineAt.Sub(t.cfg.Now()), Now: t.cfg.Now(),
			Jitter: func(ceiling time.Duration) time.Duration { return retry.FullJitter(ceiling, t.cfg.Jitter()) },
			Budget: t.cfg.Budget,
		})
		if !dec.Retry {
			return nil, c.finalError(attempt, a, fail, dec)
		}
		if err := t.cfg.Sleep(c.ctx, dec.Delay); err != nil {
			if errors.Is(err, context.Canceled) {
				return nil, &rpc.Error{Kind: rpc.KindTransport, Code: rpc.CodeUnavailable, Attempts: attempt, Cause: err,
					Message: fmt.Sprintf("secinfra: transport: %s: the call was cancelled", c.name)}
			}
			return nil, c.deadlineError(attempt, err)
		}
	}
}

func (c *call) deadlineError(attempts int, cause error) *rpc.Error {
	msg := fmt.Sprintf("secinfra: transport: %s: deadline of %s passed after %d attempts", c.name, c.policy.Deadline, attempts)
	if cause != nil {
		msg += ": " + describe(cause)
	}
	return &rpc.Error{Kind: rpc.KindDeadlineExceeded, Code: rpc.CodeDeadlineExceeded, Attempts: attempts,
		Retryable: true, Message: msg, Cause: cause}
}

func (c *call) finalError(attempts int, a *answer, fail *failure, dec retry.Decision) *rpc.Error {
	if a == nil {
		if dec.Reason == retry.DeadlineReached {
			e := c.deadlineError(attempts, fail.err)
			return e
		}
		retryable := dec.Reason != retry.UnsafeToResend
		return &rpc.Error{Kind: rpc.KindTransport, Code: rpc.CodeUnavailable, Attempts: attempts, Retryable: retryable,
			Message: fmt.Sprintf("secinfra: transport: %s: %s (%s)", c.name, describe(fail.err), dec.Message), Cause: fail.err}
	}
	env := parseEnvelope(a.body)
	code := env.Code
	if code == "" {
		code = rpc.CodeForStatus(a.status)
	}
	kind := rpc.KindForCode(code)
	switch dec.Code {
	case rpc.CodeRateLimited:
		code, kind = dec.Code, rpc.KindRateLimited
	case rpc.CodeUnavailable:
		code, kind = dec.Code, rpc.KindUnavailable
	}
	msg := env.Message
	if msg == "" {
		msg = fmt.Sprintf("secinfra: transport: %s: HTTP %d", c.name, a.status)
	}
	// A server message is kept as received (spec 11.6.1); why retrying
	// stopped shows in Attempts, Retryable and RetryAfter.
	reqID := a.header.Get(RequestIDHeader)
	if reqID == "" {
		reqID = env.RequestID
	}
	retryable, _, _ := retry.StatusRetryable(a.status, a.header, c.d.Idempotency)
	e := &rpc.Error{Kind: kind, Code: code, Message: msg, Status: a.status, RequestID: reqID,
		Retryable: retryable, Attempts: attempts, Details: env.Details}
	if dec.HasRetryAfter {
		e.RetryAfter, e.HasRetryAfter = dec.RetryAfter, true
	} else if raw := a.header.Get(retry.RetryAfterHeader); raw != "" {
		e.RetryAfter, e.HasRetryAfter = retry.ParseRetryAfter(raw, c.t.cfg.Now())
	}
	return e
}

type envelope struct {
	Code      string         `json:"code"`
	Message   string         `json:"message"`
	RequestID string         `json:"request_id"`
	Details   map[string]any `json:"details"`
}

func parseEnvelope(body []byte) envelope {
	var doc struct {
		Error json.RawMessage `json:"error"`
	}
	var env envelope
	if json.Unmarshal(body, &doc) != nil || len(doc.Error) == 0 {
		return envelope{}
	}
	if json.Unmarshal(doc.Error, &env) != nil {
		return envelope{}
	}
	return env
}

type failure struct {
	err     error
	sent    bool
	timeout bool
}

// attempt sends one request and reads the whole answer within timeout.
func (c *call) attempt(mtls bool, snap *identity.Snapshot, target string, body []byte, header http.Header, timeout time.Duration) (*answer, *failure) {
	rt := c.t.roundTripper(mtls, snap)
	ctx, cancel := context.WithTimeout(c.ctx, timeout)
	defer cancel()
	var mu sync.Mutex
	gotConn := false
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) {
		mu.Lock()
		gotConn = true
		mu.Unlock()
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), c.d.HTTPMethod, target, nil)
	if err != nil {
		return nil, &failure{err: err}
	}
	req.Header = header.Clone()
	// A body without GetBody makes the request non-replayable, so net/http
	// never re-sends it on its own: every attempt is ours, numbered
	// (spec 3.1). A body-less request gets an empty one, which net/http
	// probes and drops, sending no body and no Content-Length.
	if body != nil {
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
	} else {
		req.Body = emptyBody{}
		req.ContentLength = 0
	}
	req.GetBody = nil
	resp, err := rt.RoundTrip(req)
	sent := func() bool { mu.Lock(); defer mu.Unlock(); return gotConn }
	timedOut := func() bool { return errors.Is(ctx.Err(), context.DeadlineExceeded) }
	if err != nil {
		return nil, &failure{err: err, sent: sent(), timeout: timedOut()}
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, &failure{err: err, sent: true, timeout: timedOut()}
	}
	return &answer{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

type emptyBody struct{}

// Read reports the end at once.
func (emptyBody) Read([]byte) (int, error) { return 0, io.EOF }

// Close does nothing.
func (emptyBody) Close() error { return nil }

func describe(err error) string {
	if err == nil {
		return "no answer"
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "the attempt timed out"
	}
	var verr *identity.VerificationError
	if errors.As(err, &verr) {
		return verr.Error()
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	return "connection failed (" + err.Error() + ")"
}

// urlAndBody expands the path template and splits the fields (spec 2.2, 2.3).
func (c *call) urlAndBody() (string, []byte, error) {
	path := c.d.Path
	for _, name := range c.d.PathParams {
		value := valueText(c.reqJSON[name])
		multi := "{" + name + "=**}"
		if strings.Contains(path, multi) {
			path = strings.Replace(path, multi, escapePath(value, true), 1)
		} else {
			path = strings.Replace(path, "{"+name+"}", escapePath(value, false), 1)
		}
	}
	target := c.t.base + path
	if c.d.HTTPMethod == http.MethodGet || c.d.HTTPMethod == http.MethodDelete {
		var q []string
		for _, name := range c.d.QueryParams {
			v, ok := c.reqJSON[name]
			if !ok || v == nil {
				continue
			}
			items, isList := v.([]any)
			if !isList {
				items = []any{v}
			}
			for _, item := range items {
				q = append(q, url.QueryEscape(name)+"="+url.QueryEscape(valueText(item)))
			}
		}
		if len(q) > 0 {
			target += "?" + strings.Join(q, "&")
		}
		return target, nil, nil
	}
	fields := map[string]any{}
	for k, v := range c.reqJSON {
		fields[k] = v
	}
	for _, name := range c.d.PathParams {
		delete(fields, name)
	}
	body, err := json.Marshal(fields)
	if err != nil {
		return "", nil, fmt.Errorf("secinfra: transport: %s: cannot encode the body: %w", c.name, err)
	}
	return target, body, nil
}

// escapePath percent-encodes every octet outside RFC 3986's unreserved set
// (and '/' unless keepSlash), with upper-case hex.
func escapePath(s string, keepSlash bool) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case 'A' <= ch && ch <= 'Z', 'a' <= ch && ch <= 'z', '0' <= ch && ch <= '9',
			ch == '-', ch == '.', ch == '_', ch == '~', keepSlash && ch == '/':
			b.WriteByte(ch)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[ch>>4])
			b.WriteByte(hex[ch&15])
		}
	}
	return b.String()
}

// valueText is a JSON value as text: strings as is, numbers in decimal,
// booleans true/false.
func valueText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		if x {
			return "true"
		}
		return "false"
	}
	data, _ := json.Marshal(v)
	return string(data)
}

// toJSONObject encodes a request message to its JSON object form.
func toJSONObject(req any) (map[string]any, error) {
	data, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	out := map[string]any{}
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	return out, nil
}
