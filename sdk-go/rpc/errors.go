package rpc

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Wire error codes (secinfra.v1.ErrorCode), plus the client's own.
const (
	CodeInvalidArgument      = "invalid_argument"
	CodePayloadTooLarge      = "payload_too_large"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeIdempotencyKeyReused = "idempotency_key_reused"
	CodeUnauthenticated      = "unauthenticated"
	CodePermissionDenied     = "permission_denied"
	CodeNotFound             = "not_found"
	CodeAlreadyExists        = "already_exists"
	CodeConflict             = "conflict"
	CodeFailedPrecondition   = "failed_precondition"
	CodeRateLimited          = "rate_limited"
	CodeUnavailable          = "unavailable"
	CodeDeadlineExceeded     = "deadline_exceeded"
	CodeInternal             = "internal"
	CodeUnimplemented        = "unimplemented"
	CodeIdentityExpired      = "identity_expired"
)

// Kind is an error's most specific family (spec 11.3).
type Kind int

// The families. Their String is the conformance protocol's family name.
const (
	KindInternal Kind = iota
	KindInvalidArgument
	KindUnauthenticated
	KindPermissionDenied
	KindNotFound
	KindConflict
	KindFailedPrecondition
	KindRateLimited
	KindUnavailable
	KindTransport
	KindDeadlineExceeded
	KindIdentityExpired
)

var kindNames = [...]string{
	KindInternal:           "InternalError",
	KindInvalidArgument:    "InvalidArgument",
	KindUnauthenticated:    "Unauthenticated",
	KindPermissionDenied:   "PermissionDenied",
	KindNotFound:           "NotFound",
	KindConflict:           "Conflict",
	KindFailedPrecondition: "FailedPrecondition",
	KindRateLimited:        "RateLimited",
	KindUnavailable:        "Unavailable",
	KindTransport:          "TransportError",
	KindDeadlineExceeded:   "DeadlineExceeded",
	KindIdentityExpired:    "IdentityExpired",
}

// String returns the family's name (NotFound, TransportError, ...).
func (k Kind) String() string {
	if int(k) >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// IsAPI reports whether the kind is an answer from the server.
func (k Kind) IsAPI() bool { return k <= KindUnavailable }

// Family sentinels, for errors.Is. See the package documentation for the tree.
var (
	ErrAPI                = errors.New("secinfra: api error")
	ErrInvalidArgument    = errors.New("secinfra: invalid argument")
	ErrUnauthenticated    = errors.New("secinfra: unauthenticated")
	ErrPermissionDenied   = errors.New("secinfra: permission denied")
	ErrNotFound           = errors.New("secinfra: not found")
	ErrConflict           = errors.New("secinfra: conflict")
	ErrFailedPrecondition = errors.New("secinfra: failed precondition")
	ErrRateLimited        = errors.New("secinfra: rate limited")
	ErrUnavailable        = errors.New("secinfra: unavailable")
	ErrInternal           = errors.New("secinfra: internal error")
	ErrTransport          = errors.New("secinfra: transport error")
	ErrDeadlineExceeded   = errors.New("secinfra: deadline exceeded")
	ErrIdentityExpired    = errors.New("secinfra: identity expired")
)

var kindSentinels = map[Kind]error{
	KindInternal:           ErrInternal,
	KindInvalidArgument:    ErrInvalidArgument,
	KindUnauthenticated:    ErrUnauthenticated,
	KindPermissionDenied:   ErrPermissionDenied,
	KindNotFound:           ErrNotFound,
	KindConflict:           ErrConflict,
	KindFailedPrecondition: ErrFailedPrecondition,
	KindRateLimited:        ErrRateLimited,
	KindUnavailable:        ErrUnavailable,
	KindTransport:          ErrTransport,
	KindDeadlineExceeded:   ErrDeadlineExceeded,
	KindIdentityExpired:    ErrIdentityExpired,
}

// Error is every error the SDK returns from a call (spec 11.5).
type Error struct {
	// Kind is the most specific family.
	Kind Kind
	// Code is the wire code as received (or derived from the status), or
	// the client's own (deadline_exceeded, identity_expired, unavailable).
	Code string
	// Message is the server's message, or the SDK's ("secinfra: <component>: ...").
	Message string
	// Status is the HTTP status of the last answered attempt; 0 for none.
	Status int
	// RequestID is the Request-Id header of the call's last answered
	// attempt, also when a later attempt got no answer (spec 11.5), else
	// that answer's envelope's request_id.
	RequestID string
	// Retryable: the call's last outcome was retryable and a limit stopped it.
	Retryable bool
	// RetryAfter is the server's Retry-After; valid only when HasRetryAfter.
	RetryAfter time.Duration
	// HasRetryAfter says whether RetryAfter is set.
	HasRetryAfter bool
	// Attempts is the HTTP attempts the call made (0 when none).
	Attempts int
	// Endpoint is the endpoint URL of the call's last attempt (spec
	// 12.8.2); "" when no attempt was made.
	Endpoint string
	// StopReason says why retrying stopped, when the last outcome could
	// have been retried but a rule ended the call (spec 3.9.5): attempts
	// exhausted, the deadline, the retry budget spent, a Retry-After too
	// long to wait, the server's Secinfra-Should-Retry: false, or a request
	// unsafe to send again. Empty when the outcome is never retried (a 404).
	// Error shows it after Message, which stays as the server sent it.
	StopReason string
	// Details is the envelope's details object (nil when none).
	Details map[string]any
	// Cause is the underlying error, if any (Unwrap returns it).
	Cause error
}

// Error is the message, then why retrying stopped, then the request id,
// each when there is one: "scripted; retrying stopped: attempts exhausted
// (4 of 4 made) (request id 01J...)".
func (e *Error) Error() string {
	msg := e.Message
	if e.StopReason != "" {
		msg += "; retrying stopped: " + e.StopReason
	}
	if e.RequestID != "" {
		return fmt.Sprintf("%s (request id %s)", msg, e.RequestID)
	}
	return msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// Is matches the error's family sentinels (ErrNotFound, ErrAPI, ...) and,
// for a deadline, context.DeadlineExceeded.
func (e *Error) Is(target error) bool {
	if target == nil {
		return false
	}
	if kindSentinels[e.Kind] == target {
		return true
	}
	switch target {
	case ErrAPI:
		return e.Kind.IsAPI()
	case ErrTransport:
		return e.Kind == KindDeadlineExceeded
	case context.DeadlineExceeded:
		return e.Kind == KindDeadlineExceeded
	}
	return false
}

// CodeForStatus is the code of an answer without a usable envelope (spec 11.2).
func CodeForStatus(status int) string {
	switch status {
	case 400:
		return CodeInvalidArgument
	case 401:
		return CodeUnauthenticated
	case 403:
		return CodePermissionDenied
	case 404:
		return CodeNotFound
	case 405:
		return CodeMethodNotAllowed
	case 408, 502, 503:
		return CodeUnavailable
	case 409:
		return CodeConflict
	case 412:
		return CodeFailedPrecondition
	case 413:
		return CodePayloadTooLarge
	case 422:
		return CodeIdempotencyKeyReused
	case 429:
		return CodeRateLimited
	case 501:
		return CodeUnimplemented
	case 504:
		return CodeDeadlineExceeded
	}
	if status >= 500 {
		return CodeInternal
	}
	return CodeInvalidArgument
}

// KindForCode is the family of an API error code; unknown codes are
// KindInternal (spec 11.1.3).
func KindForCode(code string) Kind {
	switch code {
	case CodeInvalidArgument, CodePayloadTooLarge, CodeMethodNotAllowed, CodeIdempotencyKeyReused:
		return KindInvalidArgument
	case CodeUnauthenticated:
		return KindUnauthenticated
	case CodePermissionDenied:
		return KindPermissionDenied
	case CodeNotFound:
		return KindNotFound
	case CodeAlreadyExists, CodeConflict:
		return KindConflict
	case CodeFailedPrecondition:
		return KindFailedPrecondition
	case CodeRateLimited:
		return KindRateLimited
	case CodeUnavailable, CodeDeadlineExceeded:
		return KindUnavailable
	}
	return KindInternal
}
