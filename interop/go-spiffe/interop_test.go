package interop_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/secinfra/secinfra/sdk-go/identity"
	"github.com/secinfra/secinfra/sdk-go/mtls"
	"github.com/secinfra/secinfra/sdk-go/secinfratest"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// requestTimeout bounds every request and server shutdown.
const requestTimeout = 10 * time.Second

// goSpiffeIdentity loads an SVID the reference server issued into
// go-spiffe's types, from the PEM a workload's files would hold.
func goSpiffeIdentity(t *testing.T, source *identity.StaticSource) (*x509svid.SVID, *x509bundle.Bundle) {
	t.Helper()
	keyPEM, err := source.Snapshot().KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	svid, err := x509svid.Parse(source.Snapshot().ChainPEM(), keyPEM)
	if err != nil {
		t.Fatalf("go-spiffe refused the reference server's SVID: %v", err)
	}
	bundle, err := x509bundle.Parse(spiffeid.RequireTrustDomainFromString(secinfratest.TrustDomain), source.Bundle().PEM())
	if err != nil {
		t.Fatalf("go-spiffe refused the reference server's bundle: %v", err)
	}
	return svid, bundle
}

// serve serves handler with conf on a free loopback port until the test ends.
func serve(t *testing.T, handler http.Handler, conf *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler, TLSConfig: conf, ReadHeaderTimeout: requestTimeout}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return "https://" + ln.Addr().String()
}

// get calls url and returns the body and the response's TLS state.
func get(t *testing.T, client *http.Client, url string) (string, *tls.ConnectionState, error) {
	t.Helper()
	client.Timeout = requestTimeout
	defer client.CloseIdleConnections()
	resp, err := client.Get(url)
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", nil, err
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d: %s", resp.StatusCode, data)
	}
	return string(data), resp.TLS, nil
}

// Our server configuration, on a rotating identity enrolled with the
// reference server, accepts a go-spiffe tlsconfig client holding an SVID of
// the same CA, and go-spiffe accepts our server's SVID; an ID our
// authorizer does not name is refused.
func TestOurServerAcceptsAGoSpiffeClient(t *testing.T) {
	srv := secinfratest.Start(t)
	billingID, ledgerID := secinfratest.SpiffeID("billing"), secinfratest.SpiffeID("ledger")
	billing := srv.Enrol(t, billingID)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := mtls.PeerID(r)
		_, _ = io.WriteString(w, id)
	})
	conf, err := mtls.ServerConfig(billing.Source(), mtls.AuthorizeID(ledgerID))
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, handler, conf)

	svid, bundle := goSpiffeIdentity(t, srv.StaticIdentity(t, ledgerID))
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: tlsconfig.MTLSClientConfig(svid, bundle, tlsconfig.AuthorizeID(spiffeid.RequireFromString(billingID))),
	}}
	body, state, err := get(t, client, url)
	if err != nil {
		t.Fatalf("the go-spiffe client failed: %v", err)
	}
	if body != ledgerID {
		t.Fatalf("our server saw %q, want %q", body, ledgerID)
	}
	serverID, err := x509svid.IDFromCert(state.PeerCertificates[0])
	if err != nil || serverID.String() != billingID {
		t.Fatalf("go-spiffe saw our server as %v (%v), want %s", serverID, err, billingID)
	}

	intruderSVID, intruderBundle := goSpiffeIdentity(t, srv.StaticIdentity(t, secinfratest.SpiffeID("intruder")))
	intruder := &http.Client{Transport: &http.Transport{
		TLSClientConfig: tlsconfig.MTLSClientConfig(intruderSVID, intruderBundle, tlsconfig.AuthorizeAny()),
	}}
	if _, _, err := get(t, intruder, url); err == nil {
		t.Fatal("our server accepted an ID its authorizer does not name")
	}
}

// Our client configuration, on a rotating identity, accepts a go-spiffe
// tlsconfig server holding an SVID of the reference server's CA, which in
// turn accepts our client's SVID; a server ID our authorizer does not name
// is refused.
func TestOurClientAcceptsAGoSpiffeServer(t *testing.T) {
	srv := secinfratest.Start(t)
	billingID, ledgerID := secinfratest.SpiffeID("billing"), secinfratest.SpiffeID("ledger")
	billing := srv.Enrol(t, billingID)
	svid, bundle := goSpiffeIdentity(t, srv.StaticIdentity(t, ledgerID))
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := x509svid.IDFromCert(r.TLS.PeerCertificates[0])
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, id.String())
	})
	url := serve(t, handler, tlsconfig.MTLSServerConfig(svid, bundle, tlsconfig.AuthorizeID(spiffeid.RequireFromString(billingID))))

	client, err := mtls.NewClient(billing.Source(), mtls.AuthorizeID(ledgerID))
	if err != nil {
		t.Fatal(err)
	}
	body, state, err := get(t, client, url)
	if err != nil {
		t.Fatalf("our client failed: %v", err)
	}
	if body != billingID {
		t.Fatalf("the go-spiffe server saw %q, want %q", body, billingID)
	}
	if id, ok := mtls.PeerIDFromConnectionState(*state); !ok || id != ledgerID {
		t.Fatalf("our client saw the server as %q, want %q", id, ledgerID)
	}

	wrong, err := mtls.NewClient(billing.Source(), mtls.AuthorizeID(secinfratest.SpiffeID("ledger-db")))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = get(t, wrong, url)
	var pe *mtls.PeerError
	if !errors.As(err, &pe) || pe.Rule != mtls.RuleAuthorizer || !strings.Contains(err.Error(), ledgerID) {
		t.Fatalf("err = %v, want our authorizer's refusal of %s", err, ledgerID)
	}
}

// After our rotating source renews, a go-spiffe client's next handshake
// gets the new certificate from the same, never restarted, server.
func TestAGoSpiffeClientSeesOurRenewal(t *testing.T) {
	srv := secinfratest.Start(t)
	billingID, ledgerID := secinfratest.SpiffeID("billing"), secinfratest.SpiffeID("ledger")
	svid, bundle := goSpiffeIdentity(t, srv.StaticIdentity(t, ledgerID)) // 1 h, issued before the TTL drops
	srv.Control(t, http.MethodPost, "/_test/ca/leaf-ttl", map[string]int{"seconds": 6}, nil)
	billing := srv.Enrol(t, billingID)
	conf, err := mtls.ServerConfig(billing.Source(), mtls.AuthorizeID(ledgerID))
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), conf)
	presented := func() string {
		t.Helper()
		client := &http.Client{Transport: &http.Transport{ // a new connection each time
			TLSClientConfig: tlsconfig.MTLSClientConfig(svid, bundle, tlsconfig.AuthorizeID(spiffeid.RequireFromString(billingID))),
		}}
		_, state, err := get(t, client, url)
		if err != nil {
			t.Fatalf("the go-spiffe client failed: %v", err)
		}
		return strings.ToLower(state.PeerCertificates[0].SerialNumber.Text(16))
	}
	first := presented()
	for deadline := time.Now().Add(20 * time.Second); billing.Source().Snapshot().Serial == first; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no renewal within 20 s")
		}
	}
	if got := presented(); got == first {
		t.Fatalf("after a renewal the go-spiffe client still got %s", first)
	}
}
