package identity

import "context"

// Attestation proves the workload at enrolment: a single-use join token or
// a JWT provider (reusable: it allows re-enrolment after expiry).
type Attestation struct {
	joinToken string
	jwt       func(context.Context) (string, error)
}

// JoinToken is a one-time join token (sjt_...).
func JoinToken(token string) Attestation { return Attestation{joinToken: token} }

// JWTProvider returns a JWT attestation read afresh at each enrolment (a
// projected service-account token is rotated on disk).
func JWTProvider(fn func(context.Context) (string, error)) Attestation {
	return Attestation{jwt: fn}
}

// String never shows the token.
func (a Attestation) String() string {
	switch {
	case a.jwt != nil:
		return "identity.Attestation{jwt provider}"
	case a.joinToken != "":
		return "identity.Attestation{join token redacted}"
	}
	return "identity.Attestation{}"
}

// GoString is String.
func (a Attestation) GoString() string { return a.String() }
