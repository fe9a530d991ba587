package main

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/secinfra/secinfra/sdk-go/cmd/secinfra-conformance/protocol"
	"github.com/secinfra/secinfra/sdk-go/rpc"
)

// recorder is the recording observer of configure.observer (spec 14): it
// keeps every notification as an Observation until the observations op
// takes them, and returns the configured trace context at each attempt.
type recorder struct {
	traceparent, tracestate string

	mu   sync.Mutex
	list []*protocol.Observation
}

func (r *recorder) add(o *protocol.Observation) {
	r.mu.Lock()
	r.list = append(r.list, o)
	r.mu.Unlock()
}

// take returns the observations so far, oldest first, and forgets them.
func (r *recorder) take() []*protocol.Observation {
	r.mu.Lock()
	defer r.mu.Unlock()
	list := r.list
	r.list = nil
	if list == nil {
		list = []*protocol.Observation{}
	}
	return list
}

func ptr[T any](v T) *T { return &v }

func (r *recorder) CallStarted(ctx context.Context, c rpc.CallStart) context.Context {
	r.add(&protocol.Observation{Kind: "call_started", RPC: c.RPC, Idempotency: ptr(c.Idempotency.String())})
	return ctx
}

func (r *recorder) CacheLookup(_ context.Context, l rpc.CacheLookup) {
	r.add(&protocol.Observation{Kind: "cache", RPC: l.RPC, Cache: ptr(string(l.Result))})
}

func (r *recorder) AttemptStarted(ctx context.Context, a rpc.AttemptStart) (context.Context, rpc.TraceContext) {
	r.add(&protocol.Observation{Kind: "attempt_started", RPC: a.RPC, Attempt: ptr(int32(a.Attempt)), Endpoint: ptr(a.Endpoint)})
	if r.traceparent == "" {
		return ctx, rpc.TraceContext{}
	}
	return ctx, rpc.TraceContext{
		Traceparent: strings.ReplaceAll(r.traceparent, "{attempt}", fmt.Sprintf("%016x", a.Attempt)),
		Tracestate:  r.tracestate,
	}
}

func (r *recorder) AttemptFinished(_ context.Context, a rpc.AttemptEnd) {
	o := &protocol.Observation{Kind: "attempt_finished", RPC: a.RPC, Attempt: ptr(int32(a.Attempt))}
	if a.Status != 0 {
		o.Status = ptr(int32(a.Status))
	}
	if a.Code != "" {
		o.Code = ptr(a.Code)
	}
	r.add(o)
}

func (r *recorder) CallFinished(_ context.Context, c rpc.CallEnd) {
	o := &protocol.Observation{Kind: "call_finished", RPC: c.RPC, Ok: ptr(c.OK()), Meta: callMeta(c.Meta)}
	if c.Code != "" {
		o.Code = ptr(c.Code)
	}
	r.add(o)
}

// failing is the observer of observer.failing_first: it panics at every
// notification, which the SDK must survive (spec 14.1.3).
type failing struct{}

func (failing) CallStarted(context.Context, rpc.CallStart) context.Context {
	panic("conformance: failing observer: call_started")
}

func (failing) CacheLookup(context.Context, rpc.CacheLookup) {
	panic("conformance: failing observer: cache")
}

func (failing) AttemptStarted(context.Context, rpc.AttemptStart) (context.Context, rpc.TraceContext) {
	panic("conformance: failing observer: attempt_started")
}

func (failing) AttemptFinished(context.Context, rpc.AttemptEnd) {
	panic("conformance: failing observer: attempt_finished")
}

func (failing) CallFinished(context.Context, rpc.CallEnd) {
	panic("conformance: failing observer: call_finished")
}

// callMeta is a call's metadata as call answers give it.
func callMeta(meta rpc.Meta) *protocol.CallMeta {
	m := &protocol.CallMeta{FromCache: meta.FromCache, Stale: meta.Stale, Attempts: int32(meta.Attempts)}
	if meta.RequestID != "" {
		m.RequestID = ptr(meta.RequestID)
	}
	if meta.Status != 0 {
		m.Status = ptr(int32(meta.Status))
	}
	if meta.Endpoint != "" {
		m.Endpoint = ptr(meta.Endpoint)
	}
	return m
}
