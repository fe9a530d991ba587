package secinfra_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	secinfra "github.com/secinfra/secinfra/sdk-go"
	"github.com/secinfra/secinfra/sdk-go/gen/secinfrav1"
	"github.com/secinfra/secinfra/sdk-go/identity"
	"github.com/secinfra/secinfra/sdk-go/rpc"
	"github.com/secinfra/secinfra/sdk-go/secinfratest"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestEnrolReadSecretCacheAndCheck(t *testing.T) {
	srv := secinfratest.Start(t)
	id := secinfratest.SpiffeID("workload/billing")
	srv.PutSecret(t, "payments/db/password", []byte("hunter2"))
	srv.Grant(t, id, "reader", "folder:payments/")
	client := srv.Enrol(t, id)

	if s := client.Source().Snapshot(); s == nil || s.SpiffeID != id {
		t.Fatalf("enrolled as %v, want %s", s, id)
	}
	var meta rpc.Meta
	secret, err := client.Secrets.GetSecret(ctx(t), &secinfrav1.GetSecretRequest{Name: "payments/db/password"}, rpc.WithMeta(&meta))
	if err != nil {
		t.Fatal(err)
	}
	if string(secret.Value) != "hunter2" || secret.Version != 1 || meta.FromCache || meta.Attempts != 1 || meta.Status != 200 || meta.RequestID == "" {
		t.Fatalf("secret %v meta %+v", secret, meta)
	}
	again, err := client.Secrets.GetSecret(ctx(t), &secinfrav1.GetSecretRequest{Name: "payments/db/password"}, rpc.WithMeta(&meta))
	if err != nil || string(again.Value) != "hunter2" || !meta.FromCache || meta.Attempts != 0 {
		t.Fatalf("a fresh entry must answer without a request: %v %+v", err, meta)
	}
	if got := len(srv.Requests(t, "GetSecret")); got != 1 {
		t.Fatalf("the server saw %d GetSecret requests, want 1", got)
	}
	check, err := client.Authz.Check(ctx(t), &secinfrav1.CheckRequest{
		TupleKey: &secinfrav1.TupleKey{User: "workload:" + id, Relation: "reader", Object: "secret:payments/db/password"}})
	if err != nil || !check.Allowed {
		t.Fatalf("check: %v %v", check, err)
	}
	// Own write: the next read gets version 2.
	if _, err := client.Secrets.PutSecret(ctx(t), &secinfrav1.PutSecretRequest{Name: "payments/db/password", Value: []byte("v2")}); err == nil {
		t.Fatal("the workload is only a reader; the write must be refused")
	} else if !errors.Is(err, rpc.ErrPermissionDenied) {
		t.Fatalf("want PermissionDenied, got %v", err)
	}
}

func TestOwnWriteInvalidatesCache(t *testing.T) {
	srv := secinfratest.Start(t)
	admin := srv.Admin(t)
	c := ctx(t)
	if _, err := admin.Secrets.PutSecret(c, &secinfrav1.PutSecretRequest{Name: "app/db", Value: []byte("one")}); err != nil {
		t.Fatal(err)
	}
	if s, err := admin.Secrets.GetSecret(c, &secinfrav1.GetSecretRequest{Name: "app/db"}); err != nil || string(s.Value) != "one" {
		t.Fatal(s, err)
	}
	if _, err := admin.Secrets.PutSecret(c, &secinfrav1.PutSecretRequest{Name: "app/db", Value: []byte("two")}); err != nil {
		t.Fatal(err)
	}
	var meta rpc.Meta
	s, err := admin.Secrets.GetSecret(c, &secinfrav1.GetSecretRequest{Name: "app/db"}, rpc.WithMeta(&meta))
	if err != nil || string(s.Value) != "two" || meta.FromCache {
		t.Fatalf("after an own write the read must reach the server: %v %v %+v", s, err, meta)
	}
}

func TestRetriesKeepTheIdempotencyKey(t *testing.T) {
	srv := secinfratest.Start(t)
	admin := srv.Admin(t)
	srv.Control(t, "DELETE", "/_test/requests", nil, nil)
	srv.Script(t, "PutSecret", secinfratest.Step{"status": 503}, secinfratest.Step{"reset": "before_headers"})
	var meta rpc.Meta
	v, err := admin.Secrets.PutSecret(ctx(t), &secinfrav1.PutSecretRequest{Name: "app/key", Value: []byte("x")}, rpc.WithMeta(&meta))
	if err != nil || v.Version != 1 || meta.Attempts != 3 {
		t.Fatalf("put: %v %v %+v", v, err, meta)
	}
	reqs := srv.Requests(t, "PutSecret")
	if len(reqs) != 3 {
		t.Fatalf("server saw %d attempts, want 3", len(reqs))
	}
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	ua := regexp.MustCompile(`^secinfra-go/[^ /()]+ \([^ /()]+/[^ /()]+\)$`)
	for i, r := range reqs {
		if r.Headers["Secinfra-Attempt"] != string(rune('1'+i)) {
			t.Errorf("attempt %d carries Secinfra-Attempt %q", i+1, r.Headers["Secinfra-Attempt"])
		}
		if r.Headers["Idempotency-Key"] != reqs[0].Headers["Idempotency-Key"] || !uuid.MatchString(r.Headers["Idempotency-Key"]) {
			t.Errorf("attempt %d key %q", i+1, r.Headers["Idempotency-Key"])
		}
		if !ua.MatchString(r.Headers["User-Agent"]) {
			t.Errorf("User-Agent %q", r.Headers["User-Agent"])
		}
	}
	if admin.RetryBudgetTokens() != secinfra.DefaultBudgetCapacity-2*secinfra.DefaultRetryCost+secinfra.DefaultSuccessRefund {
		t.Errorf("budget tokens %d", admin.RetryBudgetTokens())
	}
}

func TestErrorsCarryTheServersAnswer(t *testing.T) {
	srv := secinfratest.Start(t)
	admin := srv.Admin(t)
	_, err := admin.Secrets.GetSecret(ctx(t), &secinfrav1.GetSecretRequest{Name: "app/missing"})
	var e *rpc.Error
	if !errors.As(err, &e) || !errors.Is(err, rpc.ErrNotFound) || e.Status != 404 || e.Code != rpc.CodeNotFound ||
		e.Retryable || e.Attempts != 1 || e.RequestID == "" || !strings.HasSuffix(err.Error(), "(request id "+e.RequestID+")") {
		t.Fatalf("err %#v", err)
	}
	srv.Script(t, "GetSecret", secinfratest.Step{"status": 429, "headers": map[string]string{"Retry-After": "120"}})
	_, err = admin.Secrets.GetSecret(ctx(t), &secinfrav1.GetSecretRequest{Name: "app/missing"})
	if !errors.As(err, &e) || e.Kind != rpc.KindRateLimited || !e.HasRetryAfter || e.RetryAfter != 120*time.Second || e.Attempts != 1 {
		t.Fatalf("a Retry-After over the cap ends the call at once: %#v", err)
	}
	// The error says why retrying stopped (spec 3.9.5), and keeps the server's message.
	if !strings.Contains(err.Error(), "; retrying stopped: Retry-After too long (") || strings.Contains(e.Message, "retrying stopped") {
		t.Fatalf("the error does not say why retrying stopped: %v", err)
	}
}

func TestDeadlineBoundsASlowAnswer(t *testing.T) {
	srv := secinfratest.Start(t)
	admin := srv.Admin(t)
	srv.Script(t, "GetCallerIdentity", secinfratest.Step{"delay_ms": 3000})
	start := time.Now()
	_, err := admin.Identity.GetCallerIdentity(ctx(t), &secinfrav1.GetCallerIdentityRequest{}, rpc.WithDeadline(500*time.Millisecond))
	elapsed := time.Since(start)
	if !errors.Is(err, rpc.ErrDeadlineExceeded) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want DeadlineExceeded, got %v", err)
	}
	if elapsed > 750*time.Millisecond {
		t.Fatalf("the call ended %v after it started, past its deadline plus 250 ms", elapsed)
	}
}

func TestWrongServerIDIsAVerificationFailure(t *testing.T) {
	srv := secinfratest.Start(t)
	client, err := secinfra.FromFiles(srv.URL, srv.AdminFile("cert.pem"), srv.AdminFile("key.pem"), srv.AdminFile("bundle.pem"),
		secinfra.WithServerID("spiffe://secinfra.local/not/the/server"))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	_, err = client.Identity.GetCallerIdentity(ctx(t), &secinfrav1.GetCallerIdentityRequest{})
	var e *rpc.Error
	if !errors.As(err, &e) || e.Kind != rpc.KindTransport || e.Retryable || !strings.Contains(e.Message, "expected spiffe://secinfra.local/not/the/server") {
		t.Fatalf("want a transport error naming the SPIFFE IDs, got %v", err)
	}
	if n := len(srv.Requests(t, "GetCallerIdentity")); n != 0 {
		t.Fatalf("%d requests reached an unverified server", n)
	}
}

func TestRenewalRotatesWithoutFailedCalls(t *testing.T) {
	srv := secinfratest.Start(t, "--leaf-ttl-seconds", "4", "--bundle-refresh-hint-seconds", "2")
	id := secinfratest.SpiffeID("workload/rotating")
	sinkDir := filepath.Join(t.TempDir(), "identity")
	client := srv.Enrol(t, id, secinfra.WithFileSink(sinkDir))
	first := client.Source().Snapshot()
	var mu sync.Mutex
	var kinds []identity.EventKind
	client.OnRotation(func(e identity.Event) {
		mu.Lock()
		kinds = append(kinds, e.Kind)
		mu.Unlock()
	})
	serials := map[string]bool{}
	deadline := time.Now().Add(6 * time.Second)
	for time.Now().Before(deadline) {
		who, err := client.Identity.GetCallerIdentity(ctx(t), &secinfrav1.GetCallerIdentityRequest{})
		if err != nil {
			t.Fatalf("a call failed during rotation: %v", err)
		}
		if who.SpiffeID != id {
			t.Fatalf("caller %s", who.SpiffeID)
		}
		serials[who.Serial] = true
		time.Sleep(250 * time.Millisecond)
	}
	if len(serials) < 2 || client.Source().Snapshot().Serial == first.Serial {
		t.Fatalf("expected renewals, saw serials %v", serials)
	}
	mu.Lock()
	defer mu.Unlock()
	renewed := 0
	for _, k := range kinds {
		if k == identity.Renewed {
			renewed++
		}
	}
	if renewed == 0 {
		t.Fatalf("no renewed event: %v", kinds)
	}
	// Bundle refreshes reach the server at the hint, conditional on the ETag.
	conditional := 0
	for _, r := range srv.Requests(t, "GetTrustBundle") {
		if r.Headers["If-None-Match"] != "" {
			conditional++
		}
	}
	if conditional == 0 {
		t.Error("no bundle refresh was conditional (If-None-Match)")
	}
	// The file sink follows: its certificate is the current one, with its key.
	want := client.Source().Snapshot().Serial
	var got string
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		pair, err := tls.LoadX509KeyPair(filepath.Join(sinkDir, "cert.pem"), filepath.Join(sinkDir, "key.pem"))
		if err != nil {
			t.Fatalf("the sink's certificate and key do not match: %v", err)
		}
		leaf, _ := x509.ParseCertificate(pair.Certificate[0])
		if got = leaf.SerialNumber.Text(16); got == want {
			return
		}
	}
	t.Fatalf("file sink holds serial %s, want %s", got, want)
}

func TestJoinTokenClientExpiresWithIdentityExpired(t *testing.T) {
	srv := secinfratest.Start(t, "--leaf-ttl-seconds", "2")
	client := srv.Enrol(t, secinfratest.SpiffeID("workload/expiring"))
	steps := make([]secinfratest.Step, 100)
	for i := range steps {
		steps[i] = secinfratest.Step{"status": 503, "headers": map[string]string{"Secinfra-Should-Retry": "false"}}
	}
	srv.Script(t, "RenewCertificate", steps...)
	expired := make(chan struct{}, 1)
	client.OnRotation(func(e identity.Event) {
		if e.Kind == identity.Expired {
			select {
			case expired <- struct{}{}:
			default:
			}
		}
	})
	select {
	case <-expired:
	case <-time.After(10 * time.Second):
		t.Fatal("no expired event")
	}
	_, err := client.Identity.GetCallerIdentity(ctx(t), &secinfrav1.GetCallerIdentityRequest{})
	var e *rpc.Error
	if !errors.As(err, &e) || !errors.Is(err, rpc.ErrIdentityExpired) || e.Attempts != 0 || e.Code != rpc.CodeIdentityExpired {
		t.Fatalf("want identity_expired without a request, got %v", err)
	}
	// auth: NONE calls keep working after expiry.
	if _, err := client.Identity.GetTrustBundle(ctx(t), &secinfrav1.GetTrustBundleRequest{}); err != nil {
		t.Fatalf("GetTrustBundle after expiry: %v", err)
	}
}

func TestSettingsAreCheckedWhenGiven(t *testing.T) {
	tests := []struct {
		name string
		url  string
		opt  secinfra.Option
	}{
		{"zero attempts", "https://127.0.0.1:1", secinfra.WithMaxAttempts(0)},
		{"negative deadline", "https://127.0.0.1:1", secinfra.WithDeadline(-time.Second)},
		{"zero cache", "https://127.0.0.1:1", secinfra.WithCacheSize(0)},
		{"bad budget", "https://127.0.0.1:1", secinfra.WithRetryBudget(0, 5, 10, 1)},
		{"http url", "http://127.0.0.1:1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := secinfra.Enrol(context.Background(), tt.url, identity.JoinToken("sjt_x.y"), []byte("not a bundle"), tt.opt)
			if err == nil {
				t.Fatal("want an error")
			}
			if strings.Contains(err.Error(), "sjt_") {
				t.Fatalf("the error shows the join token: %v", err)
			}
		})
	}
}

// Every setting, rotation's included, is refused when it is given, with an
// error naming it (spec 1.4.4).
func TestInvalidSettingsAreNamed(t *testing.T) {
	tests := []struct {
		name string
		opt  secinfra.Option
		want string
	}{
		{"zero attempts", secinfra.WithMaxAttempts(0), "max_attempts"},
		{"negative deadline", secinfra.WithDeadline(-time.Second), "deadline"},
		{"zero attempt timeout", secinfra.WithAttemptTimeout(0), "attempt_timeout"},
		{"negative base backoff", secinfra.WithBaseBackoff(-time.Second), "base_backoff"},
		{"renewal fraction 1", secinfra.WithRenewal(1, 0.1, time.Second, time.Minute), "renewal_fraction"},
		{"renewal jitter past the fraction", secinfra.WithRenewal(0.5, 0.6, time.Second, time.Minute), "renewal_jitter"},
		{"renewal retry base 0", secinfra.WithRenewal(0.5, 0.1, 0, time.Minute), "renewal_retry_base"},
		{"renewal retry max negative", secinfra.WithRenewal(0.5, 0.1, time.Second, -time.Minute), "renewal_retry_max"},
		{"negative expiry margin", secinfra.WithRenewalExpiryMargin(-time.Second), "renewal_expiry_margin"},
		{"zero re-enrol retry", secinfra.WithReenrolRetry(0), "reenrol_retry"},
		{"zero bundle retry", secinfra.WithBundleRetry(0), "bundle_retry"},
		{"zero bundle refresh min", secinfra.WithBundleRefreshBounds(0, time.Hour), "bundle_refresh_min"},
		{"bundle refresh max below min", secinfra.WithBundleRefreshBounds(time.Hour, time.Minute), "bundle_refresh_max"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := secinfra.New("https://127.0.0.1:1", nil, tt.opt)
			if err == nil || !strings.HasPrefix(err.Error(), "secinfra: settings: "+tt.want+" ") {
				t.Fatalf("err = %v, want one naming %s", err, tt.want)
			}
		})
	}
	// Valid rotation settings pass; the next error is the missing source.
	_, err := secinfra.New("https://127.0.0.1:1", nil, secinfra.WithRenewal(0.6, 0.2, time.Second, time.Minute),
		secinfra.WithRenewalExpiryMargin(0), secinfra.WithReenrolRetry(time.Minute), secinfra.WithBundleRetry(time.Second),
		secinfra.WithBundleRefreshBounds(time.Second, time.Hour))
	if err == nil || strings.Contains(err.Error(), "settings") {
		t.Fatalf("valid settings refused: %v", err)
	}
}
