package identity

import (
	"context"
	"crypto"
	"strings"
	"time"
)

// The checks a new certificate passes before it is installed, named in
// CertificateError.Check.
const (
	// CheckSVID: the chain parses, its leaf is an X509-SVID (one spiffe://
	// URI SAN) and holds the public key of the key just made (spec 8.7.4).
	CheckSVID = "svid"
	// CheckSPIFFEID: a renewed certificate names the current SPIFFE ID (spec 9.3.3).
	CheckSPIFFEID = "spiffe_id"
	// CheckChain: the chain verifies against the trust bundle, after one
	// bundle refresh when it did not at first (spec 8.7.4).
	CheckChain = "chain"
)

// CertificateError is an issued or renewed certificate the client refused.
// A refused certificate is never used: an enrolment fails with this error;
// a renewal counts as failed (it is tried again with backoff, and the
// renewal_failed event carries this error) while the current certificate
// stays in use (spec 9.3.3).
type CertificateError struct {
	// Check is the check that failed: CheckSVID, CheckSPIFFEID or CheckChain.
	Check string
	// Reason says what the check found.
	Reason string
	// Err is the underlying error, if any (Unwrap returns it).
	Err error
}

// Error names the check and what it found.
func (e *CertificateError) Error() string {
	return "secinfra: identity: the new certificate was refused (" + e.Check + " check): " + e.Reason
}

// Unwrap returns the underlying error.
func (e *CertificateError) Unwrap() error { return e.Err }

// checkNew makes the snapshot of a chain the server returned for key, and
// checks it: an X509-SVID for key; when current is set (a renewal), for the
// same SPIFFE ID; chaining to the bundle, which refresh may fetch once
// (a CA the client has not seen yet, during a CA rotation).
func checkNew(ctx context.Context, chainPEM []byte, key crypto.Signer, current *Snapshot,
	bundle func() *Bundle, refresh func(context.Context) error, now time.Time) (*Snapshot, error) {
	s, err := NewSnapshot(chainPEM, key, now)
	if err != nil {
		return nil, &CertificateError{Check: CheckSVID, Reason: strings.TrimPrefix(err.Error(), "secinfra: identity: "), Err: err}
	}
	if current != nil && s.SpiffeID != current.SpiffeID {
		return nil, &CertificateError{Check: CheckSPIFFEID,
			Reason: "it names " + s.SpiffeID + ", but a renewal keeps the current " + current.SpiffeID}
	}
	err = s.verify(bundle(), now)
	if err == nil {
		return s, nil
	}
	if ferr := refresh(ctx); ferr != nil {
		return nil, &CertificateError{Check: CheckChain, Err: err,
			Reason: "it does not chain to the trust bundle (" + err.Error() + "), and the bundle refresh failed: " + ferr.Error()}
	}
	if err := s.verify(bundle(), now); err != nil {
		return nil, &CertificateError{Check: CheckChain, Err: err,
			Reason: "it does not chain to the trust bundle, even after a bundle refresh (" + err.Error() + ")"}
	}
	return s, nil
}
