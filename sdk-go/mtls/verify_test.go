package mtls_test

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/secinfra/secinfra/sdk-go/mtls"
)

const (
	trustDomain = "example.org"
	selfID      = "spiffe://example.org/self"
	peerID      = "spiffe://example.org/peer"
)

// peerCase is one certificate a peer presents, and the rule that must
// refuse it ("" when it is accepted).
type peerCase struct {
	name     string
	cert     func(cas peerCAs) *tls.Certificate
	wantRule string
	wantID   string
}

// peerCAs are the CAs a peer's certificate may come from: the one in the
// bundle, one of another trust domain, and one of this trust domain that
// is in no bundle.
type peerCAs struct {
	trusted, foreign, rogue *testCA
}

func newPeerCAs(t *testing.T) peerCAs {
	return peerCAs{trusted: newTestCA(t, trustDomain), foreign: newTestCA(t, "other.test"), rogue: newTestCA(t, trustDomain)}
}

func peerCases() []peerCase {
	return []peerCase{
		{name: "valid SVID, authorized ID", wantID: peerID,
			cert: func(c peerCAs) *tls.Certificate { return c.trusted.issue(leaf{ids: []string{peerID}}) }},
		{name: "leaf-with-two-uri-sans", wantRule: mtls.RuleURISAN,
			cert: func(c peerCAs) *tls.Certificate {
				return c.trusted.issue(leaf{ids: []string{peerID, "spiffe://example.org/other"}})
			}},
		{name: "leaf-without-uri-san", wantRule: mtls.RuleURISAN,
			cert: func(c peerCAs) *tls.Certificate { return c.trusted.issue(leaf{}) }},
		{name: "leaf-with-an-https-uri", wantRule: mtls.RuleURISAN,
			cert: func(c peerCAs) *tls.Certificate {
				return c.trusted.issue(leaf{ids: []string{"https://example.org/peer"}})
			}},
		{name: "leaf-with-a-dot-dot-path", wantRule: mtls.RuleURISAN,
			cert: func(c peerCAs) *tls.Certificate {
				return c.trusted.issue(leaf{ids: []string{"spiffe://example.org/peer/../admin"}})
			}},
		{name: "leaf-naming-only-the-trust-domain", wantRule: mtls.RuleURISAN,
			cert: func(c peerCAs) *tls.Certificate { return c.trusted.issue(leaf{ids: []string{"spiffe://example.org"}}) }},
		{name: "leaf-that-is-a-ca", wantRule: mtls.RuleLeafNotCA, wantID: peerID,
			cert: func(c peerCAs) *tls.Certificate { return c.trusted.issue(leaf{ids: []string{peerID}, ca: true}) }},
		{name: "foreign-trust-domain", wantRule: mtls.RuleTrustDomain, wantID: "spiffe://other.test/peer",
			cert: func(c peerCAs) *tls.Certificate {
				return c.foreign.issue(leaf{ids: []string{"spiffe://other.test/peer"}})
			}},
		{name: "expired-leaf", wantRule: mtls.RuleValidity, wantID: peerID,
			cert: func(c peerCAs) *tls.Certificate {
				return c.trusted.issue(leaf{ids: []string{peerID}, notAfter: time.Now().Add(-time.Minute)})
			}},
		{name: "leaf-of-a-ca-not-in-the-bundle", wantRule: mtls.RuleChain, wantID: peerID,
			cert: func(c peerCAs) *tls.Certificate { return c.rogue.issue(leaf{ids: []string{peerID}}) }},
		{name: "unauthorized-id", wantRule: mtls.RuleAuthorizer, wantID: "spiffe://example.org/intruder",
			cert: func(c peerCAs) *tls.Certificate {
				return c.trusted.issue(leaf{ids: []string{"spiffe://example.org/intruder"}})
			}},
	}
}

// checkRefusal says whether err is the refusal the case wants.
func checkRefusal(t *testing.T, side string, err error, c peerCase) {
	t.Helper()
	var pe *mtls.PeerError
	if !errors.As(err, &pe) {
		t.Fatalf("%s: want a refusal by the %s rule, got %v", side, c.wantRule, err)
	}
	if pe.Rule != c.wantRule || pe.PeerID != c.wantID {
		t.Fatalf("%s: refused by rule %q for %q, want %q for %q: %v", side, pe.Rule, pe.PeerID, c.wantRule, c.wantID, err)
	}
	if !strings.Contains(err.Error(), "("+c.wantRule+" rule)") {
		t.Fatalf("%s: the message does not name the rule: %v", side, err)
	}
}

// The server configuration refuses a client certificate that breaks an
// X509-SVID rule, or that its authorizer does not accept.
func TestServerConfigVerifiesTheClient(t *testing.T) {
	cas := newPeerCAs(t)
	conf, err := mtls.ServerConfig(cas.trusted.source(selfID), mtls.AuthorizeID(peerID))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range peerCases() {
		t.Run(c.name, func(t *testing.T) {
			cert := c.cert(cas)
			// A client that presents cert and checks nothing itself.
			client := &tls.Config{Certificates: []tls.Certificate{*cert}, InsecureSkipVerify: true} //nolint:gosec // the peer under test
			r := handshake(t, conf, client)
			if c.wantRule == "" {
				if r.serverErr != nil || r.clientErr != nil {
					t.Fatalf("refused: server %v, client %v", r.serverErr, r.clientErr)
				}
				if id, ok := mtls.PeerIDFromConnectionState(r.serverSaw); !ok || id != peerID {
					t.Fatalf("PeerIDFromConnectionState = %q, %v", id, ok)
				}
				return
			}
			checkRefusal(t, "server", r.serverErr, c)
			if r.clientErr == nil {
				t.Fatal("the client's connection was not refused")
			}
		})
	}
}

// The client configuration refuses a server certificate the same way.
func TestClientConfigVerifiesTheServer(t *testing.T) {
	cas := newPeerCAs(t)
	conf, err := mtls.ClientConfig(cas.trusted.source(selfID), mtls.AuthorizeID(peerID))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range peerCases() {
		t.Run(c.name, func(t *testing.T) {
			cert := c.cert(cas)
			server := &tls.Config{Certificates: []tls.Certificate{*cert}, ClientAuth: tls.RequireAnyClientCert}
			r := handshake(t, server, conf)
			if c.wantRule == "" {
				if r.serverErr != nil || r.clientErr != nil {
					t.Fatalf("refused: server %v, client %v", r.serverErr, r.clientErr)
				}
				if id, ok := mtls.PeerIDFromConnectionState(r.clientSaw); !ok || id != peerID {
					t.Fatalf("PeerIDFromConnectionState = %q, %v", id, ok)
				}
				if id, _ := mtls.PeerIDFromConnectionState(r.serverSaw); id != selfID {
					t.Fatalf("the client presented %q, want %q", id, selfID)
				}
				return
			}
			checkRefusal(t, "client", r.clientErr, c)
		})
	}
}

// A client without a certificate never reaches the authorizer: the
// handshake requires one.
func TestServerConfigRequiresAClientCertificate(t *testing.T) {
	ca := newTestCA(t, trustDomain)
	conf, err := mtls.ServerConfig(ca.source(selfID), mtls.AuthorizeAny())
	if err != nil {
		t.Fatal(err)
	}
	r := handshake(t, conf, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the peer under test
	if r.serverErr == nil || !strings.Contains(r.serverErr.Error(), "certificate") {
		t.Fatalf("server error = %v, want a missing client certificate", r.serverErr)
	}
}

// The clock option moves the validity check: an hour-long leaf is expired
// two hours from now.
func TestWithClockChecksValidityAtThatTime(t *testing.T) {
	ca := newTestCA(t, trustDomain)
	later := func() time.Time { return time.Now().Add(2 * time.Hour) }
	conf, err := mtls.ServerConfig(ca.source(selfID), mtls.AuthorizeAny(), mtls.WithClock(later))
	if err != nil {
		t.Fatal(err)
	}
	client := &tls.Config{Certificates: []tls.Certificate{*ca.issue(leaf{ids: []string{peerID}})}, InsecureSkipVerify: true} //nolint:gosec // the peer under test
	checkRefusal(t, "server", handshake(t, conf, client).serverErr,
		peerCase{wantRule: mtls.RuleValidity, wantID: peerID})
}
