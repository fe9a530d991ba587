package identity

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/secinfra/secinfra/sdk-go/gen/secinfrav1"
	"github.com/secinfra/secinfra/sdk-go/internal/rotation"
)

// Bundle refresh defaults and bounds (spec 10.7); internal/rotation holds the rules.
const (
	DefaultBundleRefresh = rotation.DefaultBundleRefresh
	MinBundleRefresh     = rotation.DefaultBundleRefreshMin
	MaxBundleRefresh     = rotation.DefaultBundleRefreshMax
	DefaultBundleRetry   = rotation.DefaultBundleRetry
)

// Bundle is the set of CAs a client trusts, with its sequence and refresh
// hint. It is immutable.
type Bundle struct {
	// CAs are the trusted CA certificates.
	CAs []*x509.Certificate
	// Sequence is spiffe_sequence (0 for a PEM bundle).
	Sequence int
	// RefreshHint is spiffe_refresh_hint; 0 when absent.
	RefreshHint time.Duration

	pool        *x509.CertPool
	fingerprint [32]byte
}

// NewBundle builds a bundle from CA certificates.
func NewBundle(cas []*x509.Certificate, sequence int, hint time.Duration) (*Bundle, error) {
	if len(cas) == 0 {
		return nil, errors.New("secinfra: identity: the trust bundle holds no X.509 CA")
	}
	pool := x509.NewCertPool()
	h := sha256.New()
	for _, ca := range cas {
		pool.AddCert(ca)
		h.Write(ca.Raw)
	}
	b := &Bundle{CAs: cas, Sequence: sequence, RefreshHint: hint, pool: pool}
	copy(b.fingerprint[:], h.Sum(nil))
	return b, nil
}

// Pool is the CAs as an x509.CertPool (the only trust anchors).
func (b *Bundle) Pool() *x509.CertPool { return b.pool }

// PEM encodes the CAs.
func (b *Bundle) PEM() []byte {
	var buf bytes.Buffer
	for _, ca := range b.CAs {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
	}
	return buf.Bytes()
}

// Fingerprint identifies the bundle's CA set (SHA-256 over the DER certificates).
func (b *Bundle) Fingerprint() string { return fmt.Sprintf("%x", b.fingerprint) }

// SameCAs reports whether two bundles hold the same certificates.
func (b *Bundle) SameCAs(other *Bundle) bool {
	return other != nil && b.fingerprint == other.fingerprint
}

// Refresh is the interval before the next fetch with the default bounds:
// the hint clamped to [1 s, 86400 s], or 300 s without a usable hint (spec
// 10.2.1). A client with other bounds (secinfra.WithBundleRefreshBounds)
// schedules by those.
func (b *Bundle) Refresh() time.Duration {
	return rotation.DefaultPolicy().BundleRefresh(b.RefreshHint)
}

// ParseBundle reads an initial bundle: a SPIFFE bundle document when the
// first non-space character is '{', else PEM certificates (spec 8.4.1).
func ParseBundle(data []byte) (*Bundle, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		var wire secinfrav1.TrustBundle
		if err := json.Unmarshal(trimmed, &wire); err != nil {
			return nil, fmt.Errorf("secinfra: identity: invalid SPIFFE bundle: %w", err)
		}
		return BundleFromWire(&wire)
	}
	cas, err := ParseCertificates(data)
	if err != nil {
		return nil, err
	}
	return NewBundle(cas, 0, 0)
}

// BundleFromWire takes the x509-svid keys' first x5c certificates (spec 10.1).
func BundleFromWire(w *secinfrav1.TrustBundle) (*Bundle, error) {
	var cas []*x509.Certificate
	for _, k := range w.Keys {
		if k == nil || k.Use != "x509-svid" || len(k.X5c) == 0 {
			continue
		}
		der, err := base64.StdEncoding.DecodeString(k.X5c[0])
		if err != nil {
			return nil, fmt.Errorf("secinfra: identity: bundle x5c is not base64: %w", err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("secinfra: identity: bundle x5c is not a certificate: %w", err)
		}
		cas = append(cas, cert)
	}
	return NewBundle(cas, int(w.SpiffeSequence), time.Duration(w.SpiffeRefreshHint)*time.Second)
}

// TrustDomainFromBundle derives the trust domain from a CA's spiffe:// URI
// SAN (spec 8.4.3).
func TrustDomainFromBundle(b *Bundle) (string, error) {
	for _, ca := range b.CAs {
		for _, u := range ca.URIs {
			if u.Scheme == "spiffe" && u.Host != "" {
				return u.Host, nil
			}
		}
	}
	return "", errors.New("secinfra: identity: no CA in the bundle names a trust domain; configure the server ID")
}

// VerificationError is a server that failed verification (spec 8.5).
type VerificationError struct {
	// Check is "chain" or "spiffe_id".
	Check string
	// Reason says what failed.
	Reason string
	// Err is the verifier's error, for a chain failure.
	Err error
}

// Error says which check failed.
func (e *VerificationError) Error() string {
	if e.Check == "chain" {
		return "secinfra: transport: the server's certificate does not chain to the trust bundle (" + e.Reason + "); check that the bundle is current"
	}
	return "secinfra: transport: the server presented the wrong SPIFFE ID (" + e.Reason + ")"
}

// Unwrap returns the verifier's error.
func (e *VerificationError) Unwrap() error { return e.Err }

// VerifyServer checks a server's chain against the bundle at now, and that
// its leaf's only URI SAN is serverID (spec 8.5.1, 8.5.2). Host names are
// not checked.
func VerifyServer(rawCerts [][]byte, b *Bundle, serverID string, now time.Time) error {
	if len(rawCerts) == 0 {
		return &VerificationError{Check: "chain", Reason: "the server presented no certificate"}
	}
	certs := make([]*x509.Certificate, len(rawCerts))
	for i, raw := range rawCerts {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return &VerificationError{Check: "chain", Reason: "unparsable certificate", Err: err}
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{
		Roots: b.Pool(), Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return &VerificationError{Check: "chain", Reason: err.Error(), Err: err}
	}
	leaf := certs[0]
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != serverID {
		presented := "none"
		if len(leaf.URIs) > 0 {
			presented = leaf.URIs[0].String()
			if len(leaf.URIs) > 1 {
				presented = fmt.Sprintf("%d URI SANs", len(leaf.URIs))
			}
		}
		return &VerificationError{Check: "spiffe_id", Reason: fmt.Sprintf("expected %s, presented %s", serverID, presented)}
	}
	return nil
}
