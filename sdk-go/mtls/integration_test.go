package mtls_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secinfra/secinfra/sdk-go/identity"
	"github.com/secinfra/secinfra/sdk-go/mtls"
	"github.com/secinfra/secinfra/sdk-go/secinfratest"
)

// lockedBuffer collects an http.Server's error log (handshake refusals).
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// serveWhoAmI serves, over mTLS with source and authorizer on a free
// loopback port, a handler that answers the caller's SPIFFE ID. It returns
// the base URL and the server's error log; the server stops with the test.
func serveWhoAmI(t *testing.T, source identity.Source, authorizer mtls.Authorizer) (string, *lockedBuffer) {
	t.Helper()
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := mtls.PeerID(r)
		if !ok {
			http.Error(w, "no peer ID", http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, id)
	})
	srv, err := mtls.NewServer("", handler, source, authorizer)
	if err != nil {
		t.Fatal(err)
	}
	errLog := &lockedBuffer{}
	srv.ErrorLog = log.New(errLog, "", 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return "https://" + ln.Addr().String(), errLog
}

// get calls url with client and returns the body and the server's SPIFFE ID.
func get(t *testing.T, client *http.Client, url string) (body, serverID string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", "", err
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d: %s", resp.StatusCode, data)
	}
	serverID, _ = mtls.PeerIDFromConnectionState(*resp.TLS)
	return string(data), serverID, nil
}

func newClient(t *testing.T, source identity.Source, authorizer mtls.Authorizer) *http.Client {
	t.Helper()
	client, err := mtls.NewClient(source, authorizer)
	if err != nil {
		t.Fatal(err)
	}
	client.Timeout = 10 * time.Second
	t.Cleanup(client.CloseIdleConnections)
	return client
}

// A service enrolled with the reference server serves mTLS from its
// rotating source, and a peer with an SVID of the same CA calls it; each
// side reads the other's SPIFFE ID. An ID the authorizer does not name is
// refused, on either side.
func TestServeAndCallWithReferenceServerIdentities(t *testing.T) {
	srv := secinfratest.Start(t)
	billingID, ledgerID := secinfratest.SpiffeID("billing"), secinfratest.SpiffeID("ledger")
	billing := srv.Enrol(t, billingID)
	ledger := srv.StaticIdentity(t, ledgerID)
	url, errLog := serveWhoAmI(t, billing.Source(), mtls.AuthorizeID(ledgerID))

	body, serverID, err := get(t, newClient(t, ledger, mtls.AuthorizeID(billingID)), url)
	if err != nil {
		t.Fatal(err)
	}
	if body != ledgerID || serverID != billingID {
		t.Fatalf("the server saw %q and the client %q, want %q and %q", body, serverID, ledgerID, billingID)
	}

	// The server refuses an ID its authorizer does not name, and says why.
	intruder := srv.StaticIdentity(t, secinfratest.SpiffeID("intruder"))
	if _, _, err := get(t, newClient(t, intruder, mtls.AuthorizeID(billingID)), url); err == nil {
		t.Fatal("the server accepted spiffe://secinfra.local/intruder")
	}
	want := "secinfra: mtls: the peer spiffe://secinfra.local/intruder was refused (authorizer rule): it is not " + ledgerID
	if !waitFor(func() bool { return strings.Contains(errLog.String(), want) }) {
		t.Fatalf("the server's log does not say why:\n%s", errLog.String())
	}

	// The client refuses a server whose ID it does not expect.
	_, _, err = get(t, newClient(t, ledger, mtls.AuthorizeID(secinfratest.SpiffeID("ledger-db"))), url)
	var pe *mtls.PeerError
	if !errors.As(err, &pe) || pe.Rule != mtls.RuleAuthorizer || pe.PeerID != billingID {
		t.Fatalf("err = %v, want the authorizer's refusal of %s", err, billingID)
	}
}

// waitFor polls cond for up to 5 s (a refusal reaches the server's log
// just after the client saw it).
func waitFor(cond func() bool) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// After the rotating source renews, the next handshake presents the new
// certificate; the server was never restarted.
func TestRenewalTakesEffectOnTheNextHandshake(t *testing.T) {
	srv := secinfratest.Start(t)
	ledger := srv.StaticIdentity(t, secinfratest.SpiffeID("ledger")) // 1 h, issued before the TTL drops
	srv.Control(t, http.MethodPost, "/_test/ca/leaf-ttl", map[string]int{"seconds": 6}, nil)
	billingID := secinfratest.SpiffeID("billing")
	billing := srv.Enrol(t, billingID)
	url, _ := serveWhoAmI(t, billing.Source(), mtls.AuthorizeAny())

	presented := func() string {
		t.Helper()
		client := newClient(t, ledger, mtls.AuthorizeID(billingID)) // a new connection
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return strings.ToLower(resp.TLS.PeerCertificates[0].SerialNumber.Text(16))
	}
	// current checks that a handshake presented the source's certificate
	// of that moment (a renewal may land just before or after it).
	current := func() string {
		t.Helper()
		before := billing.Source().Snapshot().Serial
		got := presented()
		if after := billing.Source().Snapshot().Serial; got != before && got != after {
			t.Fatalf("presented %s, want the current certificate %s", got, after)
		}
		return got
	}
	first := current()
	// Wait for a renewal after that handshake.
	for deadline := time.Now().Add(20 * time.Second); billing.Source().Snapshot().Serial == first; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no renewal within 20 s")
		}
	}
	if got := current(); got == first {
		t.Fatalf("after a renewal the next handshake still presented %s", first)
	}
}

// After a CA rotation, a peer holding a certificate of the new CA is
// accepted by a server configured before it, once the source has the new
// bundle: no restart.
func TestCARotationNeedsNoRestart(t *testing.T) {
	srv := secinfratest.Start(t)
	billingID := secinfratest.SpiffeID("billing")
	billing := srv.Enrol(t, billingID)
	url, errLog := serveWhoAmI(t, billing.Source(), mtls.AuthorizeMemberOf(secinfratest.TrustDomain))

	sequence := srv.RotateCA(t)
	ledgerID := secinfratest.SpiffeID("ledger")
	ledger := srv.StaticIdentity(t, ledgerID) // signed by the new CA
	ledgerClient := newClient(t, ledger, mtls.AuthorizeID(billingID))
	// Until the source has the new bundle, the new CA is not trusted.
	if _, _, err := get(t, ledgerClient, url); err == nil {
		t.Fatal("a certificate of a CA the source has not seen yet was accepted")
	}
	want := "secinfra: mtls: the peer " + ledgerID + " was refused (chain rule)"
	if !waitFor(func() bool { return strings.Contains(errLog.String(), want) }) {
		t.Fatalf("the server's log does not say why:\n%s", errLog.String())
	}
	if _, err := billing.Source().RefreshBundle(context.Background()); err != nil {
		t.Fatal(err)
	}
	if seq := billing.Source().Bundle().Sequence; seq < sequence {
		t.Fatalf("the source holds bundle %d, want %d", seq, sequence)
	}
	body, _, err := get(t, ledgerClient, url)
	if err != nil {
		t.Fatal(err)
	}
	if body != ledgerID {
		t.Fatalf("the server saw %q, want %q", body, ledgerID)
	}
}
