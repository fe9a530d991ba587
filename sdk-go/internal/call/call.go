// Package call is the pipeline behind every generated client: it implements
// rpc.Invoker by tying the runtime together (spec 2-7, 10.3).
//
// One call: encode the request (request.go); answer a cacheable read from
// the cache when fresh, revalidate it when stale (one request per key for
// concurrent callers, cache.SingleFlight), fall back to a stale value within
// stale-if-error; otherwise make attempts through the transport with one
// Idempotency-Key for all of them, Secinfra-Attempt numbering, a
// per-attempt timeout and a per-call deadline, trying again as retry.Decide
// says and the client's budget allows; turn the answer into the result or a
// typed error (answer.go); and after a write, invalidate what it changed.
// Each attempt goes to the endpoint endpoints.Set chooses, and its outcome
// updates that endpoint's cooldown, so a retry after an endpoint failure
// moves to another endpoint (spec 12).
//
// Messages keep the component users know from the error tree,
// "secinfra: transport: ".
package call

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/secinfra/secinfra/sdk-go/identity"
	"github.com/secinfra/secinfra/sdk-go/internal/cache"
	"github.com/secinfra/secinfra/sdk-go/internal/endpoints"
	"github.com/secinfra/secinfra/sdk-go/internal/retry"
	"github.com/secinfra/secinfra/sdk-go/internal/transport"
	"github.com/secinfra/secinfra/sdk-go/rpc"
)

// Header names the pipeline sets.
const (
	AttemptHeader     = "Secinfra-Attempt"
	IdempotencyHeader = "Idempotency-Key"
)

// Sender makes one attempt; *transport.Transport is the one the client uses.
type Sender interface {
	Send(ctx context.Context, req transport.Request) (*transport.Response, *transport.Failure)
}

// Config configures a Pipeline.
type Config struct {
	// BaseURL is the server's https:// URL, when Endpoints is nil.
	BaseURL string
	// Endpoints chooses each attempt's endpoint (spec 12); default: BaseURL
	// alone.
	Endpoints *endpoints.Set
	// Transport makes the attempts.
	Transport Sender
	// Source gives the identity of mTLS calls and refreshes the bundle.
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
	// NewIdempotencyKey makes a UUIDv4 (default NewUUID).
	NewIdempotencyKey func() string
	// Observers are told about every call, in this order (spec 14); nil
	// entries are skipped.
	Observers []rpc.Observer
	// Logf logs an observer's failure (default log.Printf).
	Logf func(format string, args ...any)
}

// Pipeline implements rpc.Invoker; safe for concurrent use.
type Pipeline struct {
	cfg     Config
	obs     *observers // nil without observers
	flights cache.SingleFlight[flightResult]
}

// flightResult is what one request for a cache key gives every caller waiting for it.
type flightResult struct {
	body []byte
	meta rpc.Meta
}

// CheckBaseURL refuses a server URL that is not https://host[:port]: TLS
// is how the client knows the server.
func CheckBaseURL(base string) error {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("secinfra: transport: the server URL must be https://host[:port], got %q", base)
	}
	return nil
}

// New checks cfg and returns a pipeline.
func New(cfg Config) (*Pipeline, error) {
	if cfg.Endpoints == nil {
		if err := CheckBaseURL(cfg.BaseURL); err != nil {
			return nil, err
		}
		set, err := endpoints.New([]string{cfg.BaseURL}, endpoints.Config{Order: endpoints.Listed})
		if err != nil {
			return nil, err
		}
		cfg.Endpoints = set
	}
	if cfg.Transport == nil || cfg.Source == nil || cfg.Budget == nil || cfg.Cache == nil {
		return nil, errors.New("secinfra: transport: transport, source, budget and cache are required")
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
	p := &Pipeline{cfg: cfg, obs: newObservers(cfg.Observers, cfg.Logf)}
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
	return p, nil
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

// Close drops the cache's entries.
func (p *Pipeline) Close() { p.cfg.Cache.Clear() }

// Budget is the client's retry budget.
func (p *Pipeline) Budget() *retry.Budget { return p.cfg.Budget }

// Endpoints is the client's endpoints and their cooldowns.
func (p *Pipeline) Endpoints() *endpoints.Set { return p.cfg.Endpoints }

// Invoke implements rpc.Invoker.
func (p *Pipeline) Invoke(ctx context.Context, d *rpc.Descriptor, req, resp any, opts ...rpc.CallOption) error {
	o := rpc.ApplyCallOptions(opts)
	w := p.obs.start(ctx, d)
	meta := rpc.Meta{}
	err := p.invoke(ctx, d, req, resp, o, &meta, w)
	if o.Meta != nil || w != nil {
		var e *rpc.Error
		if errors.As(err, &e) {
			meta = rpc.Meta{Attempts: e.Attempts, RequestID: e.RequestID, Status: e.Status, Endpoint: e.Endpoint}
		}
		if o.Meta != nil {
			*o.Meta = meta
		}
		w.finished(err, meta)
	}
	return err
}

func invalidArgument(err error) *rpc.Error {
	return &rpc.Error{Kind: rpc.KindInvalidArgument, Code: rpc.CodeInvalidArgument, Message: err.Error(), Cause: err}
}

func (p *Pipeline) invoke(ctx context.Context, d *rpc.Descriptor, req, resp any, o rpc.CallOptions, meta *rpc.Meta, w *watch) error {
	if o.Err != nil {
		return invalidArgument(o.Err)
	}
	policy := p.cfg.Policy.Merged(o)
	if policy != p.cfg.Policy { // New validated the client's
		if err := policy.Validate(); err != nil {
			return invalidArgument(err)
		}
	}
	now := p.cfg.Now()
	useCache := d.Cache != nil && p.cfg.UseCache
	if o.UseCache != nil {
		useCache = d.Cache != nil && *o.UseCache
	}
	if useCache && !o.Revalidate {
		if done, err := p.freshHit(d, req, resp, now, meta, w); done {
			return err
		}
	}
	deadlineAt := now.Add(policy.Deadline)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadlineAt) {
		deadlineAt = dl
	}
	callCtx, cancel := context.WithDeadline(ctx, deadlineAt)
	defer cancel()
	// The path and query only: each attempt puts its endpoint in front.
	encoded, err := EncodeRequest("", d, req)
	if err != nil {
		return invalidArgument(err)
	}
	c := &call{p: p, d: d, name: d.FullName(), req: encoded, o: o, policy: policy, deadlineAt: deadlineAt, ctx: callCtx, w: w}
	if useCache {
		return c.cached(resp, meta)
	}
	a, err := c.send("")
	if err != nil {
		c.afterUnknownWrite(err)
		return err
	}
	if err := DecodeResult(c.name, a, resp); err != nil {
		return err
	}
	c.afterWrite(a.Body)
	*meta = rpc.Meta{Attempts: a.Attempts, RequestID: a.Header.Get(RequestIDHeader), Status: a.Status, Endpoint: a.Endpoint}
	return nil
}

// freshHit answers a cacheable read from a fresh entry as cached does, at
// a fraction of the cost: the key without encoding the request (appendKey),
// the result a copy of the entry's decoded value (copyInto) rather than a
// decode of its body. done is false when there is no fresh entry, or the
// request's key needs encoding/json; cached then looks again, and tells the
// observers what it found.
func (p *Pipeline) freshHit(d *rpc.Descriptor, req, resp any, now time.Time, meta *rpc.Meta, w *watch) (done bool, err error) {
	buf := keyBuffers.Get().(*[]byte)
	defer keyBuffers.Put(buf)
	key, ok := appendKey((*buf)[:0], d, req)
	*buf = key[:0] // keeps what appendKey grew it to
	if !ok {
		return false, nil
	}
	hit, found := p.cfg.Cache.LookupBytes(key, now)
	if !found || !hit.Fresh {
		return false, nil
	}
	w.cache(rpc.CacheHit)
	if !copyInto(resp, hit.Value) {
		if err := DecodeResult(d.FullName(), &Answer{Body: hit.Body, Header: http.Header{}}, resp); err != nil {
			return true, err
		}
	}
	*meta = rpc.Meta{FromCache: true}
	return true, nil
}

// keyBuffers hold freshHit's keys while it looks them up.
var keyBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// call is one invocation's state.
type call struct {
	p          *Pipeline
	d          *rpc.Descriptor
	name       string
	req        *Request
	o          rpc.CallOptions
	policy     retry.Policy
	deadlineAt time.Time
	ctx        context.Context
	w          *watch // the call's observers; nil for none
}

// afterWrite drops what a successful write changed, and keeps its
// revision token as the family's write mark (spec 7.9, 7.10).
func (c *call) afterWrite(body []byte) {
	inv := c.d.Invalidates
	if inv == nil {
		return
	}
	c.invalidate(inv)
	var rev struct {
		Revision string `json:"revision"`
	}
	if json.Unmarshal(body, &rev) == nil && rev.Revision != "" {
		c.p.cfg.Cache.RecordWriteRevision(inv.Resource, rev.Revision)
	}
}

// afterUnknownWrite invalidates after a write whose outcome is unknown
// (spec 7.9.3): no answer after sending, or a 5xx.
func (c *call) afterUnknownWrite(err error) {
	var e *rpc.Error
	if c.d.Invalidates == nil || !errors.As(err, &e) {
		return
	}
	if (e.Kind == rpc.KindTransport || e.Kind == rpc.KindDeadlineExceeded) && e.Attempts > 0 || e.Status >= 500 {
		c.invalidate(c.d.Invalidates)
	}
}

func (c *call) invalidate(inv *rpc.Invalidation) {
	if inv.KeyField != "" {
		c.p.cfg.Cache.Invalidate(inv.Resource, fieldText(c.req.Fields[inv.KeyField]), false)
	} else {
		c.p.cfg.Cache.Invalidate(inv.Resource, "", true)
	}
}

// cached answers a cacheable read: from a fresh entry, else by one request
// for all concurrent callers of the key.
func (c *call) cached(resp any, meta *rpc.Meta) error {
	store := c.p.cfg.Cache
	key, err := cache.Key(c.name, c.req.Fields)
	if err != nil {
		return invalidArgument(err)
	}
	hit := store.Lookup(key, c.p.cfg.Now())
	if c.w != nil {
		switch {
		case hit == nil:
			c.w.cache(rpc.CacheMiss)
		case hit.Fresh && !c.o.Revalidate:
			c.w.cache(rpc.CacheHit)
		default:
			c.w.cache(rpc.CacheRevalidate)
		}
	}
	if hit != nil && hit.Fresh && !c.o.Revalidate {
		if err := DecodeResult(c.name, &Answer{Body: hit.Body, Header: http.Header{}}, resp); err != nil {
			return err
		}
		*meta = rpc.Meta{FromCache: true}
		return nil
	}
	flight := key
	if c.o.Revalidate {
		flight += "\x00revalidate" // never share a flight that may skip the server
	}
	res, err, _ := c.p.flights.Do(c.ctx, flight, func() (flightResult, error) { return c.fetch(key, resp) })
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
	a := &Answer{Body: res.body, Status: res.meta.Status, Attempts: res.meta.Attempts, Header: http.Header{}, Endpoint: res.meta.Endpoint}
	if err := DecodeResult(c.name, a, resp); err != nil {
		return err
	}
	*meta = res.meta
	return nil
}

// fetch is the request of one flight: conditional on the held entry's
// ETag, storing what it gets, and serving the held entry on a 304 or,
// within stale-if-error, when the server fails.
func (c *call) fetch(key string, resp any) (flightResult, error) {
	store := c.p.cfg.Cache
	current := store.Lookup(key, c.p.cfg.Now())
	if current != nil && current.Fresh && !c.o.Revalidate {
		return flightResult{body: current.Body, meta: rpc.Meta{FromCache: true}}, nil
	}
	family := c.d.Cache.Resource
	gen := store.Generation(family)
	etag := ""
	if current != nil {
		etag = current.ETag
	}
	a, err := c.send(etag)
	if err != nil {
		var e *rpc.Error
		if current != nil && current.UsableOnError && errors.As(err, &e) && serverFailure(e) {
			return flightResult{body: current.Body, meta: rpc.Meta{FromCache: true, Stale: true,
				Attempts: e.Attempts, RequestID: e.RequestID, Status: e.Status, Endpoint: e.Endpoint}}, nil
		}
		return flightResult{}, err
	}
	m := rpc.Meta{Attempts: a.Attempts, RequestID: a.Header.Get(RequestIDHeader), Status: a.Status, Endpoint: a.Endpoint}
	if a.Status == http.StatusNotModified && current != nil {
		store.Refresh(key, a.Header, c.p.cfg.Now())
		m.FromCache = true
		return flightResult{body: current.Body, meta: m}, nil
	}
	if err := DecodeResult(c.name, a, resp); err != nil {
		return flightResult{}, err
	}
	var rev struct {
		Revision string `json:"revision"`
	}
	_ = json.Unmarshal(a.Body, &rev)
	resourceKey := ""
	if c.d.Cache.KeyField != "" {
		resourceKey = fieldText(c.req.Fields[c.d.Cache.KeyField])
	}
	store.Store(cache.StoreInput{Key: key, Body: a.Body, Value: decodedValue(c.name, resp, a), Header: a.Header, Family: family,
		ResourceKey: resourceKey, Revision: rev.Revision, Generation: gen, Received: c.p.cfg.Now()})
	return flightResult{body: a.Body, meta: m}, nil
}

// serverFailure is whether e means the server could not answer
// (stale-if-error applies): never when no request was made, as when the
// deadline passed while the call waited for an identity (spec 7.6.3).
func serverFailure(e *rpc.Error) bool {
	if e.Attempts == 0 {
		return false
	}
	return e.Kind == rpc.KindTransport || e.Kind == rpc.KindDeadlineExceeded || e.Status >= 500
}

// send makes attempts until one succeeds or the retry rules end the call;
// every error it returns names the last attempt's endpoint (spec 12.8.2).
func (c *call) send(ifNoneMatch string) (*Answer, error) {
	endpoint := ""
	a, err := c.attempts(ifNoneMatch, &endpoint)
	var e *rpc.Error
	if err != nil && errors.As(err, &e) && e.Endpoint == "" {
		e.Endpoint = endpoint
		if endpoint != "" && (e.Kind == rpc.KindTransport || e.Kind == rpc.KindDeadlineExceeded) {
			e.Message = strings.Replace(e.Message, c.name+": ", c.name+": "+endpoint+": ", 1)
		}
	}
	return a, err
}

// attempts is send's loop; *endpoint is kept at the last attempt's endpoint.
func (c *call) attempts(ifNoneMatch string, endpoint *string) (*Answer, error) {
	p := c.p
	header := http.Header{}
	header.Set("User-Agent", p.cfg.UserAgent)
	header.Set("Accept", "application/json")
	if c.req.Body != nil {
		header.Set("Content-Type", "application/json")
	}
	hasKey := c.d.Idempotency != rpc.ReadOnly
	if hasKey {
		key := p.cfg.NewIdempotencyKey()
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
	sets := p.cfg.Endpoints
	repeatAt := ""       // the endpoint a bundle refresh repeats the attempt at (12.6.2)
	var answered *Answer // the last attempt that got an answer (spec 11.5)
	for attempt := 1; ; attempt++ {
		remaining := c.deadlineAt.Sub(p.cfg.Now())
		if remaining <= 0 || c.ctx.Err() != nil {
			return nil, answeredBy(c.deadlineError(attempt-1, nil), answered)
		}
		var snap *identity.Snapshot
		if mtls {
			// Waiting for an identity (a re-enrolment) is bounded by the
			// deadline, and no attempt starts after it (spec 5.1.2, 5.1.3).
			var err error
			if snap, err = p.cfg.Source.Current(c.ctx); err != nil {
				return nil, answeredBy(c.identityError(attempt-1, err), answered)
			}
			if remaining = c.deadlineAt.Sub(p.cfg.Now()); remaining <= 0 {
				return nil, answeredBy(c.deadlineError(attempt-1, nil), answered)
			}
		}
		// Each attempt goes to the first endpoint not cooling down (12.3).
		at := repeatAt
		if at == "" {
			at = sets.Choose()
		}
		repeatAt, *endpoint = "", at
		header.Set(AttemptHeader, strconv.Itoa(attempt))
		var observed []context.Context
		if c.w != nil {
			observed = c.w.attemptStarted(attempt, at, c.d.HTTPMethod, header)
		}
		resp, fail := p.cfg.Transport.Send(c.ctx, transport.Request{Method: c.d.HTTPMethod, URL: at + c.req.URL,
			Header: header, Body: c.req.Body, MTLS: mtls, Snapshot: snap, Timeout: min(c.policy.AttemptTimeout, remaining)})
		if c.w != nil {
			c.observeAttempt(observed, attempt, at, resp, fail, ifNoneMatch)
		}
		var a *Answer
		var out retry.Outcome
		if fail != nil {
			var verr *identity.VerificationError
			if errors.As(fail.Err, &verr) {
				if verr.Check == "chain" && !refreshed {
					refreshed = true
					if changed, _ := p.cfg.Source.RefreshBundle(c.ctx); changed {
						attempt-- // the repeat keeps the attempt's number (spec 2.4.2)
						repeatAt = at
						continue
					}
				}
				// Never an endpoint failure, never a move (spec 12.6.1).
				return nil, answeredBy(&rpc.Error{Kind: rpc.KindTransport, Code: rpc.CodeUnavailable, Attempts: attempt,
					Message: fmt.Sprintf("secinfra: transport: %s: %s", c.name, strings.TrimPrefix(verr.Error(), "secinfra: transport: ")), Cause: fail.Err}, answered)
			}
			if errors.Is(c.ctx.Err(), context.Canceled) {
				return nil, answeredBy(c.cancelled(attempt, c.ctx.Err()), answered)
			}
			sets.Record(at, true)
			if !c.deadlineAt.After(p.cfg.Now()) {
				return nil, answeredBy(c.deadlineError(attempt, fail.Err), answered)
			}
			out = retry.Outcome{Sent: fail.Sent, Timeout: fail.Timeout}
		} else {
			a = &Answer{Status: resp.Status, Header: resp.Header, Body: resp.Body, Attempts: attempt, Endpoint: at}
			answered = a
			sets.Record(at, endpoints.IsFailure(a.Status))
			if a.Status >= 200 && a.Status < 300 || a.Status == http.StatusNotModified && ifNoneMatch != "" {
				p.cfg.Budget.RecordSuccess()
				return a, nil
			}
			if a.Status < 400 {
				return nil, DecodeError(c.name, a, c.d.Idempotency, p.cfg.Now())
			}
			out = retry.Outcome{Status: a.Status, Header: a.Header}
		}
		dec := retry.Decide(out, retry.Input{
			Policy: c.policy, Idempotency: c.d.Idempotency, HasKey: hasKey, Attempt: attempt,
			Remaining: c.deadlineAt.Sub(p.cfg.Now()), Now: p.cfg.Now(),
			Jitter: func(ceiling time.Duration) time.Duration { return retry.FullJitter(ceiling, p.cfg.Jitter()) },
			Budget: p.cfg.Budget,
		})
		if !dec.Retry {
			return nil, answeredBy(c.finalError(attempt, a, fail, dec), answered)
		}
		if err := p.cfg.Sleep(c.ctx, dec.Delay); err != nil {
			if errors.Is(err, context.Canceled) {
				return nil, answeredBy(c.cancelled(attempt, err), answered)
			}
			return nil, answeredBy(c.deadlineError(attempt, err), answered)
		}
	}
}

// answeredBy gives an error without an answer of its own the Request-Id
// of the call's last answered attempt, if any (spec 2.5.1, 11.5); an
// error made from an answer keeps that answer's.
func answeredBy(e *rpc.Error, answered *Answer) *rpc.Error {
	if e.RequestID == "" && answered != nil {
		e.RequestID = answered.Header.Get(RequestIDHeader)
	}
	return e
}

// identityError is the error of a call whose identity could not be had
// (Source.Current failed): the deadline, or the caller's cancellation,
// while a re-enrolment was still in flight (spec 5.4.1), else the
// source's identity_expired (9.7.3).
func (c *call) identityError(attempts int, err error) *rpc.Error {
	var e *rpc.Error
	switch {
	case errors.As(err, &e):
		e.Attempts = attempts
		return e
	case errors.Is(err, context.Canceled):
		return c.cancelled(attempts, err)
	case errors.Is(err, context.DeadlineExceeded):
		e = c.deadlineError(attempts, nil)
		e.Message += " waiting for an identity (" + err.Error() + ")"
		e.Cause = err
		return e
	}
	return &rpc.Error{Kind: rpc.KindIdentityExpired, Code: rpc.CodeIdentityExpired, Attempts: attempts, Cause: err,
		Message: fmt.Sprintf("secinfra: identity: %s: no identity: %v", c.name, err)}
}

func (c *call) cancelled(attempts int, cause error) *rpc.Error {
	return &rpc.Error{Kind: rpc.KindTransport, Code: rpc.CodeUnavailable, Attempts: attempts, Cause: cause,
		Message: fmt.Sprintf("secinfra: transport: %s: the call was cancelled", c.name)}
}

func (c *call) deadlineError(attempts int, cause error) *rpc.Error {
	msg := fmt.Sprintf("secinfra: transport: %s: deadline of %s passed after %d attempts", c.name, c.policy.Deadline, attempts)
	if cause != nil {
		msg += ": " + describe(cause)
	}
	return &rpc.Error{Kind: rpc.KindDeadlineExceeded, Code: rpc.CodeDeadlineExceeded, Attempts: attempts,
		Retryable: true, Message: msg, Cause: cause}
}

// finalError is the error of a call the retry rules ended (spec 3.9): the
// answer's, or a transport error without one; either says why retrying
// stopped when the outcome could have been retried (3.9.5).
func (c *call) finalError(attempts int, a *Answer, fail *transport.Failure, dec retry.Decision) *rpc.Error {
	if a == nil {
		if dec.Reason == retry.DeadlineReached {
			return c.deadlineError(attempts, fail.Err)
		}
		return &rpc.Error{Kind: rpc.KindTransport, Code: rpc.CodeUnavailable, Attempts: attempts,
			Retryable: dec.Reason != retry.UnsafeToResend, StopReason: dec.StopReason(),
			Message: fmt.Sprintf("secinfra: transport: %s: %s", c.name, describe(fail.Err)), Cause: fail.Err}
	}
	e := DecodeError(c.name, a, c.d.Idempotency, c.p.cfg.Now())
	// A Retry-After too long to wait decides the code, whatever the envelope's (3.6.6).
	switch dec.Code {
	case rpc.CodeRateLimited:
		e.Code, e.Kind = dec.Code, rpc.KindRateLimited
	case rpc.CodeUnavailable:
		e.Code, e.Kind = dec.Code, rpc.KindUnavailable
	}
	e.StopReason = dec.StopReason()
	return e
}

// describe is what happened to an attempt without an answer.
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
