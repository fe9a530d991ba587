package secinfra_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"regexp"
	"time"

	secinfra "github.com/secinfra/secinfra/sdk-go"
	"github.com/secinfra/secinfra/sdk-go/gen/secinfrav1"
	"github.com/secinfra/secinfra/sdk-go/identity"
	"github.com/secinfra/secinfra/sdk-go/rpc"
)

// A Go service enrols once with its join token and reads a secret. (This
// example needs a server, so it is compiled but not run; the quickstart in
// examples/quickstart runs it for real.)
func Example() {
	ctx := context.Background()
	bundle, err := os.ReadFile("/etc/secinfra/bundle.pem")
	if err != nil {
		log.Fatal(err)
	}
	client, err := secinfra.Enrol(ctx, "https://secinfra.internal:8443",
		identity.JoinToken(os.Getenv("SECINFRA_JOIN_TOKEN")), bundle)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	secret, err := client.Secrets.GetSecret(ctx, &secinfrav1.GetSecretRequest{Name: "payments/db/password"},
		rpc.WithDeadline(5*time.Second))
	switch {
	case errors.Is(err, rpc.ErrNotFound):
		log.Fatal("no such secret")
	case err != nil:
		log.Fatal(err)
	}
	fmt.Println(len(secret.Value) > 0)
}

// Settings are checked when they are given, and the error names the setting.
func ExampleWithMaxAttempts() {
	_, err := secinfra.New("https://secinfra.internal:8443", nil, secinfra.WithMaxAttempts(0))
	fmt.Println(err)
	// Output: secinfra: settings: max_attempts must be at least 1, got 0
}

// Every request carries the SDK's User-Agent.
func ExampleUserAgent() {
	ua := regexp.MustCompile(`^secinfra-go/[^ /()]+ \(go/[^ /()]+\)$`)
	fmt.Println(ua.MatchString(secinfra.UserAgent()))
	// Output: true
}
