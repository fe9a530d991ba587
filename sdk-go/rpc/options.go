package rpc

import (
	"fmt"
	"math"
	"time"
)

// CallOption changes one call's settings; a value given here wins over the
// client's (spec 1.4.3). Settings left unset keep the client's value.
type CallOption func(*CallOptions)

// CallOptions is the merged result of a call's CallOption values. Nil fields
// keep the client's value. The runtime reads it with ApplyCallOptions.
type CallOptions struct {
	// MaxAttempts is the attempts in all, the first included.
	MaxAttempts *int
	// BaseBackoff is the backoff ceiling before the first retry.
	BaseBackoff *time.Duration
	// MaxBackoff caps the backoff ceiling.
	MaxBackoff *time.Duration
	// MaxRetryAfter is the longest Retry-After the call waits for.
	MaxRetryAfter *time.Duration
	// Deadline bounds the whole call.
	Deadline *time.Duration
	// AttemptTimeout bounds each attempt.
	AttemptTimeout *time.Duration
	// IdempotencyKey replaces the fresh UUIDv4 of a call that carries a key.
	IdempotencyKey *string
	// UseCache turns the response cache on or off for the call.
	UseCache *bool
	// Revalidate makes a cacheable call reach the server even when a fresh
	// entry is cached (conditional on its ETag).
	Revalidate bool
	// Meta, when set, receives the call's result metadata (also on error).
	Meta *Meta
	// Err is the first invalid setting given, reported before any request.
	Err error
}

// ApplyCallOptions folds opts into one CallOptions.
func ApplyCallOptions(opts []CallOption) CallOptions {
	if len(opts) == 0 {
		return CallOptions{} // without options nothing is allocated
	}
	o := new(CallOptions)
	for _, opt := range opts {
		if opt != nil {
			opt(o)
		}
	}
	return *o
}

func (o *CallOptions) fail(err error) {
	if o.Err == nil {
		o.Err = err
	}
}

// WithMaxAttempts sets the attempts in all (the first included); 1 turns
// retries off. It must be at least 1.
func WithMaxAttempts(n int) CallOption {
	return func(o *CallOptions) {
		if n < 1 {
			o.fail(fmt.Errorf("secinfra: retry: max_attempts must be at least 1, got %d", n))
			return
		}
		o.MaxAttempts = &n
	}
}

// WithDeadline bounds the whole call (every attempt and wait); > 0.
func WithDeadline(d time.Duration) CallOption {
	return durationOption("deadline", d, true, func(o *CallOptions, v *time.Duration) { o.Deadline = v })
}

// WithAttemptTimeout bounds each attempt; > 0.
func WithAttemptTimeout(d time.Duration) CallOption {
	return durationOption("attempt_timeout", d, true, func(o *CallOptions, v *time.Duration) { o.AttemptTimeout = v })
}

// WithBaseBackoff sets the backoff ceiling before the first retry; >= 0.
func WithBaseBackoff(d time.Duration) CallOption {
	return durationOption("base_backoff", d, false, func(o *CallOptions, v *time.Duration) { o.BaseBackoff = v })
}

// WithMaxBackoff caps the backoff ceiling; >= 0.
func WithMaxBackoff(d time.Duration) CallOption {
	return durationOption("max_backoff", d, false, func(o *CallOptions, v *time.Duration) { o.MaxBackoff = v })
}

// WithMaxRetryAfter sets the longest Retry-After the call waits for; >= 0.
func WithMaxRetryAfter(d time.Duration) CallOption {
	return durationOption("max_retry_after", d, false, func(o *CallOptions, v *time.Duration) { o.MaxRetryAfter = v })
}

// WithIdempotencyKey sends key (1 to 255 visible ASCII characters) as the
// Idempotency-Key of every attempt instead of a fresh UUIDv4. Read-only
// calls ignore it.
func WithIdempotencyKey(key string) CallOption {
	return func(o *CallOptions) {
		if err := ValidateIdempotencyKey(key); err != nil {
			o.fail(err)
			return
		}
		o.IdempotencyKey = &key
	}
}

// WithUseCache turns the response cache on or off for this call.
func WithUseCache(use bool) CallOption {
	return func(o *CallOptions) { o.UseCache = &use }
}

// WithRevalidate makes a cacheable call reach the server even when a fresh
// entry is cached; the entry's ETag makes the request conditional, and a 304
// answers with the cached value (like a request's Cache-Control: no-cache).
func WithRevalidate() CallOption {
	return func(o *CallOptions) { o.Revalidate = true }
}

// WithMeta makes the call fill *m with its result metadata: whether the
// value came from the cache, whether it is stale, the attempts made, and
// the request id and status of the answering attempt.
func WithMeta(m *Meta) CallOption {
	return func(o *CallOptions) { o.Meta = m }
}

// ValidateIdempotencyKey checks a caller-supplied key (spec 4.4.2).
func ValidateIdempotencyKey(key string) error {
	if len(key) < 1 || len(key) > 255 {
		return fmt.Errorf("secinfra: retry: idempotency_key must be 1 to 255 characters, got %d", len(key))
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return fmt.Errorf("secinfra: retry: idempotency_key must be visible ASCII (0x21-0x7E); byte %d is not", i)
		}
	}
	return nil
}

func durationOption(name string, d time.Duration, positive bool, set func(*CallOptions, *time.Duration)) CallOption {
	return func(o *CallOptions) {
		if err := ValidateDuration(name, d, positive); err != nil {
			o.fail(err)
			return
		}
		set(o, &d)
	}
}

// ValidateDuration checks a duration setting: finite, and > 0 when positive
// (else >= 0). The error names the setting (spec 1.4.4).
func ValidateDuration(name string, d time.Duration, positive bool) error {
	switch {
	case d == math.MaxInt64 || d == math.MinInt64:
		return fmt.Errorf("secinfra: settings: %s must be finite", name)
	case positive && d <= 0:
		return fmt.Errorf("secinfra: settings: %s must be greater than zero, got %v", name, d)
	case d < 0:
		return fmt.Errorf("secinfra: settings: %s must not be negative, got %v", name, d)
	}
	return nil
}

// Meta describes how a call was answered (spec 7.7).
type Meta struct {
	// FromCache: the value came from the cache (fresh, revalidated or stale).
	FromCache bool
	// Stale: a stale cached value served because the server failed.
	Stale bool
	// Attempts is the HTTP attempts made (0 for a fresh cache hit).
	Attempts int
	// RequestID is the Request-Id of the last attempt that got an answer,
	// also when a later one got none (spec 7.7.1).
	RequestID string
	// Status is that attempt's HTTP status, 0 when there was none.
	Status int
	// Endpoint is that attempt's endpoint URL (spec 12.8.1); "" for a
	// fresh cache hit.
	Endpoint string
}
