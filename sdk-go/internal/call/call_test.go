package call_test

import (
	"context"
	"errors"
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

// scripted answers attempts in order, repeating the last step; a step
// without a status is a connection failure before sending.
type scripted struct {
	mu       sync.Mutex
	steps    []step
	attempts int
}

type step struct {
	status int
	header map[string]string
	body   string
}

func (s *scripted) Send(context.Context, transport.Request) (*transport.Response, *transport.Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.steps[min(s.attempts, len(s.steps)-1)]
	s.attempts++
	if st.status == 0 {
		return nil, &transport.Failure{Err: errors.New("connection refused")}
	}
	h := http.Header{"Request-Id": {"req-1"}}
	for k, v := range st.header {
		h.Set(k, v)
	}
	return &transport.Response{Status: st.status, Header: h, Body: []byte(st.body)}, nil
}

var whoami = &rpc.Descriptor{Service: "secinfra.v1.IdentityService", Name: "GetCallerIdentity",
	HTTPMethod: "GET", Path: "/v1/identity:whoami", Idempotency: rpc.ReadOnly, Auth: rpc.AuthNone}

func pipeline(t *testing.T, sender call.Sender, budget *retry.Budget) *call.Pipeline {
	t.Helper()
	source, err := identity.NewStaticSource(nil, nil, "spiffe://example.org/secinfra/server")
	if err != nil {
		t.Fatal(err)
	}
	store, _ := cache.New(8)
	if budget == nil {
		budget, _ = retry.NewBudget(retry.DefaultBudgetCapacity, retry.DefaultRetryCost, retry.DefaultTimeoutRetryCost, retry.DefaultSuccessRefund)
	}
	p, err := call.New(call.Config{BaseURL: "https://127.0.0.1:1", Transport: sender, Source: source,
		Policy: retry.DefaultPolicy(), Budget: budget, Cache: store, UserAgent: "test",
		Jitter: func() float64 { return 0.5 }, Sleep: func(context.Context, time.Duration) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const unavailable = `{"error": {"code": "unavailable", "message": "scripted"}}`

// The error of a call that retrying could not save says why retrying
// stopped (spec 3.9.5), after the server's message, which stays as sent.
func TestFinalErrorSaysWhyRetryingStopped(t *testing.T) {
	tests := []struct {
		name         string
		steps        []step
		opts         []rpc.CallOption
		budget       int
		wantKind     rpc.Kind
		wantAttempts int
		wantStop     string // in StopReason and Error()
	}{
		{name: "attempts exhausted", steps: []step{{status: 503, body: unavailable}},
			wantKind: rpc.KindUnavailable, wantAttempts: 4, wantStop: "attempts exhausted (4 of 4 made)"},
		{name: "attempts exhausted without an answer", steps: []step{{}},
			wantKind: rpc.KindTransport, wantAttempts: 4, wantStop: "attempts exhausted (4 of 4 made)"},
		{name: "deadline", steps: []step{{status: 503, body: unavailable}},
			opts:     []rpc.CallOption{rpc.WithBaseBackoff(time.Minute), rpc.WithMaxBackoff(time.Minute), rpc.WithDeadline(10 * time.Second)},
			wantKind: rpc.KindUnavailable, wantAttempts: 1, wantStop: "deadline (the next attempt, in 30 s, would not start before it"},
		{name: "budget spent", steps: []step{{status: 503, body: unavailable}}, budget: 7,
			wantKind: rpc.KindUnavailable, wantAttempts: 2, wantStop: "retry budget spent"},
		{name: "retry-after too long", steps: []step{{status: 429, header: map[string]string{"Retry-After": "120"},
			body: `{"error": {"code": "rate_limited", "message": "scripted"}}`}},
			wantKind: rpc.KindRateLimited, wantAttempts: 1, wantStop: "Retry-After too long (the server asks to wait 120 s, more than the 60 s the client waits)"},
		{name: "retry-after past the deadline", steps: []step{{status: 503, header: map[string]string{"Retry-After": "20"}, body: unavailable}},
			opts:     []rpc.CallOption{rpc.WithDeadline(10 * time.Second)},
			wantKind: rpc.KindUnavailable, wantAttempts: 1, wantStop: "Retry-After too long (the server asks to wait 20 s, but only"},
		{name: "the server said no", steps: []step{{status: 503, header: map[string]string{"Secinfra-Should-Retry": "false"}, body: unavailable}},
			wantKind: rpc.KindUnavailable, wantAttempts: 1, wantStop: "the server said not to retry (Secinfra-Should-Retry: false)"},
		{name: "never retried: nothing to say", steps: []step{{status: 404, body: `{"error": {"code": "not_found", "message": "scripted"}}`}},
			wantKind: rpc.KindNotFound, wantAttempts: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var budget *retry.Budget
			if tt.budget > 0 {
				budget, _ = retry.NewBudget(tt.budget, 5, 10, 1)
			}
			sender := &scripted{steps: tt.steps}
			var resp struct{}
			err := pipeline(t, sender, budget).Invoke(context.Background(), whoami, &struct{}{}, &resp, tt.opts...)
			var e *rpc.Error
			if !errors.As(err, &e) {
				t.Fatalf("want an *rpc.Error, got %v", err)
			}
			if e.Kind != tt.wantKind || e.Attempts != tt.wantAttempts || sender.attempts != tt.wantAttempts {
				t.Fatalf("kind %v attempts %d (sent %d), want %v and %d: %v", e.Kind, e.Attempts, sender.attempts, tt.wantKind, tt.wantAttempts, err)
			}
			if tt.wantKind.IsAPI() && e.Message != "scripted" {
				t.Errorf("the server's message must stay as received, got %q", e.Message)
			}
			if tt.wantStop == "" {
				if e.StopReason != "" || strings.Contains(err.Error(), "retrying stopped") {
					t.Fatalf("a call never retried has no stop reason: %v", err)
				}
				return
			}
			if !strings.HasPrefix(e.StopReason, tt.wantStop) {
				t.Errorf("StopReason %q, want %q...", e.StopReason, tt.wantStop)
			}
			if !strings.Contains(err.Error(), "; retrying stopped: "+tt.wantStop) {
				t.Errorf("Error() %q does not say %q", err.Error(), tt.wantStop)
			}
			if e.RequestID != "" && !strings.HasSuffix(err.Error(), "(request id "+e.RequestID+")") {
				t.Errorf("Error() %q must end with the request id", err.Error())
			}
		})
	}
}
