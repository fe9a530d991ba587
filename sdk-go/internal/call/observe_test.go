package call_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secinfra/secinfra/sdk-go/identity"
	"github.com/secinfra/secinfra/sdk-go/internal/cache"
	"github.com/secinfra/secinfra/sdk-go/internal/call"
	"github.com/secinfra/secinfra/sdk-go/internal/retry"
	"github.com/secinfra/secinfra/sdk-go/internal/transport"
	"github.com/secinfra/secinfra/sdk-go/rpc"
)

// headers answers like scripted and keeps each attempt's request headers.
type headers struct {
	scripted
	mu   sync.Mutex
	sent []http.Header
}

func (h *headers) Send(ctx context.Context, req transport.Request) (*transport.Response, *transport.Failure) {
	h.mu.Lock()
	h.sent = append(h.sent, req.Header.Clone())
	h.mu.Unlock()
	return h.scripted.Send(ctx, req)
}

// recorder writes every notification as one line.
type recorder struct {
	mu    sync.Mutex
	lines []string
	trace func(attempt int) rpc.TraceContext
}

func (r *recorder) add(format string, a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, fmt.Sprintf(format, a...))
}

func (r *recorder) CallStarted(ctx context.Context, c rpc.CallStart) context.Context {
	r.add("call_started %s %s", c.RPC, c.Idempotency)
	return ctx
}

func (r *recorder) CacheLookup(_ context.Context, l rpc.CacheLookup) { r.add("cache %s", l.Result) }

func (r *recorder) AttemptStarted(ctx context.Context, a rpc.AttemptStart) (context.Context, rpc.TraceContext) {
	r.add("attempt_started %d %s %s", a.Attempt, a.Method, a.Endpoint)
	if r.trace != nil {
		return ctx, r.trace(a.Attempt)
	}
	return ctx, rpc.TraceContext{}
}

func (r *recorder) AttemptFinished(_ context.Context, a rpc.AttemptEnd) {
	r.add("attempt_finished %d %d %q", a.Attempt, a.Status, a.Code)
}

func (r *recorder) CallFinished(_ context.Context, c rpc.CallEnd) {
	r.add("call_finished ok=%v %q attempts=%d status=%d cache=%v", c.OK(), c.Code, c.Meta.Attempts, c.Meta.Status, c.Meta.FromCache)
}

// panicker panics at every notification.
type panicker struct{}

func (panicker) CallStarted(context.Context, rpc.CallStart) context.Context { panic("call_started") }
func (panicker) CacheLookup(context.Context, rpc.CacheLookup)               { panic("cache") }
func (panicker) AttemptStarted(context.Context, rpc.AttemptStart) (context.Context, rpc.TraceContext) {
	panic("attempt_started")
}
func (panicker) AttemptFinished(context.Context, rpc.AttemptEnd) { panic("attempt_finished") }
func (panicker) CallFinished(context.Context, rpc.CallEnd)       { panic("call_finished") }

func observed(t testing.TB, sender call.Sender, logf func(string, ...any), obs ...rpc.Observer) *call.Pipeline {
	t.Helper()
	source, err := identity.NewStaticSource(nil, nil, "spiffe://example.org/secinfra/server")
	if err != nil {
		t.Fatal(err)
	}
	store, _ := cache.New(8)
	budget, _ := retry.NewBudget(retry.DefaultBudgetCapacity, retry.DefaultRetryCost, retry.DefaultTimeoutRetryCost, retry.DefaultSuccessRefund)
	p, err := call.New(call.Config{BaseURL: "https://127.0.0.1:1", Transport: sender, Source: source,
		Policy: retry.DefaultPolicy(), Budget: budget, Cache: store, UserAgent: "test", UseCache: true,
		Jitter: func() float64 { return 0.5 }, Sleep: func(context.Context, time.Duration) error { return nil },
		Observers: obs, Logf: logf})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var bundleRead = &rpc.Descriptor{Service: "secinfra.v1.IdentityService", Name: "GetTrustBundle",
	HTTPMethod: "GET", Path: "/v1/bundle", Idempotency: rpc.ReadOnly, Auth: rpc.AuthNone,
	Cache: &rpc.CachePolicy{Resource: "bundle"}}

// The notifications of a call come in the order of spec 14.2.1, for
// every attempt, also when the call fails before its first (14.2.2).
func TestObserverNotifications(t *testing.T) {
	tests := []struct {
		name  string
		d     *rpc.Descriptor
		steps []step
		opts  []rpc.CallOption
		want  []string
	}{
		{
			name: "retried then answered", d: whoami,
			steps: []step{{status: 503, body: unavailable}, {}, {status: 200, body: `{}`}},
			want: []string{
				"call_started secinfra.v1.IdentityService/GetCallerIdentity read_only",
				"attempt_started 1 GET https://127.0.0.1:1", `attempt_finished 1 503 "unavailable"`,
				"attempt_started 2 GET https://127.0.0.1:1", `attempt_finished 2 0 "unavailable"`,
				"attempt_started 3 GET https://127.0.0.1:1", `attempt_finished 3 200 ""`,
				`call_finished ok=true "" attempts=3 status=200 cache=false`,
			},
		},
		{
			name: "not found", d: whoami,
			steps: []step{{status: 404, body: `{"error": {"code": "not_found", "message": "no"}}`}},
			want: []string{
				"call_started secinfra.v1.IdentityService/GetCallerIdentity read_only",
				"attempt_started 1 GET https://127.0.0.1:1", `attempt_finished 1 404 "not_found"`,
				`call_finished ok=false "not_found" attempts=1 status=404 cache=false`,
			},
		},
		{
			name: "invalid option, no attempt", d: whoami, opts: []rpc.CallOption{rpc.WithMaxAttempts(0)},
			steps: []step{{status: 200, body: `{}`}},
			want: []string{
				"call_started secinfra.v1.IdentityService/GetCallerIdentity read_only",
				`call_finished ok=false "invalid_argument" attempts=0 status=0 cache=false`,
			},
		},
		{
			name: "cache miss", d: bundleRead,
			steps: []step{{status: 200, body: `{}`, header: map[string]string{"Cache-Control": "max-age=60", "ETag": `"1"`}}},
			want: []string{
				"call_started secinfra.v1.IdentityService/GetTrustBundle read_only", "cache miss",
				"attempt_started 1 GET https://127.0.0.1:1", `attempt_finished 1 200 ""`,
				`call_finished ok=true "" attempts=1 status=200 cache=false`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			p := observed(t, &scripted{steps: tt.steps}, t.Logf, rec)
			var resp map[string]any
			_ = p.Invoke(context.Background(), tt.d, &struct{}{}, &resp, tt.opts...)
			if got, want := strings.Join(rec.lines, "\n"), strings.Join(tt.want, "\n"); got != want {
				t.Fatalf("notifications:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// A fresh entry is a hit with no attempt; a forced revalidation is a
// revalidate and a conditional request, whose 304 is no error.
func TestObserverCacheHitAndRevalidate(t *testing.T) {
	rec := &recorder{}
	sender := &scripted{steps: []step{
		{status: 200, body: `{}`, header: map[string]string{"Cache-Control": "max-age=60", "ETag": `"1"`}},
		{status: 304, header: map[string]string{"Cache-Control": "max-age=60", "ETag": `"1"`}},
	}}
	p := observed(t, sender, t.Logf, rec)
	var resp map[string]any
	for _, opts := range [][]rpc.CallOption{nil, nil, {rpc.WithRevalidate()}} {
		if err := p.Invoke(context.Background(), bundleRead, &struct{}{}, &resp, opts...); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"call_started secinfra.v1.IdentityService/GetTrustBundle read_only", "cache miss",
		"attempt_started 1 GET https://127.0.0.1:1", `attempt_finished 1 200 ""`,
		`call_finished ok=true "" attempts=1 status=200 cache=false`,
		"call_started secinfra.v1.IdentityService/GetTrustBundle read_only", "cache hit",
		`call_finished ok=true "" attempts=0 status=0 cache=true`,
		"call_started secinfra.v1.IdentityService/GetTrustBundle read_only", "cache revalidate",
		"attempt_started 1 GET https://127.0.0.1:1", `attempt_finished 1 304 ""`,
		`call_finished ok=true "" attempts=1 status=304 cache=true`,
	}
	if got := strings.Join(rec.lines, "\n"); got != strings.Join(want, "\n") {
		t.Fatalf("notifications:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

// Trace context is sent on its attempt only when valid; the first valid
// one registered wins; without it no header is sent (spec 14.3).
func TestObserverTraceContext(t *testing.T) {
	const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	fixed := func(tc rpc.TraceContext) func(int) rpc.TraceContext {
		return func(int) rpc.TraceContext { return tc }
	}
	tests := []struct {
		name            string
		observers       []func(int) rpc.TraceContext
		wantTraceparent string
		wantTracestate  string
	}{
		{name: "none", observers: []func(int) rpc.TraceContext{nil}},
		{name: "valid", observers: []func(int) rpc.TraceContext{fixed(rpc.TraceContext{Traceparent: valid, Tracestate: "a=1"})},
			wantTraceparent: valid, wantTracestate: "a=1"},
		{name: "upper case", observers: []func(int) rpc.TraceContext{fixed(rpc.TraceContext{Traceparent: strings.ToUpper(valid), Tracestate: "a=1"})}},
		{name: "zero trace id", observers: []func(int) rpc.TraceContext{fixed(rpc.TraceContext{Traceparent: "00-00000000000000000000000000000000-00f067aa0ba902b7-01"})}},
		{name: "zero parent id", observers: []func(int) rpc.TraceContext{fixed(rpc.TraceContext{Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"})}},
		{name: "version 01", observers: []func(int) rpc.TraceContext{fixed(rpc.TraceContext{Traceparent: "01" + valid[2:]})}},
		{name: "tracestate with a newline dropped", observers: []func(int) rpc.TraceContext{fixed(rpc.TraceContext{Traceparent: valid, Tracestate: "a=1\nb: 2"})},
			wantTraceparent: valid},
		{name: "first valid wins", observers: []func(int) rpc.TraceContext{
			fixed(rpc.TraceContext{Traceparent: "garbage", Tracestate: "x=1"}),
			fixed(rpc.TraceContext{Traceparent: valid, Tracestate: "b=2"}),
			fixed(rpc.TraceContext{Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01"}),
		}, wantTraceparent: valid, wantTracestate: "b=2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var obs []rpc.Observer
			for _, trace := range tt.observers {
				obs = append(obs, &recorder{trace: trace})
			}
			sender := &headers{scripted: scripted{steps: []step{{status: 200, body: `{}`}}}}
			p := observed(t, sender, t.Logf, obs...)
			var resp map[string]any
			if err := p.Invoke(context.Background(), whoami, &struct{}{}, &resp); err != nil {
				t.Fatal(err)
			}
			h := sender.sent[0]
			if got := h.Get("traceparent"); got != tt.wantTraceparent {
				t.Errorf("traceparent %q, want %q", got, tt.wantTraceparent)
			}
			if got := h.Get("tracestate"); got != tt.wantTracestate {
				t.Errorf("tracestate %q, want %q", got, tt.wantTracestate)
			}
		})
	}
}

// Each attempt carries its own trace context, and an attempt whose
// observer returns none carries none of an earlier attempt's.
func TestObserverTraceContextPerAttempt(t *testing.T) {
	trace := func(attempt int) rpc.TraceContext {
		if attempt == 2 {
			return rpc.TraceContext{}
		}
		return rpc.TraceContext{Traceparent: fmt.Sprintf("00-4bf92f3577b34da6a3ce929d0e0e4736-%016x-01", attempt), Tracestate: "k=v"}
	}
	sender := &headers{scripted: scripted{steps: []step{{status: 503, body: unavailable}, {status: 503, body: unavailable}, {status: 200, body: `{}`}}}}
	p := observed(t, sender, t.Logf, &recorder{trace: trace})
	var resp map[string]any
	if err := p.Invoke(context.Background(), whoami, &struct{}{}, &resp); err != nil {
		t.Fatal(err)
	}
	want := []string{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000001-01", "", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000003-01"}
	for i, h := range sender.sent {
		if got := h.Get("traceparent"); got != want[i] {
			t.Errorf("attempt %d: traceparent %q, want %q", i+1, got, want[i])
		}
		if got, wantState := h.Get("tracestate"), map[bool]string{true: "k=v"}[want[i] != ""]; got != wantState {
			t.Errorf("attempt %d: tracestate %q, want %q", i+1, got, wantState)
		}
	}
}

// An observer that panics fails no call and stops no other observer; its
// failures are logged once per kind of notification (spec 14.1.3).
func TestObserverPanicIsolated(t *testing.T) {
	var mu sync.Mutex
	var logged []string
	logf := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		logged = append(logged, fmt.Sprintf(format, a...))
	}
	rec := &recorder{trace: func(int) rpc.TraceContext {
		return rpc.TraceContext{Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	}}
	sender := &headers{scripted: scripted{steps: []step{{status: 503, body: unavailable}, {status: 200, body: `{}`}}}}
	p := observed(t, sender, logf, panicker{}, rec)
	var resp map[string]any
	for i := 0; i < 2; i++ {
		if err := p.Invoke(context.Background(), whoami, &struct{}{}, &resp); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if got := len(rec.lines); got != 2*6-2 { // 6 for the first call (2 attempts), 4 for the second
		t.Fatalf("the second observer saw %d notifications:\n%s", got, strings.Join(rec.lines, "\n"))
	}
	if got := sender.sent[0].Get("traceparent"); got == "" {
		t.Fatal("the second observer's trace context was not sent")
	}
	if len(logged) != 4 {
		t.Fatalf("want one log line per kind (4 kinds seen), got %d:\n%s", len(logged), strings.Join(logged, "\n"))
	}
	for _, line := range logged {
		if !strings.HasPrefix(line, "secinfra: observer 1 (call_test.panicker) failed at ") {
			t.Errorf("log line %q", line)
		}
	}
}

func TestValidTraceparent(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", false},
		{"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := rpc.ValidTraceparent(tt.s); got != tt.want {
			t.Errorf("ValidTraceparent(%q) = %v, want %v", tt.s, got, tt.want)
		}
	}
}

// benchSender answers 200 at once.
type benchSender struct{}

func (benchSender) Send(context.Context, transport.Request) (*transport.Response, *transport.Failure) {
	return &transport.Response{Status: 200, Header: http.Header{}, Body: []byte(`{}`)}, nil
}

// What the observer machinery costs a call: nothing without observers
// (compare with BenchmarkInvokeOneObserver).
func BenchmarkInvokeNoObserver(b *testing.B) {
	p := observed(b, benchSender{}, nil)
	benchmarkInvoke(b, p)
}

func BenchmarkInvokeOneObserver(b *testing.B) {
	p := observed(b, benchSender{}, nil, rpc.NopObserver{})
	benchmarkInvoke(b, p)
}

func benchmarkInvoke(b *testing.B, p *call.Pipeline) {
	b.ReportAllocs()
	ctx := context.Background()
	var resp map[string]any
	for i := 0; i < b.N; i++ {
		if err := p.Invoke(ctx, whoami, &struct{}{}, &resp); err != nil {
			b.Fatal(err)
		}
	}
}
