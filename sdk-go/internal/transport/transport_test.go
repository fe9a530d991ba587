package transport_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/secinfra/secinfra/sdk-go/identity"
	"github.com/secinfra/secinfra/sdk-go/internal/transport"
)

const serverID = "spiffe://example.org/secinfra/server"

// server serves over TLS with an SVID for id from a CA, and counts the
// connections it answered on.
type server struct {
	*httptest.Server
	bundle *identity.Bundle
	mu     sync.Mutex
	conns  map[string]bool
}

func newServer(t *testing.T, id string) *server { return newServerWith(t, id, nil) }

// newServerWith serves with handler (nil: answer {"ok":true}).
func newServerWith(t *testing.T, id string, handler http.HandlerFunc) *server {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, URIs: []*url.URL{{Scheme: "spiffe", Host: "example.org"}}}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u, _ := url.Parse(id)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, URIs: []*url.URL{u}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := identity.ParseBundle(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	if err != nil {
		t.Fatal(err)
	}
	s := &server{bundle: bundle, conns: map[string]bool{}}
	if handler == nil {
		handler = func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Request-Id", "r1")
			_, _ = w.Write([]byte(`{"ok":true}`))
		}
	}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.conns[r.RemoteAddr] = true
		s.mu.Unlock()
		handler(w, r)
	}))
	// Refused handshakes are what some tests are about: not worth a log line.
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}}}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func (s *server) connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func newTransport(t *testing.T, bundle *identity.Bundle, expect string) *transport.Transport {
	t.Helper()
	source, err := identity.NewStaticSource(nil, bundle, expect)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := transport.New(transport.Config{Source: source})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Close)
	return tr
}

func get(ctx context.Context, tr *transport.Transport, url string, snap *identity.Snapshot) (*transport.Response, *transport.Failure) {
	return tr.Send(ctx, transport.Request{Method: "GET", URL: url, Header: http.Header{}, MTLS: snap != nil,
		Snapshot: snap, Timeout: 5 * time.Second})
}

// The server is verified by its chain to the bundle and its SPIFFE ID, never
// its host name (spec 8.5); a server that fails is never sent the request.
func TestSendVerifiesTheServer(t *testing.T) {
	srv := newServer(t, serverID)
	tests := []struct {
		name      string
		expect    string
		bundle    *identity.Bundle
		wantCheck string
	}{
		{name: "server svid from a bundled CA", expect: serverID, bundle: srv.bundle},
		{name: "wrong spiffe id", expect: "spiffe://example.org/not/the/server", bundle: srv.bundle, wantCheck: "spiffe_id"},
		{name: "ca in no bundle", expect: serverID, bundle: newServer(t, serverID).bundle, wantCheck: "chain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTransport(t, tt.bundle, tt.expect)
			resp, fail := get(context.Background(), tr, srv.URL+"/v1/x", nil)
			if tt.wantCheck == "" {
				if fail != nil {
					t.Fatal(fail)
				}
				if resp.Status != 200 || string(resp.Body) != `{"ok":true}` || resp.Header.Get("Request-Id") != "r1" {
					t.Fatalf("answer %d %q", resp.Status, resp.Body)
				}
				return
			}
			var verr *identity.VerificationError
			if fail == nil || !errors.As(fail, &verr) || verr.Check != tt.wantCheck {
				t.Fatalf("want a %s verification failure, got %v", tt.wantCheck, fail)
			}
		})
	}
}

// An mTLS pool belongs to one snapshot: a new one gets new connections
// (spec 9.6.1), the same one reuses its idle connection.
func TestPoolFollowsTheSnapshot(t *testing.T) {
	srv := newServer(t, serverID)
	tr := newTransport(t, srv.bundle, serverID)
	first, second := &identity.Snapshot{Serial: "1a"}, &identity.Snapshot{Serial: "2b"}
	for i, snap := range []*identity.Snapshot{first, first, second, second} {
		if _, fail := get(context.Background(), tr, srv.URL, snap); fail != nil {
			t.Fatalf("request %d: %v", i+1, fail)
		}
	}
	if n := srv.connections(); n != 2 {
		t.Fatalf("%d connections for two snapshots, want 2", n)
	}
}

// A failure says whether the request may have been sent, and whether the
// attempt ran out of time (what retry.Decide needs).
func TestSendReportsTimeoutAfterSending(t *testing.T) {
	release := make(chan struct{})
	srv := newServerWith(t, serverID, func(http.ResponseWriter, *http.Request) { <-release })
	defer close(release)
	tr := newTransport(t, srv.bundle, serverID)
	_, fail := tr.Send(context.Background(), transport.Request{Method: "GET", URL: srv.URL, Header: http.Header{},
		Timeout: 100 * time.Millisecond})
	if fail == nil || !fail.Sent || !fail.Timeout {
		t.Fatalf("want a timed-out failure after sending, got %+v", fail)
	}
}
