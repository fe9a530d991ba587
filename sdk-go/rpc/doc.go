// Package rpc is the contract between the generated service clients
// (gen/secinfrav1) and the SDK runtime: RPC descriptors, the Invoker that
// makes calls, per-call options, result metadata and the error tree.
//
// Errors: every error a call returns is an *Error (use errors.As), and its
// family answers errors.Is:
//
//	*Error                      Code, Message, Status, RequestID, Retryable,
//	│                           RetryAfter, Attempts, StopReason, Details,
//	│                           Unwrap()
//	├── ErrAPI                  the server answered with an error status
//	│   ├── ErrInvalidArgument  invalid_argument, payload_too_large,
//	│   │                       method_not_allowed, idempotency_key_reused
//	│   ├── ErrUnauthenticated  unauthenticated
//	│   ├── ErrPermissionDenied permission_denied
//	│   ├── ErrNotFound         not_found
//	│   ├── ErrConflict         already_exists, conflict
//	│   ├── ErrFailedPrecondition failed_precondition
//	│   ├── ErrRateLimited      rate_limited
//	│   ├── ErrUnavailable      unavailable, deadline_exceeded (from the server)
//	│   └── ErrInternal         internal, unimplemented, unknown codes
//	├── ErrTransport            no usable answer (connection, TLS, timeout)
//	│   └── ErrDeadlineExceeded the call's deadline passed (also matches
//	│                           context.DeadlineExceeded)
//	└── ErrIdentityExpired      the certificate expired and could not be
//	                            renewed or re-enrolled
//
// For example:
//
//	secret, err := client.Secrets.GetSecret(ctx, &secinfrav1.GetSecretRequest{Name: "a/b"})
//	switch {
//	case errors.Is(err, rpc.ErrNotFound):
//		// no such secret
//	case errors.Is(err, rpc.ErrTransport):
//		// the server could not be reached
//	}
package rpc
