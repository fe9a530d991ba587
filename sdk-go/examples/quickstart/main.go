// Command quickstart enrols with a join token, reads a secret and checks a
// permission for its own workload: the Go quickstart of the docs.
//
// Environment: SECINFRA_URL (https://host:port), SECINFRA_JOIN_TOKEN and
// SECINFRA_BUNDLE_FILE (the server's PEM trust bundle).
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	secinfra "github.com/secinfra/secinfra/sdk-go"
	"github.com/secinfra/secinfra/sdk-go/gen/secinfrav1"
	"github.com/secinfra/secinfra/sdk-go/identity"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	bundle, err := os.ReadFile(os.Getenv("SECINFRA_BUNDLE_FILE"))
	if err != nil {
		log.Fatal(err)
	}
	// The key is generated here and never leaves the process; the client
	// renews its certificate in the background until Close.
	client, err := secinfra.Enrol(ctx, os.Getenv("SECINFRA_URL"),
		identity.JoinToken(os.Getenv("SECINFRA_JOIN_TOKEN")), bundle)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	const name = "payments/db/password"
	secret, err := client.Secrets.GetSecret(ctx, &secinfrav1.GetSecretRequest{Name: name})
	if err != nil {
		log.Fatal(err)
	}
	// Never print the value itself.
	fmt.Printf("secret %s: version %d, %d bytes\n", name, secret.Version, len(secret.Value))

	me := client.Source().Snapshot().SpiffeID
	check, err := client.Authz.Check(ctx, &secinfrav1.CheckRequest{TupleKey: &secinfrav1.TupleKey{
		User: "workload:" + me, Relation: "reader", Object: "secret:" + name,
	}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("can read %s: %t\n", name, check.Allowed)
}
