package rpc_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/secinfra/secinfra/sdk-go/rpc"
)

func TestErrorFamilies(t *testing.T) {
	tests := []struct {
		name    string
		err     *rpc.Error
		is      []error
		isNot   []error
		wantStr string
	}{
		{
			name:    "not found is an API error",
			err:     &rpc.Error{Kind: rpc.KindNotFound, Code: rpc.CodeNotFound, Message: "secinfra: secrets: no such secret", RequestID: "r1"},
			is:      []error{rpc.ErrNotFound, rpc.ErrAPI},
			isNot:   []error{rpc.ErrTransport, rpc.ErrPermissionDenied, rpc.ErrIdentityExpired},
			wantStr: "secinfra: secrets: no such secret (request id r1)",
		},
		{
			name: "why retrying stopped comes after the server's message, before the request id",
			err: &rpc.Error{Kind: rpc.KindUnavailable, Code: rpc.CodeUnavailable, Message: "overloaded", RequestID: "r2",
				StopReason: "attempts exhausted (4 of 4 made)"},
			is:      []error{rpc.ErrUnavailable, rpc.ErrAPI},
			isNot:   []error{rpc.ErrTransport},
			wantStr: "overloaded; retrying stopped: attempts exhausted (4 of 4 made) (request id r2)",
		},
		{
			name:  "deadline is a transport error and a context deadline",
			err:   &rpc.Error{Kind: rpc.KindDeadlineExceeded, Code: rpc.CodeDeadlineExceeded, Message: "m"},
			is:    []error{rpc.ErrDeadlineExceeded, rpc.ErrTransport, context.DeadlineExceeded},
			isNot: []error{rpc.ErrAPI, rpc.ErrUnavailable},
		},
		{
			name:  "identity expired is neither API nor transport",
			err:   &rpc.Error{Kind: rpc.KindIdentityExpired, Code: rpc.CodeIdentityExpired, Message: "m"},
			is:    []error{rpc.ErrIdentityExpired},
			isNot: []error{rpc.ErrAPI, rpc.ErrTransport},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wrapped := fmt.Errorf("loading config: %w", tt.err)
			for _, target := range tt.is {
				if !errors.Is(wrapped, target) {
					t.Errorf("errors.Is(%v) = false", target)
				}
			}
			for _, target := range tt.isNot {
				if errors.Is(wrapped, target) {
					t.Errorf("errors.Is(%v) = true", target)
				}
			}
			var e *rpc.Error
			if !errors.As(wrapped, &e) || e != tt.err {
				t.Fatal("errors.As must find the *rpc.Error")
			}
			if tt.wantStr != "" && e.Error() != tt.wantStr {
				t.Errorf("Error() = %q, want %q", e.Error(), tt.wantStr)
			}
		})
	}
}

func TestCauseIsKept(t *testing.T) {
	cause := errors.New("connection reset")
	err := &rpc.Error{Kind: rpc.KindTransport, Code: rpc.CodeUnavailable, Message: "m", Cause: cause}
	if !errors.Is(err, cause) {
		t.Fatal("the cause must be reachable with errors.Is")
	}
}

func TestCodeForStatus(t *testing.T) {
	want := map[int]string{
		400: "invalid_argument", 401: "unauthenticated", 403: "permission_denied", 404: "not_found",
		405: "method_not_allowed", 408: "unavailable", 409: "conflict", 412: "failed_precondition",
		413: "payload_too_large", 418: "invalid_argument", 422: "idempotency_key_reused", 429: "rate_limited",
		500: "internal", 501: "unimplemented", 502: "unavailable", 503: "unavailable", 504: "deadline_exceeded",
		599: "internal",
	}
	for status, code := range want {
		if got := rpc.CodeForStatus(status); got != code {
			t.Errorf("CodeForStatus(%d) = %s, want %s", status, got, code)
		}
	}
}

func TestKindForCode(t *testing.T) {
	want := map[string]rpc.Kind{
		"invalid_argument": rpc.KindInvalidArgument, "payload_too_large": rpc.KindInvalidArgument,
		"method_not_allowed": rpc.KindInvalidArgument, "idempotency_key_reused": rpc.KindInvalidArgument,
		"already_exists": rpc.KindConflict, "conflict": rpc.KindConflict, "deadline_exceeded": rpc.KindUnavailable,
		"unimplemented": rpc.KindInternal, "brand_new_code": rpc.KindInternal, "rate_limited": rpc.KindRateLimited,
	}
	for code, kind := range want {
		if got := rpc.KindForCode(code); got != kind {
			t.Errorf("KindForCode(%s) = %v, want %v", code, got, kind)
		}
	}
}

func TestCallOptionsRejectInvalidSettings(t *testing.T) {
	tests := []struct {
		name string
		opt  rpc.CallOption
	}{
		{"zero attempts", rpc.WithMaxAttempts(0)},
		{"zero deadline", rpc.WithDeadline(0)},
		{"negative attempt timeout", rpc.WithAttemptTimeout(-time.Second)},
		{"negative backoff", rpc.WithBaseBackoff(-1)},
		{"empty key", rpc.WithIdempotencyKey("")},
		{"key with a space", rpc.WithIdempotencyKey("a b")},
		{"key too long", rpc.WithIdempotencyKey(string(make([]byte, 256)))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if o := rpc.ApplyCallOptions([]rpc.CallOption{tt.opt}); o.Err == nil {
				t.Fatal("want an error naming the setting")
			}
		})
	}
	o := rpc.ApplyCallOptions([]rpc.CallOption{rpc.WithIdempotencyKey("order-42"), rpc.WithUseCache(false)})
	if o.Err != nil || *o.IdempotencyKey != "order-42" || *o.UseCache {
		t.Fatalf("valid options: %+v", o)
	}
}
