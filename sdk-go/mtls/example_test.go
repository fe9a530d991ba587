package mtls_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"

	secinfra "github.com/secinfra/secinfra/sdk-go"
	"github.com/secinfra/secinfra/sdk-go/identity"
	"github.com/secinfra/secinfra/sdk-go/mtls"
)

// enrolled is the client a service makes once at start-up; its Source is
// what the mTLS configurations are built on. (The examples that need it
// need a server, so they are compiled, not run; TestGuide runs the same
// code against the reference server.)
func enrolled() *secinfra.Client {
	bundle, err := os.ReadFile("/etc/secinfra/bundle.pem")
	if err != nil {
		log.Fatal(err)
	}
	client, err := secinfra.Enrol(context.Background(), "https://secinfra.internal:8443",
		identity.JoinToken(os.Getenv("SECINFRA_JOIN_TOKEN")), bundle)
	if err != nil {
		log.Fatal(err)
	}
	return client
}

// A service serves its API over mTLS to one caller, and reads who called.
func ExampleNewServer() {
	client := enrolled()
	defer client.Close()
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		caller, _ := mtls.PeerID(r)
		fmt.Fprintf(w, "hello, %s\n", caller)
	})
	server, err := mtls.NewServer(":8443", handler, client.Source(),
		mtls.AuthorizeID("spiffe://secinfra.local/ledger"))
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(server.ListenAndServeTLS("", ""))
}

// A service calls another one over mTLS, checking the server's SPIFFE ID
// instead of its host name.
func ExampleNewClient() {
	client := enrolled()
	defer client.Close()
	httpClient, err := mtls.NewClient(client.Source(), mtls.AuthorizeID("spiffe://secinfra.local/billing"))
	if err != nil {
		log.Fatal(err)
	}
	resp, err := httpClient.Get("https://billing.internal:8443/invoices")
	if err != nil {
		log.Fatal(err) // a refused server is an *mtls.PeerError
	}
	defer resp.Body.Close()
	_, _ = io.Copy(os.Stdout, resp.Body)
}

// ServerConfig is the bare *tls.Config, for a listener or a framework of
// your own. There is no default authorizer.
func ExampleServerConfig() {
	client := enrolled()
	defer client.Close()
	if _, err := mtls.ServerConfig(client.Source(), nil); err != nil {
		fmt.Println(err) // secinfra: mtls: an authorizer is required; ...
	}
	conf, err := mtls.ServerConfig(client.Source(), mtls.AuthorizeMemberOf("secinfra.local"))
	if err != nil {
		log.Fatal(err)
	}
	server := &http.Server{Addr: ":8443", TLSConfig: conf}
	log.Fatal(server.ListenAndServeTLS("", ""))
}

// A path prefix matches whole segments.
func ExampleAuthorizePathPrefix() {
	payments := mtls.AuthorizePathPrefix("secinfra.local", "/payments")
	for _, id := range []string{
		"spiffe://secinfra.local/payments",
		"spiffe://secinfra.local/payments/api",
		"spiffe://secinfra.local/payments-legacy",
		"spiffe://other.example/payments",
	} {
		fmt.Println(id, payments.Authorize(id, nil))
	}
	// Output:
	// spiffe://secinfra.local/payments <nil>
	// spiffe://secinfra.local/payments/api <nil>
	// spiffe://secinfra.local/payments-legacy it is not spiffe://secinfra.local/payments or under it
	// spiffe://other.example/payments it is not spiffe://secinfra.local/payments or under it
}

// A refusal names the ID and what it is not.
func ExampleAuthorizeOneOf() {
	callers := mtls.AuthorizeOneOf("spiffe://secinfra.local/ledger", "spiffe://secinfra.local/audit")
	fmt.Println(callers.Authorize("spiffe://secinfra.local/ledger", nil))
	fmt.Println(callers.Authorize("spiffe://secinfra.local/web", nil))
	// Output:
	// <nil>
	// it is not one of spiffe://secinfra.local/audit, spiffe://secinfra.local/ledger
}
