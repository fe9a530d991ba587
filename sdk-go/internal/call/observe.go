package call

import (
	"context"
	"errors"
	"log"
	"net/http"
	"sync"

	"github.com/secinfra/secinfra/sdk-go/internal/transport"
	"github.com/secinfra/secinfra/sdk-go/rpc"
)

// Trace context headers (spec 14.3).
const (
	TraceparentHeader = "traceparent"
	TracestateHeader  = "tracestate"
)

// The kinds of notification, as failures are logged.
const (
	kindCallStarted     = "call_started"
	kindCache           = "cache"
	kindAttemptStarted  = "attempt_started"
	kindAttemptFinished = "attempt_finished"
	kindCallFinished    = "call_finished"
)

// observers is a client's observers and which of their failures were
// logged already. A nil *observers (no observer) costs a nil check.
type observers struct {
	list []rpc.Observer
	logf func(format string, args ...any)

	mu     sync.Mutex
	logged map[failureKey]bool
}

type failureKey struct {
	index int
	kind  string
}

func newObservers(list []rpc.Observer, logf func(string, ...any)) *observers {
	var kept []rpc.Observer
	for _, o := range list {
		if o != nil {
			kept = append(kept, o)
		}
	}
	if len(kept) == 0 {
		return nil
	}
	if logf == nil {
		logf = log.Printf
	}
	return &observers{list: kept, logf: logf, logged: map[failureKey]bool{}}
}

// recovered logs an observer's panic, once per observer and kind (spec
// 14.1.3). Deferred, it recovers.
func (o *observers) recovered(index int, kind string) {
	r := recover()
	if r == nil {
		return
	}
	key := failureKey{index, kind}
	o.mu.Lock()
	seen := o.logged[key]
	o.logged[key] = true
	o.mu.Unlock()
	if !seen {
		o.logf("secinfra: observer %d (%T) failed at %s: %v (its later failures at %s are not logged)",
			index+1, o.list[index], kind, r, kind)
	}
}

// watch is one call's notifications: the call's context as each observer
// returned it. nil when the client has no observer; every method is then a
// no-op.
type watch struct {
	o    *observers
	rpc  string
	ctxs []context.Context
}

// start notifies call_started.
func (o *observers) start(ctx context.Context, d *rpc.Descriptor) *watch {
	if o == nil {
		return nil
	}
	w := &watch{o: o, rpc: d.FullName(), ctxs: make([]context.Context, len(o.list))}
	info := rpc.CallStart{RPC: w.rpc, Idempotency: d.Idempotency}
	for i, ob := range o.list {
		w.ctxs[i] = ctx
		func() {
			defer o.recovered(i, kindCallStarted)
			if got := ob.CallStarted(ctx, info); got != nil {
				w.ctxs[i] = got
			}
		}()
	}
	return w
}

// cache notifies what the cache answered.
func (w *watch) cache(result rpc.CacheResult) {
	if w == nil {
		return
	}
	info := rpc.CacheLookup{RPC: w.rpc, Result: result}
	for i, ob := range w.o.list {
		func() {
			defer w.o.recovered(i, kindCache)
			ob.CacheLookup(w.ctxs[i], info)
		}()
	}
}

// attemptStarted notifies attempt_started and sets header's trace context
// to the first valid one an observer returned, or none (spec 14.3). It
// returns each observer's attempt context.
func (w *watch) attemptStarted(attempt int, endpoint, method string, header http.Header) []context.Context {
	header.Del(TraceparentHeader)
	header.Del(TracestateHeader)
	info := rpc.AttemptStart{RPC: w.rpc, Attempt: attempt, Endpoint: endpoint, Method: method}
	ctxs := make([]context.Context, len(w.o.list))
	var chosen rpc.TraceContext
	for i, ob := range w.o.list {
		ctxs[i] = w.ctxs[i]
		func() {
			defer w.o.recovered(i, kindAttemptStarted)
			got, tc := ob.AttemptStarted(w.ctxs[i], info)
			if got != nil {
				ctxs[i] = got
			}
			if chosen.Traceparent == "" {
				chosen = tc.Sendable()
			}
		}()
	}
	if chosen.Traceparent != "" {
		header.Set(TraceparentHeader, chosen.Traceparent)
		if chosen.Tracestate != "" {
			header.Set(TracestateHeader, chosen.Tracestate)
		}
	}
	return ctxs
}

// attemptFinished notifies attempt_finished.
func (w *watch) attemptFinished(ctxs []context.Context, info rpc.AttemptEnd) {
	info.RPC = w.rpc
	for i, ob := range w.o.list {
		func() {
			defer w.o.recovered(i, kindAttemptFinished)
			ob.AttemptFinished(ctxs[i], info)
		}()
	}
}

// finished notifies call_finished.
func (w *watch) finished(err error, meta rpc.Meta) {
	if w == nil {
		return
	}
	info := rpc.CallEnd{RPC: w.rpc, Err: err, Meta: meta}
	if err != nil {
		info.Code = rpc.CodeInternal
		var e *rpc.Error
		if errors.As(err, &e) && e.Code != "" {
			info.Code = e.Code
		}
	}
	for i, ob := range w.o.list {
		func() {
			defer w.o.recovered(i, kindCallFinished)
			ob.CallFinished(w.ctxs[i], info)
		}()
	}
}

// attemptCode is the error code of an attempt (spec 14.2.1): none when it
// succeeded, the API error's, or the transport failure's, which is unavailable
// for every attempt that got no answer, a timed-out one included (11.3: a
// TransportError's code; deadline_exceeded belongs to the call's deadline).
func (c *call) attemptCode(a *Answer, fail *transport.Failure, ifNoneMatch string) string {
	if fail != nil {
		return rpc.CodeUnavailable
	}
	if a.Status >= 200 && a.Status < 300 || a.Status == http.StatusNotModified && ifNoneMatch != "" {
		return ""
	}
	return DecodeError(c.name, a, c.d.Idempotency, c.p.cfg.Now()).Code
}

// observeAttempt notifies attempt_finished for the attempt Send made.
func (c *call) observeAttempt(ctxs []context.Context, attempt int, endpoint string, resp *transport.Response, fail *transport.Failure, ifNoneMatch string) {
	info := rpc.AttemptEnd{Attempt: attempt, Endpoint: endpoint}
	var a *Answer
	if resp != nil {
		info.Status = resp.Status
		a = &Answer{Status: resp.Status, Header: resp.Header, Body: resp.Body, Attempts: attempt, Endpoint: endpoint}
	}
	info.Code = c.attemptCode(a, fail, ifNoneMatch)
	c.w.attemptFinished(ctxs, info)
}
