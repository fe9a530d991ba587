package rpc_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/secinfra/secinfra/sdk-go/rpc"
)

// Errors from a call are *rpc.Error values: errors.Is tells the family,
// errors.As gives the fields.
func ExampleError() {
	var err error = fmt.Errorf("reading the DB password: %w", &rpc.Error{
		Kind: rpc.KindRateLimited, Code: rpc.CodeRateLimited, Status: 429,
		Message: "secinfra: authz: too many requests", RequestID: "01JD2Q7W",
		Retryable: true, RetryAfter: 2 * time.Second, HasRetryAfter: true, Attempts: 4,
	})
	var e *rpc.Error
	if errors.As(err, &e) {
		fmt.Println(e.Kind, e.Code, e.Status, e.Attempts, e.RetryAfter)
	}
	fmt.Println(errors.Is(err, rpc.ErrRateLimited), errors.Is(err, rpc.ErrAPI), errors.Is(err, rpc.ErrTransport))
	fmt.Println(err)
	// Output:
	// RateLimited rate_limited 429 4 2s
	// true true false
	// reading the DB password: secinfra: authz: too many requests (request id 01JD2Q7W)
}

// Per-call options override the client's settings for one call; WithMeta
// reports how the call was answered.
func ExampleCallOption() {
	var meta rpc.Meta
	opts := rpc.ApplyCallOptions([]rpc.CallOption{
		rpc.WithDeadline(2 * time.Second),
		rpc.WithMaxAttempts(1),
		rpc.WithIdempotencyKey("order-42-charge"),
		rpc.WithMeta(&meta),
	})
	fmt.Println(*opts.Deadline, *opts.MaxAttempts, *opts.IdempotencyKey, opts.Err)
	// Output: 2s 1 order-42-charge <nil>
}

// A call that retrying could not save says why retrying stopped, after the
// server's message and before the request id.
func ExampleError_stopReason() {
	err := &rpc.Error{Kind: rpc.KindUnavailable, Code: rpc.CodeUnavailable, Status: 503,
		Message: "the server is shedding load", RequestID: "01JD2Q7W3Z",
		Attempts: 4, StopReason: "attempts exhausted (4 of 4 made)"}
	fmt.Println(err)
	// Output: the server is shedding load; retrying stopped: attempts exhausted (4 of 4 made) (request id 01JD2Q7W3Z)
}
