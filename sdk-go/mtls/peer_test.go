package mtls_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http/httptest"
	"testing"

	"github.com/secinfra/secinfra/sdk-go/mtls"
)

// Without TLS, a client certificate or a finished handshake there is no
// peer ID to read.
func TestPeerIDWithoutAVerifiedPeer(t *testing.T) {
	plain := httptest.NewRequest("GET", "http://example.org/", nil)
	if id, ok := mtls.PeerID(plain); ok || id != "" {
		t.Fatalf("PeerID over plain HTTP = %q, %v", id, ok)
	}
	noCert := httptest.NewRequest("GET", "https://example.org/", nil)
	noCert.TLS = &tls.ConnectionState{HandshakeComplete: true}
	if id, ok := mtls.PeerID(noCert); ok || id != "" {
		t.Fatalf("PeerID without a client certificate = %q, %v", id, ok)
	}
	ca := newTestCA(t, trustDomain)
	cert := ca.issue(leaf{ids: []string{peerID}})
	if _, ok := mtls.PeerIDFromConnectionState(tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert.Leaf}}); ok {
		t.Fatal("a peer ID was read before the handshake finished")
	}
}

// The HTTP helpers refuse what the configurations refuse.
func TestHTTPHelpersNeedAnAuthorizer(t *testing.T) {
	source := newTestCA(t, trustDomain).source(selfID)
	if _, err := mtls.NewServer(":0", nil, source, nil); err == nil {
		t.Fatal("NewServer without an authorizer")
	}
	if _, err := mtls.NewTransport(source, nil); err == nil {
		t.Fatal("NewTransport without an authorizer")
	}
	if _, err := mtls.NewClient(nil, mtls.AuthorizeAny()); err == nil {
		t.Fatal("NewClient without a source")
	}
	srv, err := mtls.NewServer(":0", nil, source, mtls.AuthorizeAny())
	if err != nil {
		t.Fatal(err)
	}
	if srv.TLSConfig == nil || srv.TLSConfig.ClientAuth != tls.RequireAnyClientCert || srv.ReadHeaderTimeout != mtls.DefaultReadHeaderTimeout {
		t.Fatalf("NewServer's server: %+v", srv)
	}
}
