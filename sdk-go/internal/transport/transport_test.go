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
	"net"
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

// stalledTLS accepts TCP connections and never completes a TLS handshake:
// it reads and drops what the client sends and, when drip is set, answers
// with a TLS record header announcing 16 KiB it then sends a byte at a time.
// closed receives once per connection when the client has closed it.
func stalledTLS(t *testing.T, drip bool) (url string, closed <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}, 16)
	stop := make(chan struct{})
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		close(stop)
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			go func() {
				_, _ = io.Copy(io.Discard, conn) // returns once the client closes
				done <- struct{}{}
			}()
			if drip {
				go dripHello(conn, stop)
			}
		}
	}()
	return "https://" + ln.Addr().String() + "/v1/x", done
}

// dripHello sends a handshake record header for 16 KiB, then a byte every
// 10 ms until stop or a write fails.
func dripHello(conn net.Conn, stop <-chan struct{}) {
	if _, err := conn.Write([]byte{0x16, 0x03, 0x03, 0x40, 0x00}); err != nil {
		return
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			if _, err := conn.Write([]byte{0x02}); err != nil {
				return
			}
		}
	}
}

// The attempt timeout covers the TLS handshake (spec 5.2.2): an attempt whose
// handshake stalls ends on time, before sending, and its connection is
// closed (5.2.3).
func TestSendTimesOutAStalledHandshake(t *testing.T) {
	const timeout = 200 * time.Millisecond
	const slack = 250 * time.Millisecond
	bundle := newServer(t, serverID).bundle
	tests := []struct {
		name string
		drip bool
	}{
		{name: "server never answers the client hello"},
		{name: "server drips its hello a byte at a time", drip: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, closed := stalledTLS(t, tt.drip)
			tr := newTransport(t, bundle, serverID)
			start := time.Now()
			_, fail := tr.Send(context.Background(), transport.Request{Method: "POST", URL: url, Header: http.Header{},
				Body: []byte(`{}`), Timeout: timeout})
			took := time.Since(start)
			if fail == nil || fail.Sent || !fail.Timeout {
				t.Fatalf("want a timed-out failure before sending, got %+v", fail)
			}
			if took > timeout+slack {
				t.Fatalf("the attempt took %v, its timeout is %v", took, timeout)
			}
			select {
			case <-closed:
			case <-time.After(timeout + slack - took):
				t.Fatal("the abandoned connection was not closed")
			}
		})
	}
}

// serverIdleTimeout is the reference server's idle_timeout_seconds
// (server/src/secinfra_server/config.py).
const serverIdleTimeout = 15 * time.Second

// The client gives an idle connection up before the server closes it, so it
// never sends a request into a close it has not seen yet.
func TestDefaultIdleTimeoutIsBelowTheServers(t *testing.T) {
	if transport.DefaultIdleTimeout <= 0 || transport.DefaultIdleTimeout >= serverIdleTimeout {
		t.Fatalf("DefaultIdleTimeout %v, want above 0 and below the server's %v", transport.DefaultIdleTimeout, serverIdleTimeout)
	}
}

// A connection idle for longer than the idle timeout is closed, not reused.
func TestIdleConnectionsExpire(t *testing.T) {
	const idle = 100 * time.Millisecond
	tests := []struct {
		name      string
		gap       time.Duration
		wantConns int
	}{
		{name: "reused within the idle timeout", gap: 0, wantConns: 1},
		{name: "new connection after the idle timeout", gap: 3 * idle, wantConns: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, serverID)
			source, err := identity.NewStaticSource(nil, srv.bundle, serverID)
			if err != nil {
				t.Fatal(err)
			}
			tr, err := transport.New(transport.Config{Source: source, IdleTimeout: idle})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(tr.Close)
			for i := range 2 {
				if i > 0 {
					time.Sleep(tt.gap)
				}
				if _, fail := get(context.Background(), tr, srv.URL, nil); fail != nil {
					t.Fatalf("request %d: %v", i+1, fail)
				}
			}
			if n := srv.connections(); n != tt.wantConns {
				t.Fatalf("%d connections, want %d", n, tt.wantConns)
			}
		})
	}
}
