package secinfra_test

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	secinfra "github.com/secinfra/secinfra/sdk-go"
	"github.com/secinfra/secinfra/sdk-go/gen/secinfrav1"
	"github.com/secinfra/secinfra/sdk-go/identity"
	"github.com/secinfra/secinfra/sdk-go/rpc"
	"github.com/secinfra/secinfra/sdk-go/secinfratest"
)

// closedPortURL is an https URL on a loopback port nothing listens on.
func closedPortURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "https://" + addr
}

func TestARefusedHomeEndpointIsPassedOver(t *testing.T) {
	srv := secinfratest.Start(t)
	id := secinfratest.SpiffeID("workload/failover")
	dead := closedPortURL(t)
	client, err := secinfra.Enrol(ctx(t), dead, identity.JoinToken(srv.JoinToken(t, id)), srv.BundlePEM(t),
		secinfra.WithEndpoints(srv.URL), secinfra.WithEndpointOrder(secinfra.EndpointsListed),
		secinfra.WithEndpointCooldown(30*time.Second, 60*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var meta rpc.Meta
	who, err := client.Identity.GetCallerIdentity(ctx(t), &secinfrav1.GetCallerIdentityRequest{}, rpc.WithMeta(&meta))
	if err != nil || who.SpiffeID != id {
		t.Fatalf("whoami: %v %v", who, err)
	}
	if meta.Endpoint != srv.URL || meta.Attempts != 1 {
		t.Fatalf("meta %+v: want one attempt at %s (the dead home is cooling down)", meta, srv.URL)
	}
	states := client.Endpoints()
	if len(states) != 2 || states[0].URL != dead || states[0].Failures != 1 || states[0].CoolingFor <= 0 ||
		states[1].URL != srv.URL || states[1].Failures != 0 || states[1].CoolingFor != 0 {
		t.Fatalf("endpoint states %+v", states)
	}
}

func TestAnErrorNamesTheLastAttemptsEndpoint(t *testing.T) {
	srv := secinfratest.Start(t)
	first, second := closedPortURL(t), closedPortURL(t)
	client, err := secinfra.FromFiles(first, srv.AdminFile("cert.pem"), srv.AdminFile("key.pem"), srv.AdminFile("bundle.pem"),
		secinfra.WithEndpoints(second), secinfra.WithEndpointOrder(secinfra.EndpointsListed))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	_, err = client.Identity.GetCallerIdentity(ctx(t), &secinfrav1.GetCallerIdentityRequest{})
	var e *rpc.Error
	if !errors.As(err, &e) || !errors.Is(err, rpc.ErrTransport) {
		t.Fatalf("want a transport error, got %v", err)
	}
	// Four attempts, alternating: each failure cools its endpoint down.
	if e.Attempts != 4 || e.Endpoint != second || !strings.Contains(e.Error(), second) {
		t.Fatalf("error %+v (%v): want 4 attempts, the last at %s, named in the message", e, e, second)
	}
}

func TestSeveralEndpointsSettingsAreChecked(t *testing.T) {
	srv := secinfratest.Start(t)
	tests := []struct {
		name    string
		url     string
		opts    []secinfra.Option
		wantErr string
	}{
		{name: "plain-http-extra", url: srv.URL, opts: []secinfra.Option{secinfra.WithEndpoints("http://b.test")}, wantErr: "must be https://"},
		{name: "duplicate", url: srv.URL, opts: []secinfra.Option{secinfra.WithEndpoints(srv.URL + "/")}, wantErr: "listed twice"},
		{name: "cooldown", url: srv.URL, opts: []secinfra.Option{secinfra.WithEndpointCooldown(time.Second, time.Millisecond)}, wantErr: "endpoint_cooldown"},
		{name: "order", url: srv.URL, opts: []secinfra.Option{secinfra.WithEndpointOrder(secinfra.EndpointOrder(7))}, wantErr: "endpoint_order"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := secinfra.FromFiles(tt.url, srv.AdminFile("cert.pem"), srv.AdminFile("key.pem"), srv.AdminFile("bundle.pem"), tt.opts...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
