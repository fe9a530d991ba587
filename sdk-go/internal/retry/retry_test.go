package retry_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/secinfra/secinfra/sdk-go/internal/retry"
	"github.com/secinfra/secinfra/sdk-go/rpc"
)

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// halfJitter pins the random draw at the middle of the range.
func halfJitter(c time.Duration) time.Duration { return retry.FullJitter(c, 0.5) }

func input(idem rpc.Idempotency, attempt int) retry.Input {
	return retry.Input{Policy: retry.DefaultPolicy(), Idempotency: idem, HasKey: idem != rpc.ReadOnly,
		Attempt: attempt, Remaining: 20 * time.Second, Now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Jitter: halfJitter}
}

func TestDecide(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		out       retry.Outcome
		idem      rpc.Idempotency
		attempt   int
		remaining time.Duration
		noKey     bool
		budget    int // tokens in a budget for the call; 0 for none
		wantRetry bool
		wantDelay time.Duration
		wantWhy   retry.Reason
		wantCode  string
		wantRA    time.Duration
	}{
		{name: "503 retried with backoff", out: retry.Outcome{Status: 503}, idem: rpc.ReadOnly, attempt: 1, wantRetry: true, wantDelay: 50 * time.Millisecond, wantWhy: retry.Retryable},
		{name: "second retry doubles the ceiling", out: retry.Outcome{Status: 503}, idem: rpc.ReadOnly, attempt: 2, wantRetry: true, wantDelay: 100 * time.Millisecond, wantWhy: retry.Retryable},
		{name: "408 429 502 504 always", out: retry.Outcome{Status: 429}, idem: rpc.NonIdempotent, attempt: 1, wantRetry: true, wantDelay: 50 * time.Millisecond, wantWhy: retry.Retryable},
		{name: "500 on read retried", out: retry.Outcome{Status: 500}, idem: rpc.ReadOnly, attempt: 1, wantRetry: true, wantDelay: 50 * time.Millisecond, wantWhy: retry.Retryable},
		{name: "500 on write not retried even with key", out: retry.Outcome{Status: 500}, idem: rpc.NonIdempotent, attempt: 1, wantWhy: retry.NotRetryable},
		{name: "404 never", out: retry.Outcome{Status: 404}, idem: rpc.ReadOnly, attempt: 1, wantWhy: retry.NotRetryable},
		{name: "501 never", out: retry.Outcome{Status: 501}, idem: rpc.ReadOnly, attempt: 1, wantWhy: retry.NotRetryable},
		{name: "should-retry false wins", out: retry.Outcome{Status: 503, Header: hdr("Secinfra-Should-Retry", " FALSE ")}, idem: rpc.ReadOnly, attempt: 1, wantWhy: retry.ServerSaidNo},
		{name: "should-retry true makes 409 retryable", out: retry.Outcome{Status: 409, Header: hdr("secinfra-should-retry", "true", "Retry-After", "1")}, idem: rpc.NonIdempotent, attempt: 1, wantRetry: true, wantDelay: time.Second, wantWhy: retry.Retryable, wantRA: time.Second},
		{name: "invalid should-retry ignored", out: retry.Outcome{Status: 409, Header: hdr("Secinfra-Should-Retry", "yes")}, idem: rpc.NonIdempotent, attempt: 1, wantWhy: retry.NotRetryable},
		{name: "attempts exhausted", out: retry.Outcome{Status: 503}, idem: rpc.ReadOnly, attempt: 4, wantWhy: retry.AttemptsExhausted},
		{name: "retry-after replaces backoff", out: retry.Outcome{Status: 503, Header: hdr("Retry-After", "2")}, idem: rpc.ReadOnly, attempt: 1, wantRetry: true, wantDelay: 2 * time.Second, wantWhy: retry.Retryable, wantRA: 2 * time.Second},
		{name: "retry-after 60 s exactly is waited", out: retry.Outcome{Status: 503, Header: hdr("Retry-After", "60")}, idem: rpc.ReadOnly, attempt: 1, remaining: 90 * time.Second, wantRetry: true, wantDelay: 60 * time.Second, wantWhy: retry.Retryable, wantRA: 60 * time.Second},
		{name: "retry-after over the cap on 429", out: retry.Outcome{Status: 429, Header: hdr("Retry-After", "120")}, idem: rpc.ReadOnly, attempt: 1, remaining: 200 * time.Second, wantWhy: retry.RetryAfterTooLong, wantCode: rpc.CodeRateLimited, wantRA: 120 * time.Second},
		{name: "retry-after past the deadline", out: retry.Outcome{Status: 503, Header: hdr("Retry-After", "45")}, idem: rpc.ReadOnly, attempt: 1, wantWhy: retry.RetryAfterPastDeadline, wantCode: rpc.CodeUnavailable, wantRA: 45 * time.Second},
		{name: "retry-after http-date", out: retry.Outcome{Status: 503, Header: hdr("Retry-After", now.Add(3*time.Second).Format(http.TimeFormat))}, idem: rpc.ReadOnly, attempt: 1, wantRetry: true, wantDelay: 3 * time.Second, wantWhy: retry.Retryable, wantRA: 3 * time.Second},
		{name: "invalid retry-after uses backoff", out: retry.Outcome{Status: 503, Header: hdr("Retry-After", "-1")}, idem: rpc.ReadOnly, attempt: 1, wantRetry: true, wantDelay: 50 * time.Millisecond, wantWhy: retry.Retryable},
		{name: "backoff reaching the deadline stops", out: retry.Outcome{Status: 503}, idem: rpc.ReadOnly, attempt: 1, remaining: 10 * time.Millisecond, wantWhy: retry.DeadlineReached},
		{name: "failure before sending retried", out: retry.Outcome{}, idem: rpc.NonIdempotent, noKey: true, attempt: 1, wantRetry: true, wantDelay: 50 * time.Millisecond, wantWhy: retry.Retryable},
		{name: "failure after sending without key", out: retry.Outcome{Sent: true}, idem: rpc.NonIdempotent, noKey: true, attempt: 1, wantWhy: retry.UnsafeToResend},
		{name: "failure after sending with key", out: retry.Outcome{Sent: true}, idem: rpc.NonIdempotent, attempt: 1, wantRetry: true, wantDelay: 50 * time.Millisecond, wantWhy: retry.Retryable},
		{name: "deadline passed", out: retry.Outcome{Status: 503}, idem: rpc.ReadOnly, attempt: 1, remaining: -time.Millisecond, wantWhy: retry.DeadlineReached},
		{name: "budget spent", out: retry.Outcome{Status: 503}, idem: rpc.ReadOnly, attempt: 1, budget: 4, wantWhy: retry.BudgetExhausted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := input(tt.idem, tt.attempt)
			in.Now = now
			if tt.remaining != 0 {
				in.Remaining = tt.remaining
			}
			if tt.noKey {
				in.HasKey = false
			}
			if tt.budget > 0 {
				in.Budget, _ = retry.NewBudget(tt.budget, 5, 10, 1)
			}
			if tt.out.Header == nil {
				tt.out.Header = http.Header{}
			}
			got := retry.Decide(tt.out, in)
			if got.Retry != tt.wantRetry || got.Reason != tt.wantWhy || got.Code != tt.wantCode {
				t.Fatalf("Decide = %+v, want retry=%v reason=%s code=%q", got, tt.wantRetry, tt.wantWhy, tt.wantCode)
			}
			if got.Retry && got.Delay != tt.wantDelay {
				t.Errorf("delay %v, want %v", got.Delay, tt.wantDelay)
			}
			if got.RetryAfter != tt.wantRA {
				t.Errorf("retry after %v, want %v", got.RetryAfter, tt.wantRA)
			}
			// The call's error says why retrying stopped (spec 3.9.5).
			if stop, want := got.StopReason(), stopPrefix[got.Reason]; !strings.HasPrefix(stop, want) || (want == "") != (stop == "") {
				t.Errorf("StopReason %q, want one starting %q", stop, want)
			}
		})
	}
}

// stopPrefix is how each reason's StopReason starts; none for a retry or an
// outcome that is never retried.
var stopPrefix = map[retry.Reason]string{
	retry.AttemptsExhausted:      "attempts exhausted (",
	retry.DeadlineReached:        "deadline (",
	retry.RetryAfterTooLong:      "Retry-After too long (",
	retry.RetryAfterPastDeadline: "Retry-After too long (",
	retry.BudgetExhausted:        "retry budget spent",
	retry.ServerSaidNo:           "the server said not to retry",
	retry.UnsafeToResend:         "unsafe to send again",
}

func TestBackoffCeiling(t *testing.T) {
	want := []time.Duration{100, 200, 400, 800, 1600, 3200, 5000, 5000}
	for i, w := range want {
		if got := retry.BackoffCeiling(i+1, retry.DefaultBaseBackoff, retry.DefaultMaxBackoff); got != w*time.Millisecond {
			t.Errorf("retry %d: ceiling %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
	if got := retry.BackoffCeiling(1000, time.Second, time.Hour); got != time.Hour {
		t.Errorf("huge retry counts must cap, got %v", got)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		value  string
		want   time.Duration
		wantOK bool
	}{
		{"delta seconds", " 7 ", 7 * time.Second, true},
		{"zero", "0", 0, true},
		{"fraction", "1.5", 0, false},
		{"negative", "-3", 0, false},
		{"empty", "", 0, false},
		{"garbage", "soon", 0, false},
		{"imf-fixdate", "Sun, 22 Nov 2026 08:00:05 GMT", 5 * time.Second, true},
		{"rfc850", "Sunday, 22-Nov-26 08:00:10 GMT", 10 * time.Second, true},
		{"asctime", "Sun Nov 22 08:00:02 2026", 2 * time.Second, true},
		{"past date is zero", "Sun, 22 Nov 2026 07:00:00 GMT", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := retry.ParseRetryAfter(tt.value, now)
			if ok != tt.wantOK || got != tt.want {
				t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.value, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestPolicyValidateAndMerge(t *testing.T) {
	p := retry.DefaultPolicy()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := p
	bad.MaxAttempts = 0
	if err := bad.Validate(); err == nil {
		t.Fatal("max_attempts 0 must be rejected")
	}
	bad = p
	bad.Deadline = 0
	if err := bad.Validate(); err == nil {
		t.Fatal("deadline 0 must be rejected")
	}
	merged := p.Merged(rpc.ApplyCallOptions([]rpc.CallOption{rpc.WithMaxAttempts(1), rpc.WithDeadline(2 * time.Second)}))
	if merged.MaxAttempts != 1 || merged.Deadline != 2*time.Second || merged.AttemptTimeout != p.AttemptTimeout {
		t.Fatalf("merged %+v", merged)
	}
}
