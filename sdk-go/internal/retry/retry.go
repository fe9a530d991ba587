// Package retry decides whether a failed attempt is tried again and how long
// to wait first (spec 3), and holds the client's retry budget (spec 6,
// budget.go). The decision is pure: nothing here sends, sleeps or reads a
// clock, so every rule is tested with a table.
package retry

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/secinfra/secinfra/sdk-go/rpc"
)

// Defaults (spec 3.11, 5.6).
const (
	DefaultMaxAttempts    = 4
	DefaultBaseBackoff    = 100 * time.Millisecond
	DefaultMaxBackoff     = 5 * time.Second
	DefaultMaxRetryAfter  = 60 * time.Second
	DefaultDeadline       = 30 * time.Second
	DefaultAttemptTimeout = 10 * time.Second
)

// Header names read by the rules.
const (
	RetryAfterHeader  = "Retry-After"
	ShouldRetryHeader = "Secinfra-Should-Retry"
)

// maxDoublings stops the backoff ceiling's doubling from overflowing.
const maxDoublings = 40

// Policy is the retry settings of a client or of one call.
type Policy struct {
	// MaxAttempts is the attempts in all, the first included.
	MaxAttempts int
	// BaseBackoff and MaxBackoff bound the full-jitter backoff.
	BaseBackoff, MaxBackoff time.Duration
	// MaxRetryAfter is the longest Retry-After waited for.
	MaxRetryAfter time.Duration
	// Deadline bounds a call; AttemptTimeout each attempt.
	Deadline, AttemptTimeout time.Duration
}

// DefaultPolicy holds every default.
func DefaultPolicy() Policy {
	return Policy{
		MaxAttempts:    DefaultMaxAttempts,
		BaseBackoff:    DefaultBaseBackoff,
		MaxBackoff:     DefaultMaxBackoff,
		MaxRetryAfter:  DefaultMaxRetryAfter,
		Deadline:       DefaultDeadline,
		AttemptTimeout: DefaultAttemptTimeout,
	}
}

// Validate names the first invalid setting.
func (p Policy) Validate() error {
	if p.MaxAttempts < 1 {
		return fmt.Errorf("secinfra: retry: max_attempts must be at least 1, got %d", p.MaxAttempts)
	}
	for _, s := range []struct {
		name     string
		d        time.Duration
		positive bool
	}{
		{"base_backoff", p.BaseBackoff, false},
		{"max_backoff", p.MaxBackoff, false},
		{"max_retry_after", p.MaxRetryAfter, false},
		{"deadline", p.Deadline, true},
		{"attempt_timeout", p.AttemptTimeout, true},
	} {
		if err := rpc.ValidateDuration(s.name, s.d, s.positive); err != nil {
			return err
		}
	}
	return nil
}

// Merged lays the call's options over p: a set value wins (spec 1.4.3).
func (p Policy) Merged(o rpc.CallOptions) Policy {
	if o.MaxAttempts != nil {
		p.MaxAttempts = *o.MaxAttempts
	}
	if o.BaseBackoff != nil {
		p.BaseBackoff = *o.BaseBackoff
	}
	if o.MaxBackoff != nil {
		p.MaxBackoff = *o.MaxBackoff
	}
	if o.MaxRetryAfter != nil {
		p.MaxRetryAfter = *o.MaxRetryAfter
	}
	if o.Deadline != nil {
		p.Deadline = *o.Deadline
	}
	if o.AttemptTimeout != nil {
		p.AttemptTimeout = *o.AttemptTimeout
	}
	return p
}

// Outcome is how one failed attempt ended: a response (Status > 0) or a
// failure without one.
type Outcome struct {
	// Status is the HTTP status; 0 when there was no response.
	Status int
	// Header is the response's header (nil without a response).
	Header http.Header
	// Sent: the request was, or may have been, sent (no response only).
	Sent bool
	// Timeout: the attempt ran out of time (no response only).
	Timeout bool
}

// Reason says why a Decision came out as it did.
type Reason string

// The reasons.
const (
	Retryable              Reason = "retryable"
	NotRetryable           Reason = "not_retryable"
	ServerSaidNo           Reason = "server_said_no"
	UnsafeToResend         Reason = "unsafe_to_resend"
	AttemptsExhausted      Reason = "attempts_exhausted"
	RetryAfterTooLong      Reason = "retry_after_too_long"
	RetryAfterPastDeadline Reason = "retry_after_past_deadline"
	DeadlineReached        Reason = "deadline_exceeded"
	BudgetExhausted        Reason = "budget_exhausted"
)

// Decision is what to do after a failed attempt.
type Decision struct {
	Retry  bool
	Delay  time.Duration
	Reason Reason
	// Message says why (StopReason gives it to the error).
	Message string
	// Code is set when the rules, not the envelope, decide the error's code:
	// rate_limited or unavailable for a Retry-After too long to wait.
	Code string
	// RetryAfter is the server's valid Retry-After, if HasRetryAfter.
	RetryAfter    time.Duration
	HasRetryAfter bool
}

// Input is everything Decide needs besides the outcome.
type Input struct {
	Policy      Policy
	Idempotency rpc.Idempotency
	HasKey      bool
	Attempt     int
	Remaining   time.Duration
	Now         time.Time
	Jitter      func(ceiling time.Duration) time.Duration
	Budget      *Budget
}

// BackoffCeiling is min(max, base * 2^(retry-1)) for the retry-th retry (1-based).
func BackoffCeiling(retry int, base, max time.Duration) time.Duration {
	if retry < 1 {
		retry = 1
	}
	n := retry - 1
	if n > maxDoublings {
		n = maxDoublings
	}
	c := float64(base) * math.Pow(2, float64(n))
	if c >= float64(max) {
		return max
	}
	return time.Duration(c)
}

// FullJitter draws uniformly from [0, ceiling] with u, a uniform [0, 1) value.
func FullJitter(ceiling time.Duration, u float64) time.Duration {
	return time.Duration(u * float64(ceiling))
}

// ParseRetryAfter reads a Retry-After value: delay-seconds or an HTTP-date
// (measured from now; a past date is 0). ok is false for anything else.
func ParseRetryAfter(value string, now time.Time) (time.Duration, bool) {
	text := strings.TrimSpace(value)
	if text == "" {
		return 0, false
	}
	digits := true
	for i := 0; i < len(text); i++ {
		if text[i] < '0' || text[i] > '9' {
			digits = false
			break
		}
	}
	if digits {
		secs, err := strconv.ParseUint(text, 10, 64)
		if err != nil || secs > uint64(math.MaxInt64/int64(time.Second)) {
			return time.Duration(math.MaxInt64), true // too long to wait for
		}
		return time.Duration(secs) * time.Second, true
	}
	when, err := http.ParseTime(text)
	if err != nil {
		return 0, false
	}
	d := when.Sub(now)
	if d < 0 {
		d = 0
	}
	return d, true
}

// ShouldRetry reads Secinfra-Should-Retry: (verdict, present).
func ShouldRetry(h http.Header) (bool, bool) {
	v := h.Get(ShouldRetryHeader)
	if h == nil || len(h.Values(ShouldRetryHeader)) == 0 {
		return false, false
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

// StatusRetryable applies lines b-f of spec 3.3 to a response.
func StatusRetryable(status int, h http.Header, idem rpc.Idempotency) (bool, Reason, string) {
	if status < 400 {
		return false, NotRetryable, fmt.Sprintf("status %d is not an error", status)
	}
	if verdict, ok := ShouldRetry(h); ok {
		if !verdict {
			return false, ServerSaidNo, fmt.Sprintf("the server said not to retry (%s: false)", ShouldRetryHeader)
		}
		return true, Retryable, ""
	}
	switch status {
	case 408, 429, 502, 503, 504:
		return true, Retryable, ""
	case 500:
		if idem.SafeToRepeat() {
			return true, Retryable, ""
		}
		return false, NotRetryable, "status 500 is retried only for read-only and idempotent calls"
	}
	return false, NotRetryable, fmt.Sprintf("status %d is not retryable", status)
}

// Decide applies the rules of spec 3.4 in order. A retry it allows is
// already paid for from in.Budget.
func Decide(out Outcome, in Input) Decision {
	var ra time.Duration
	hasRA := false
	codeIfTooLong := rpc.CodeUnavailable
	if out.Status > 0 {
		ok, reason, msg := StatusRetryable(out.Status, out.Header, in.Idempotency)
		if raw := out.Header.Get(RetryAfterHeader); raw != "" {
			ra, hasRA = ParseRetryAfter(raw, in.Now)
		}
		if !ok {
			return Decision{Reason: reason, Message: msg}
		}
		if out.Status == 429 {
			codeIfTooLong = rpc.CodeRateLimited
		}
	} else if out.Sent && !(in.Idempotency.SafeToRepeat() || in.HasKey) {
		return Decision{Reason: UnsafeToResend, Message: fmt.Sprintf(
			"unsafe to send again (the request may have reached the server, and a %s call without an Idempotency-Key must not run twice)", in.Idempotency)}
	}
	p := in.Policy
	give := func(r Reason, msg string) Decision {
		return Decision{Reason: r, Message: msg, RetryAfter: ra, HasRetryAfter: hasRA}
	}
	if in.Attempt >= p.MaxAttempts {
		return give(AttemptsExhausted, fmt.Sprintf("attempts exhausted (%d of %d made)", in.Attempt, p.MaxAttempts))
	}
	if in.Remaining <= 0 {
		return give(DeadlineReached, "deadline (no time left)")
	}
	var delay time.Duration
	if hasRA {
		if ra > p.MaxRetryAfter {
			d := give(RetryAfterTooLong, fmt.Sprintf("Retry-After too long (the server asks to wait %s, more than the %s the client waits)", secs(ra), secs(p.MaxRetryAfter)))
			d.Code = codeIfTooLong
			return d
		}
		if ra >= in.Remaining {
			d := give(RetryAfterPastDeadline, fmt.Sprintf("Retry-After too long (the server asks to wait %s, but only %s are left before the deadline)", secs(ra), secs(in.Remaining)))
			d.Code = codeIfTooLong
			return d
		}
		delay = ra
	} else {
		ceiling := BackoffCeiling(in.Attempt, p.BaseBackoff, p.MaxBackoff)
		delay = in.Jitter(ceiling)
	}
	if delay >= in.Remaining {
		return give(DeadlineReached, fmt.Sprintf("deadline (the next attempt, in %s, would not start before it: %s left)", secs(delay), secs(in.Remaining)))
	}
	if in.Budget != nil && !in.Budget.TryAcquire(in.Budget.Cost(out.Status == 0 && out.Timeout)) {
		return give(BudgetExhausted, "retry budget spent (this client retried too much lately)")
	}
	return Decision{Retry: true, Delay: delay, Reason: Retryable, RetryAfter: ra, HasRetryAfter: hasRA,
		Message: fmt.Sprintf("retrying in %s (attempt %d of %d)", secs(delay), in.Attempt+1, p.MaxAttempts)}
}

// StopReason says why retrying stopped, for the call's error (spec 3.9.5):
// empty when the decision is to retry, or the outcome is never retried.
func (d Decision) StopReason() string {
	if d.Retry || d.Reason == NotRetryable {
		return ""
	}
	return d.Message
}

func secs(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'g', 4, 64) + " s"
}
