package mtls

import (
	"crypto/x509"
	"fmt"
	"time"

	"github.com/secinfra/secinfra/sdk-go/identity"
)

// The rules a peer's certificate passes, in the order they are checked,
// named in PeerError.Rule (X509-SVID spec, sections 4 and 5).
const (
	// RuleCertificate: the peer presented a certificate.
	RuleCertificate = "certificate"
	// RuleURISAN: the leaf has exactly one URI SAN, and it is the SPIFFE
	// ID of a workload (with a path, not only a trust domain).
	RuleURISAN = "uri_san"
	// RuleLeafNotCA: the leaf is not a CA (cA=false, no keyCertSign or
	// cRLSign key usage).
	RuleLeafNotCA = "leaf_not_ca"
	// RuleTrustDomain: the ID is in the trust domain of the source's bundle.
	RuleTrustDomain = "trust_domain"
	// RuleValidity: the leaf is valid now (not expired, not yet valid).
	RuleValidity = "validity"
	// RuleChain: the chain leads to a CA of the source's current bundle, for
	// the peer's role (client or server authentication).
	RuleChain = "chain"
	// RuleAuthorizer: the configured Authorizer accepted the SPIFFE ID.
	RuleAuthorizer = "authorizer"
)

// PeerError is a peer refused during the handshake. Its message names the
// rule that failed and the peer's SPIFFE ID when it has one; it never holds
// key material. The TLS handshake fails with it, so a client sees it from
// its request, and an http.Server logs it in its handshake error line.
type PeerError struct {
	// Rule is the rule that failed: one of the Rule constants.
	Rule string
	// PeerID is the peer's SPIFFE ID, "" when the rule failed before one
	// was read (RuleCertificate, RuleURISAN).
	PeerID string
	// Reason says what the rule found.
	Reason string
	// Err is the underlying error, if any (the verifier's, or the
	// authorizer's); Unwrap returns it.
	Err error
}

// Error names the rule, the peer and what was found.
func (e *PeerError) Error() string {
	peer := "the peer"
	if e.PeerID != "" {
		peer = "the peer " + e.PeerID
	}
	return "secinfra: mtls: " + peer + " was refused (" + e.Rule + " rule): " + e.Reason
}

// Unwrap returns the underlying error.
func (e *PeerError) Unwrap() error { return e.Err }

// verifier checks a peer's certificates against the source's current
// bundle, then asks the authorizer.
type verifier struct {
	source      identity.Source
	trustDomain string
	authorizer  Authorizer
	usage       x509.ExtKeyUsage
	now         func() time.Time
}

// verify applies every rule to the peer's chain (leaf first) and returns
// the peer's SPIFFE ID.
func (v *verifier) verify(certs []*x509.Certificate) (string, error) {
	if len(certs) == 0 {
		return "", &PeerError{Rule: RuleCertificate, Reason: "it presented no certificate"}
	}
	leaf := certs[0]
	if len(leaf.URIs) != 1 {
		return "", &PeerError{Rule: RuleURISAN,
			Reason: fmt.Sprintf("its leaf has %d URI SANs, an X509-SVID has exactly one", len(leaf.URIs))}
	}
	id := leaf.URIs[0].String()
	td, path, err := parseID(id)
	if err != nil {
		return "", &PeerError{Rule: RuleURISAN, Reason: err.Error(), Err: err}
	}
	if path == "" {
		return "", &PeerError{Rule: RuleURISAN,
			Reason: fmt.Sprintf("its ID %s names a trust domain, not a workload (an X509-SVID leaf's ID has a path)", id)}
	}
	if leaf.IsCA || leaf.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != 0 {
		return "", &PeerError{Rule: RuleLeafNotCA, PeerID: id,
			Reason: "its leaf is a CA certificate (cA=true, keyCertSign or cRLSign); an X509-SVID leaf is not"}
	}
	if td != v.trustDomain {
		return "", &PeerError{Rule: RuleTrustDomain, PeerID: id,
			Reason: fmt.Sprintf("it is of the trust domain %s, the trust bundle is for %s", td, v.trustDomain)}
	}
	now := v.now()
	if now.After(leaf.NotAfter) {
		return "", &PeerError{Rule: RuleValidity, PeerID: id,
			Reason: "its certificate expired at " + leaf.NotAfter.UTC().Format(time.RFC3339)}
	}
	if now.Before(leaf.NotBefore) {
		return "", &PeerError{Rule: RuleValidity, PeerID: id,
			Reason: "its certificate is not valid before " + leaf.NotBefore.UTC().Format(time.RFC3339)}
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots: v.source.Bundle().Pool(), Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{v.usage},
	})
	if err != nil {
		return "", &PeerError{Rule: RuleChain, PeerID: id,
			Reason: "its certificate does not chain to the current trust bundle: " + err.Error(), Err: err}
	}
	if err := v.authorizer.Authorize(id, chains); err != nil {
		return "", &PeerError{Rule: RuleAuthorizer, PeerID: id, Reason: err.Error(), Err: err}
	}
	return id, nil
}
