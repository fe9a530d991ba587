package secinfra_test

import (
	"context"
	"fmt"
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

// recording keeps every notification as one line; it returns a
// traceparent whose parent id is the attempt number.
type recording struct {
	rpc.NopObserver
	mu    sync.Mutex
	lines []string
	trace bool
}

func (r *recording) add(format string, a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, fmt.Sprintf(format, a...))
}

// take returns the lines so far and forgets them.
func (r *recording) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	lines := r.lines
	r.lines = nil
	return lines
}

func (r *recording) CallStarted(ctx context.Context, c rpc.CallStart) context.Context {
	r.add("call_started %s %s", c.RPC, c.Idempotency)
	return ctx
}

func (r *recording) CacheLookup(_ context.Context, l rpc.CacheLookup) {
	r.add("cache %s %s", l.RPC, l.Result)
}

func (r *recording) AttemptStarted(ctx context.Context, a rpc.AttemptStart) (context.Context, rpc.TraceContext) {
	r.add("attempt_started %s %d", a.RPC, a.Attempt)
	if !r.trace {
		return ctx, rpc.TraceContext{}
	}
	return ctx, rpc.TraceContext{Traceparent: fmt.Sprintf("00-4bf92f3577b34da6a3ce929d0e0e4736-%016x-01", a.Attempt), Tracestate: "secinfra=test"}
}

func (r *recording) AttemptFinished(_ context.Context, a rpc.AttemptEnd) {
	r.add("attempt_finished %s %d %d %s", a.RPC, a.Attempt, a.Status, a.Code)
}

func (r *recording) CallFinished(_ context.Context, c rpc.CallEnd) {
	r.add("call_finished %s ok=%v %s attempts=%d from_cache=%v", c.RPC, c.OK(), c.Code, c.Meta.Attempts, c.Meta.FromCache)
}

func header(r secinfratest.Request, name string) string {
	for k, v := range r.Headers {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

func wantLines(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("notifications:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// The enrolment is observed like any call (spec 14.2.4); a cacheable read
// is a miss then a hit; each attempt carries the observer's traceparent,
// which reaches the server (14.3.1).
func TestObserverAgainstTheServer(t *testing.T) {
	srv := secinfratest.Start(t)
	rec := &recording{trace: true}
	client := srv.Enrol(t, secinfratest.SpiffeID("workload/observed"), secinfra.WithObserver(rec))
	enrolment := strings.Join(rec.take(), "\n")
	for _, want := range []string{
		"call_started secinfra.v1.IdentityService/IssueCertificate non_idempotent",
		"attempt_finished secinfra.v1.IdentityService/IssueCertificate 1 200 ",
		"call_finished secinfra.v1.IdentityService/IssueCertificate ok=true  attempts=1 from_cache=false",
	} {
		if !strings.Contains(enrolment, want) {
			t.Fatalf("the enrolment was not observed: want %q in\n%s", want, enrolment)
		}
	}

	srv.Script(t, "GetCallerIdentity", secinfratest.Step{"status": 503})
	if _, err := client.Identity.GetCallerIdentity(ctx(t), &secinfrav1.GetCallerIdentityRequest{}); err != nil {
		t.Fatal(err)
	}
	const rpcName = "secinfra.v1.IdentityService/GetCallerIdentity"
	wantLines(t, rec.take(),
		"call_started "+rpcName+" read_only",
		"attempt_started "+rpcName+" 1", "attempt_finished "+rpcName+" 1 503 unavailable",
		"attempt_started "+rpcName+" 2", "attempt_finished "+rpcName+" 2 200 ",
		"call_finished "+rpcName+" ok=true  attempts=2 from_cache=false")
	reqs := srv.Requests(t, "GetCallerIdentity")
	if len(reqs) != 2 {
		t.Fatalf("the server saw %d requests, want 2", len(reqs))
	}
	for i, r := range reqs {
		want := fmt.Sprintf("00-4bf92f3577b34da6a3ce929d0e0e4736-%016x-01", i+1)
		if got := header(r, "traceparent"); got != want {
			t.Errorf("attempt %d: traceparent %q, want %q", i+1, got, want)
		}
		if got := header(r, "tracestate"); got != "secinfra=test" {
			t.Errorf("attempt %d: tracestate %q", i+1, got)
		}
	}

	const bundleRPC = "secinfra.v1.IdentityService/GetTrustBundle"
	for i := 0; i < 2; i++ {
		if _, err := client.Identity.GetTrustBundle(ctx(t), &secinfrav1.GetTrustBundleRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	lines := rec.take()
	// The enrolment stored the bundle, so both reads are answered from the
	// cache, or the first revalidates it: either way the second is a hit.
	if got := lines[len(lines)-3:]; got[0] != "call_started "+bundleRPC+" read_only" || got[1] != "cache "+bundleRPC+" hit" ||
		got[2] != "call_finished "+bundleRPC+" ok=true  attempts=0 from_cache=true" {
		t.Fatalf("the second bundle read:\n%s", strings.Join(lines, "\n"))
	}
}

// A failed call is observed with its code; without an observer no
// traceparent is sent (spec 14.3.3).
func TestObserverFailedCallAndNoObserverNoTraceparent(t *testing.T) {
	srv := secinfratest.Start(t)
	rec := &recording{}
	observed := srv.Enrol(t, secinfratest.SpiffeID("workload/denied"), secinfra.WithObserver(rec))
	plain := srv.Enrol(t, secinfratest.SpiffeID("workload/plain"))
	rec.take()

	_, err := observed.Secrets.GetSecret(ctx(t), &secinfrav1.GetSecretRequest{Name: "not/mine"})
	if err == nil {
		t.Fatal("the workload may read no secret")
	}
	const rpcName = "secinfra.v1.SecretsService/GetSecret"
	wantLines(t, rec.take(),
		"call_started "+rpcName+" read_only", "cache "+rpcName+" miss",
		"attempt_started "+rpcName+" 1", "attempt_finished "+rpcName+" 1 403 permission_denied",
		"call_finished "+rpcName+" ok=false permission_denied attempts=1 from_cache=false")
	if _, err := plain.Identity.GetCallerIdentity(ctx(t), &secinfrav1.GetCallerIdentityRequest{}); err != nil {
		t.Fatal(err)
	}
	for _, r := range srv.Requests(t, "") {
		if r.RPC == "GetCallerIdentity" && (header(r, "traceparent") != "" || header(r, "tracestate") != "") {
			t.Fatalf("a client without observers sent trace context: %v", r.Headers)
		}
		if r.RPC == "GetSecret" && header(r, "traceparent") != "" {
			t.Fatalf("an observer that returns no trace context got one sent: %v", r.Headers)
		}
	}
}

// panicking fails at every notification.
type panicking struct{}

func (panicking) CallStarted(context.Context, rpc.CallStart) context.Context { panic("observer down") }
func (panicking) CacheLookup(context.Context, rpc.CacheLookup)               { panic("observer down") }
func (panicking) AttemptStarted(context.Context, rpc.AttemptStart) (context.Context, rpc.TraceContext) {
	panic("observer down")
}
func (panicking) AttemptFinished(context.Context, rpc.AttemptEnd) { panic("observer down") }
func (panicking) CallFinished(context.Context, rpc.CallEnd)       { panic("observer down") }

// An observer that panics at every notification fails neither the
// enrolment nor a call, and the observer after it sees everything (spec
// 14.1.3); a renewal is observed too (14.2.4).
func TestObserverFailureIsolatedAndRenewalObserved(t *testing.T) {
	srv := secinfratest.Start(t, "--leaf-ttl-seconds", "4")
	rec := &recording{trace: true}
	client := srv.Enrol(t, secinfratest.SpiffeID("workload/renewing"),
		secinfra.WithObserver(panicking{}), secinfra.WithObserver(rec))
	renewed := make(chan struct{}, 1)
	client.OnRotation(func(e identity.Event) {
		if e.Kind == identity.Renewed {
			select {
			case renewed <- struct{}{}:
			default:
			}
		}
	})
	if _, err := client.Identity.GetCallerIdentity(ctx(t), &secinfrav1.GetCallerIdentityRequest{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-renewed:
	case <-time.After(20 * time.Second):
		t.Fatal("no renewal")
	}
	all := strings.Join(rec.take(), "\n")
	for _, want := range []string{
		"call_finished secinfra.v1.IdentityService/IssueCertificate ok=true",
		"call_finished secinfra.v1.IdentityService/GetCallerIdentity ok=true",
		"call_started secinfra.v1.IdentityService/RenewCertificate non_idempotent",
		"call_finished secinfra.v1.IdentityService/RenewCertificate ok=true",
	} {
		if !strings.Contains(all, want) {
			t.Fatalf("want %q in\n%s", want, all)
		}
	}
	if got := header(srv.Requests(t, "GetCallerIdentity")[0], "traceparent"); got == "" {
		t.Fatal("the failing observer stopped the recording observer's trace context")
	}
}
