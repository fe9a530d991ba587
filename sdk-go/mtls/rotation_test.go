package mtls_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secinfra/secinfra/sdk-go/identity"
	"github.com/secinfra/secinfra/sdk-go/mtls"
	"github.com/secinfra/secinfra/sdk-go/rpc"
)

// swappable is an identity source whose snapshot and bundle the test
// replaces, as a rotating source does when it renews and when the CA
// rotates. integration_test.go does the same with the reference server.
type swappable struct {
	mu       sync.Mutex
	snapshot *identity.Snapshot
	bundle   *identity.Bundle
}

func (s *swappable) set(snapshot *identity.Snapshot, bundle *identity.Bundle) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if snapshot != nil {
		s.snapshot = snapshot
	}
	if bundle != nil {
		s.bundle = bundle
	}
}

func (s *swappable) ServerID() string { return identity.ServerID(trustDomain) }

func (s *swappable) Snapshot() *identity.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshot
}

func (s *swappable) Bundle() *identity.Bundle {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bundle
}

func (s *swappable) Current(context.Context) (*identity.Snapshot, error) { return s.Snapshot(), nil }

func (s *swappable) RefreshBundle(context.Context) (bool, error) { return false, nil }

func (s *swappable) Subscribe(func(identity.Event)) {}

func bundleOf(t *testing.T, cas ...*testCA) *identity.Bundle {
	t.Helper()
	certs := make([]*x509.Certificate, len(cas))
	for i, ca := range cas {
		certs[i] = ca.cert
	}
	b, err := identity.NewBundle(certs, len(cas), 0)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// One configuration, built once, follows its source: the next handshake
// presents a renewed certificate, accepts a peer of a CA added to the
// bundle, and refuses one of a CA removed from it.
func TestConfigsFollowTheSource(t *testing.T) {
	oldCA, newCA := newTestCA(t, trustDomain), newTestCA(t, trustDomain)
	source := &swappable{}
	source.set(oldCA.source(selfID).Snapshot(), bundleOf(t, oldCA))
	conf, err := mtls.ServerConfig(source, mtls.AuthorizeID(peerID))
	if err != nil {
		t.Fatal(err)
	}
	peer := func(ca *testCA) *tls.Config {
		return &tls.Config{Certificates: []tls.Certificate{*ca.issue(leaf{ids: []string{peerID}})}, InsecureSkipVerify: true} //nolint:gosec // the peer under test
	}
	presented := func(r result) string {
		t.Helper()
		if r.serverErr != nil || r.clientErr != nil {
			t.Fatalf("refused: server %v, client %v", r.serverErr, r.clientErr)
		}
		return r.clientSaw.PeerCertificates[0].SerialNumber.Text(16)
	}

	first := source.Snapshot()
	if got := presented(handshake(t, conf, peer(oldCA))); got != first.Serial {
		t.Fatalf("presented %s, want the first certificate %s", got, first.Serial)
	}
	renewed := oldCA.source(selfID).Snapshot()
	source.set(renewed, nil)
	if got := presented(handshake(t, conf, peer(oldCA))); got != renewed.Serial {
		t.Fatalf("after renewal presented %s, want %s", got, renewed.Serial)
	}

	// CA rotation: a peer of the new CA is refused until the bundle holds it.
	checkRefusal(t, "before the bundle update", handshake(t, conf, peer(newCA)).serverErr,
		peerCase{wantRule: mtls.RuleChain, wantID: peerID})
	source.set(nil, bundleOf(t, oldCA, newCA))
	presented(handshake(t, conf, peer(newCA)))
	presented(handshake(t, conf, peer(oldCA)))
	// Retire: the old CA leaves the bundle, and its peers are refused.
	source.set(nil, bundleOf(t, newCA))
	checkRefusal(t, "after retire", handshake(t, conf, peer(oldCA)).serverErr,
		peerCase{wantRule: mtls.RuleChain, wantID: peerID})
	presented(handshake(t, conf, peer(newCA)))
}

// A source with nothing valid to present fails the handshake with its
// reason (identity_expired) instead of presenting an expired certificate.
func TestAnExpiredIdentityIsNeverPresented(t *testing.T) {
	ca := newTestCA(t, trustDomain)
	conf, err := mtls.ClientConfig(ca.sourceFor(leaf{ids: []string{selfID}, notAfter: time.Now().Add(-time.Second)}), mtls.AuthorizeAny())
	if err != nil {
		t.Fatal(err)
	}
	server := &tls.Config{Certificates: []tls.Certificate{*ca.issue(leaf{ids: []string{peerID}})}, ClientAuth: tls.RequireAnyClientCert}
	r := handshake(t, server, conf)
	if !errors.Is(r.clientErr, rpc.ErrIdentityExpired) || !strings.Contains(r.clientErr.Error(), "secinfra: mtls: no certificate to present") {
		t.Fatalf("client error = %v, want identity_expired", r.clientErr)
	}
	if r.serverErr == nil {
		t.Fatal("the server accepted a handshake without a client certificate")
	}
}
