package mtls_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	secinfra "github.com/secinfra/secinfra/sdk-go"
	"github.com/secinfra/secinfra/sdk-go/identity"
	"github.com/secinfra/secinfra/sdk-go/mtls"
	"github.com/secinfra/secinfra/sdk-go/secinfratest"
)

// The code of the guide docs/mtls/go.md: every Go block of the page is one
// region between "// guide:NAME" and "// guide:end" below (checked by
// TestGuideMatchesItsCode), and TestGuide runs them against the reference
// server.

// guideServe serves billing's API to the ledger service only.
func guideServe(client *secinfra.Client, listener net.Listener) (*http.Server, error) {
	// guide:server
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		caller, _ := mtls.PeerID(r) // verified: the handshake refused every other peer
		fmt.Fprintf(w, "hello, %s\n", caller)
	})
	server, err := mtls.NewServer(":8443", handler, client.Source(),
		mtls.AuthorizeID("spiffe://secinfra.local/ledger"))
	if err != nil {
		return nil, err
	}
	go server.ServeTLS(listener, "", "") // the certificate comes from the source, not from files
	// guide:end
	return server, nil
}

// guideCall calls billing as the ledger service.
func guideCall(client *secinfra.Client, billingURL string) (string, error) {
	// guide:client
	httpClient, err := mtls.NewClient(client.Source(),
		mtls.AuthorizeID("spiffe://secinfra.local/billing"))
	if err != nil {
		return "", err
	}
	resp, err := httpClient.Get(billingURL)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	server, _ := mtls.PeerIDFromConnectionState(*resp.TLS) // spiffe://secinfra.local/billing
	// guide:end
	body, err := io.ReadAll(resp.Body)
	return server + " said " + strings.TrimSpace(string(body)), err
}

// guideConfigs builds the bare *tls.Config values.
func guideConfigs(client *secinfra.Client, listener net.Listener) (net.Listener, error) {
	// guide:configs
	serverConf, err := mtls.ServerConfig(client.Source(), mtls.AuthorizeMemberOf("secinfra.local"))
	if err != nil {
		return nil, err
	}
	listener = tls.NewListener(listener, serverConf)

	clientConf, err := mtls.ClientConfig(client.Source(),
		mtls.AuthorizePathPrefix("secinfra.local", "/payments"))
	if err != nil {
		return nil, err
	}
	transport := &http.Transport{TLSClientConfig: clientConf}
	// guide:end
	transport.CloseIdleConnections()
	return listener, nil
}

// guideAuthorizer is a custom predicate.
func guideAuthorizer() mtls.Authorizer {
	// guide:authorizer-func
	batchJobs := mtls.AuthorizerFunc(func(peerID string, _ [][]*x509.Certificate) error {
		if !strings.HasPrefix(peerID, "spiffe://secinfra.local/batch/") {
			return errors.New("only batch jobs may call this service")
		}
		return nil
	})
	// guide:end
	return batchJobs
}

// guideRotation closes pooled connections on every renewal.
func guideRotation(client *secinfra.Client, httpClient *http.Client) {
	// guide:rotation
	client.OnRotation(func(e identity.Event) {
		if e.Kind == identity.Renewed || e.Kind == identity.BundleUpdated {
			httpClient.CloseIdleConnections() // the next request makes a new handshake
		}
	})
	// guide:end
}

// guideRefusal tells a refused peer apart.
func guideRefusal(err error) string {
	// guide:refusal
	var refused *mtls.PeerError
	if errors.As(err, &refused) {
		log.Printf("refused %s: the %s rule: %s", refused.PeerID, refused.Rule, refused.Reason)
	}
	// guide:end
	if refused == nil {
		return ""
	}
	return refused.Rule
}

func TestGuide(t *testing.T) {
	srv := secinfratest.Start(t)
	billing := srv.Enrol(t, "spiffe://secinfra.local/billing")
	ledger := srv.Enrol(t, "spiffe://secinfra.local/ledger")
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server, err := guideServe(billing, listener)
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	said, err := guideCall(ledger, "https://"+listener.Addr().String()+"/")
	if err != nil {
		t.Fatal(err)
	}
	if want := "spiffe://secinfra.local/billing said hello, spiffe://secinfra.local/ledger"; said != want {
		t.Fatalf("%q, want %q", said, want)
	}
	// billing calling itself is refused by its own server's authorizer.
	_, err = guideCall(billing, "https://"+listener.Addr().String()+"/")
	if err == nil {
		t.Fatal("billing called billing's ledger-only API")
	}

	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if other, err = guideConfigs(billing, other); err != nil {
		t.Fatal(err)
	}
	other.Close()

	batch := guideAuthorizer()
	if batch.Authorize("spiffe://secinfra.local/batch/nightly", nil) != nil || batch.Authorize("spiffe://secinfra.local/web", nil) == nil {
		t.Fatal("the custom authorizer decides wrong")
	}
	httpClient, err := mtls.NewClient(ledger.Source(), mtls.AuthorizeAny())
	if err != nil {
		t.Fatal(err)
	}
	guideRotation(ledger, httpClient)

	wrong, err := mtls.NewClient(ledger.Source(), mtls.AuthorizeID("spiffe://secinfra.local/ledger-db"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = wrong.Get("https://" + listener.Addr().String() + "/")
	if rule := guideRefusal(err); rule != mtls.RuleAuthorizer {
		t.Fatalf("refused by %q (%v), want the authorizer", rule, err)
	}
}

// Every Go block of docs/mtls/go.md is one region of this file, and every
// region is on the page.
func TestGuideMatchesItsCode(t *testing.T) {
	page, err := os.ReadFile(filepath.Join("..", "..", "docs", "mtls", "go.md"))
	if err != nil {
		t.Fatal(err)
	}
	code, err := os.ReadFile("guide_test.go")
	if err != nil {
		t.Fatal(err)
	}
	regions := map[string]string{}
	var name string
	var lines []string
	for _, line := range strings.Split(string(code), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "// guide:end" && name != "":
			regions[name] = strings.Join(lines, "\n")
			name, lines = "", nil
		case name == "" && strings.HasPrefix(trimmed, "// guide:") && !strings.Contains(trimmed[len("// guide:"):], " "):
			name = strings.TrimPrefix(trimmed, "// guide:")
		case name != "":
			lines = append(lines, strings.TrimPrefix(line, "\t"))
		}
	}
	var blocks []string
	for _, part := range strings.Split(string(page), "```go\n")[1:] {
		block, _, ok := strings.Cut(part, "\n```")
		if !ok {
			t.Fatal("an unclosed Go block on the page")
		}
		blocks = append(blocks, block)
	}
	if len(blocks) != len(regions) {
		t.Fatalf("the page has %d Go blocks, this file %d regions", len(blocks), len(regions))
	}
	for _, block := range blocks {
		found := false
		for _, region := range regions {
			found = found || block == region
		}
		if !found {
			t.Errorf("this block of the page is no region of guide_test.go:\n%s", block)
		}
	}
}
