package rpc

import "context"

// Observer is told what a client does (spec 14): when each call starts and
// ends, what the cache answered, and when each attempt starts and ends. An
// application registers observers with secinfra.WithObserver; metrics and
// tracing are built on them (the module
// github.com/secinfra/secinfra/sdk-go/otel is one).
//
// For one call the client notifies, in this order: CallStarted; CacheLookup
// for a cacheable read that uses the cache; AttemptStarted then
// AttemptFinished for each attempt; CallFinished, exactly once, also when
// the call fails before its first attempt. The client's own calls
// (enrolment, renewal, trust-bundle refresh) are observed like the
// application's.
//
// The context CallStarted returns is the one the client hands back to that
// observer's later notifications of the call, and the one AttemptStarted
// returns is handed to that attempt's AttemptFinished: an observer keeps
// its per-call and per-attempt state there (a span, a start time), as a
// gRPC stats.Handler does. These contexts are the observer's own: the call
// itself runs on the caller's context, whatever an observer returns.
//
// Observers are called synchronously on the calling goroutine, in the order
// registered, from many goroutines at once: an implementation must be safe
// for concurrent use and quick. A panic in an observer never fails the call
// nor stops the other observers; the client recovers it and logs it once
// per observer and kind of notification (spec 14.1.3). Notifications carry
// no secret: no body, key, token or header value (14.2.5).
//
// Embed NopObserver to implement only the notifications you need.
type Observer interface {
	// CallStarted is the start of a call. A nil context keeps ctx.
	CallStarted(ctx context.Context, call CallStart) context.Context
	// CacheLookup is what the response cache answered the call.
	CacheLookup(ctx context.Context, lookup CacheLookup)
	// AttemptStarted is the start of an attempt, before its request is
	// sent. The trace context it returns is sent on this attempt only if
	// valid (spec 14.3): the first valid one among the observers wins. A
	// nil context keeps ctx.
	AttemptStarted(ctx context.Context, attempt AttemptStart) (context.Context, TraceContext)
	// AttemptFinished is the end of an attempt: its status, or none.
	AttemptFinished(ctx context.Context, attempt AttemptEnd)
	// CallFinished is the end of a call: its outcome and metadata.
	CallFinished(ctx context.Context, call CallEnd)
}

// CallStart describes a call that starts.
type CallStart struct {
	// RPC is the RPC's full name, secinfra.v1.SecretsService/GetSecret.
	RPC string
	// Idempotency is the RPC's idempotency class.
	Idempotency Idempotency
}

// CacheResult is what the response cache answered a call (spec 14.2.1).
type CacheResult string

// The cache results.
const (
	// CacheHit: a fresh entry answers; no request is made.
	CacheHit CacheResult = "hit"
	// CacheMiss: no entry; a request follows.
	CacheMiss CacheResult = "miss"
	// CacheRevalidate: an entry is held but stale (or the call asked to
	// revalidate); the conditional request that follows revalidates it.
	CacheRevalidate CacheResult = "revalidate"
)

// CacheLookup describes the cache's answer to a call.
type CacheLookup struct {
	// RPC is the RPC's full name.
	RPC string
	// Result is hit, miss or revalidate.
	Result CacheResult
}

// AttemptStart describes an attempt that starts.
type AttemptStart struct {
	// RPC is the RPC's full name.
	RPC string
	// Attempt is the attempt's number, as sent in Secinfra-Attempt
	// (1-based). The repeat after a trust-bundle refresh keeps the number
	// and is an attempt of its own (spec 14.2.3).
	Attempt int
	// Endpoint is the endpoint's base URL, https://host:port.
	Endpoint string
	// Method is the HTTP method (GET, POST...).
	Method string
}

// AttemptEnd describes an attempt that ended.
type AttemptEnd struct {
	// RPC is the RPC's full name.
	RPC string
	// Attempt is the attempt's number.
	Attempt int
	// Endpoint is the endpoint's base URL.
	Endpoint string
	// Status is the HTTP status; 0 when the attempt got no answer.
	Status int
	// Code is empty when the attempt succeeded, else the error code: the
	// API error's, or for an attempt without an answer CodeUnavailable
	// (connection failed, server not verified) or CodeDeadlineExceeded (it
	// timed out).
	Code string
}

// CallEnd describes a call that ended.
type CallEnd struct {
	// RPC is the RPC's full name.
	RPC string
	// Code is empty when the call succeeded, else the error's code (spec 11.3).
	Code string
	// Err is the call's error (an *Error), nil on success.
	Err error
	// Meta is the call's result metadata (spec 7.7), as WithMeta gives it.
	Meta Meta
}

// OK reports whether the call succeeded.
func (c CallEnd) OK() bool { return c.Err == nil }

// TraceContext is W3C trace context an observer asks the client to send on
// one attempt (spec 14.3): the traceparent and tracestate headers. The zero
// value sends nothing.
type TraceContext struct {
	// Traceparent is 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>,
	// lower case, neither id all zeros; anything else is not sent.
	Traceparent string
	// Tracestate is sent beside a valid Traceparent; empty for none. A
	// value longer than 512 bytes or with a byte outside printable ASCII
	// is not sent.
	Tracestate string
}

// ValidTraceparent reports whether s is a traceparent the client sends
// (spec 14.3.2): it matches ^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$ and
// neither its trace id nor its parent id is all zeros.
func ValidTraceparent(s string) bool {
	if len(s) != 55 || s[0] != '0' || s[1] != '0' || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return false
	}
	traceZero, parentZero := true, true
	for i := 3; i < 55; i++ {
		if i == 35 || i == 52 {
			continue
		}
		ch := s[i]
		if (ch < '0' || ch > '9') && (ch < 'a' || ch > 'f') {
			return false
		}
		if ch != '0' {
			if i < 35 {
				traceZero = false
			} else if i < 52 {
				parentZero = false
			}
		}
	}
	return !traceZero && !parentZero
}

// MaxTracestate is the longest tracestate value the client sends (the W3C
// limit).
const MaxTracestate = 512

// validTracestate reports whether s can be sent as a tracestate header
// value: at most MaxTracestate bytes of printable ASCII.
func validTracestate(s string) bool {
	if len(s) > MaxTracestate {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// Sendable is the part of t the client sends: all of it when the
// traceparent is valid (a tracestate that cannot be sent dropped), else
// nothing.
func (t TraceContext) Sendable() TraceContext {
	if !ValidTraceparent(t.Traceparent) {
		return TraceContext{}
	}
	if !validTracestate(t.Tracestate) {
		t.Tracestate = ""
	}
	return t
}

// NopObserver does nothing at every notification. Embed it in an observer
// to implement only some of them:
//
//	type callCounter struct {
//		rpc.NopObserver
//		calls atomic.Int64
//	}
//
//	func (c *callCounter) CallFinished(context.Context, rpc.CallEnd) { c.calls.Add(1) }
type NopObserver struct{}

// CallStarted returns ctx.
func (NopObserver) CallStarted(ctx context.Context, _ CallStart) context.Context { return ctx }

// CacheLookup does nothing.
func (NopObserver) CacheLookup(context.Context, CacheLookup) {}

// AttemptStarted returns ctx and no trace context.
func (NopObserver) AttemptStarted(ctx context.Context, _ AttemptStart) (context.Context, TraceContext) {
	return ctx, TraceContext{}
}

// AttemptFinished does nothing.
func (NopObserver) AttemptFinished(context.Context, AttemptEnd) {}

// CallFinished does nothing.
func (NopObserver) CallFinished(context.Context, CallEnd) {}
