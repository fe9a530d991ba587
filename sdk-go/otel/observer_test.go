package otel_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	secinfra "github.com/secinfra/secinfra/sdk-go"
	"github.com/secinfra/secinfra/sdk-go/gen/secinfrav1"
	"github.com/secinfra/secinfra/sdk-go/identity"
	secinfraotel "github.com/secinfra/secinfra/sdk-go/otel"
	"github.com/secinfra/secinfra/sdk-go/rpc"
	"github.com/secinfra/secinfra/sdk-go/secinfratest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// telemetry is an observer on recording providers.
type telemetry struct {
	obs    *secinfraotel.Observer
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
	tp     *sdktrace.TracerProvider
}

func newTelemetry(t *testing.T) *telemetry {
	t.Helper()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	obs, err := secinfraotel.NewObserver(secinfraotel.WithTracerProvider(tp), secinfraotel.WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	return &telemetry{obs: obs, spans: spans, reader: reader, tp: tp}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// ended is the ended spans named name, in the order they ended.
func (tel *telemetry) ended(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range tel.spans.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func attr(s sdktrace.ReadOnlySpan, key attribute.Key) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// counts is a counter's data points as "attr=value,... -> n" lines.
func (tel *telemetry) counts(t *testing.T, name string) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := tel.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				var parts []string
				for _, kv := range dp.Attributes.ToSlice() {
					parts = append(parts, string(kv.Key)+"="+kv.Value.Emit())
				}
				out[strings.Join(parts, ",")] = dp.Value
			}
		}
	}
	return out
}

func header(r secinfratest.Request, name string) string {
	for k, v := range r.Headers {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// A call is an INTERNAL span named by the RPC, a child of the caller's
// span; each attempt a CLIENT span below it with the HTTP attributes; the
// traceparent each attempt sends is its attempt span's (spec 14.5.1-2).
func TestSpansOfARetriedCall(t *testing.T) {
	srv := secinfratest.Start(t)
	tel := newTelemetry(t)
	client := srv.Enrol(t, secinfratest.SpiffeID("workload/traced"), secinfra.WithObserver(tel.obs))
	srv.Script(t, "GetCallerIdentity", secinfratest.Step{"status": 503})

	appCtx, app := tel.tp.Tracer("app").Start(ctx(t), "handle request")
	if _, err := client.Identity.GetCallerIdentity(appCtx, &secinfrav1.GetCallerIdentityRequest{}); err != nil {
		t.Fatal(err)
	}
	app.End()

	const rpcName = "secinfra.v1.IdentityService/GetCallerIdentity"
	callSpans := tel.ended(rpcName)
	if len(callSpans) != 1 {
		t.Fatalf("%d call spans", len(callSpans))
	}
	call := callSpans[0]
	if call.SpanKind() != trace.SpanKindInternal || call.Parent().SpanID() != app.SpanContext().SpanID() ||
		call.SpanContext().TraceID() != app.SpanContext().TraceID() {
		t.Fatalf("call span kind %v parent %v, want INTERNAL below %v", call.SpanKind(), call.Parent().SpanID(), app.SpanContext().SpanID())
	}
	if call.Status().Code == codes.Error {
		t.Fatalf("the call succeeded, its span has status %v", call.Status())
	}
	if _, ok := attr(call, "error.type"); ok {
		t.Errorf("the call succeeded, its span has error.type")
	}
	attempts := tel.ended("GET " + rpcName)
	if len(attempts) != 2 {
		t.Fatalf("%d attempt spans, want 2", len(attempts))
	}
	reqs := srv.Requests(t, "GetCallerIdentity")
	if len(reqs) != 2 {
		t.Fatalf("the server saw %d requests", len(reqs))
	}
	host, port := strings.Split(strings.TrimPrefix(srv.URL, "https://"), ":")[0], strings.Split(srv.URL, ":")[2]
	for i, a := range attempts {
		if a.SpanKind() != trace.SpanKindClient || a.Parent().SpanID() != call.SpanContext().SpanID() {
			t.Errorf("attempt %d: kind %v parent %v, want CLIENT below the call span", i+1, a.SpanKind(), a.Parent().SpanID())
		}
		want := map[attribute.Key]string{
			"rpc.service": "secinfra.v1.IdentityService", "rpc.method": "GetCallerIdentity",
			"http.request.method": "GET", "server.address": host, "server.port": port,
			"secinfra.attempt": fmt.Sprint(i + 1), "http.response.status_code": []string{"503", "200"}[i],
		}
		if i == 0 {
			want["error.type"] = "unavailable"
		}
		for key, value := range want {
			if got, ok := attr(a, key); !ok || got.Emit() != value {
				t.Errorf("attempt %d: %s = %q, want %q", i+1, key, got.Emit(), value)
			}
		}
		if _, ok := attr(a, "error.type"); ok && i == 1 {
			t.Errorf("the answered attempt has error.type")
		}
		sc := a.SpanContext()
		wantTP := fmt.Sprintf("00-%s-%s-01", sc.TraceID(), sc.SpanID())
		if got := header(reqs[i], "traceparent"); got != wantTP {
			t.Errorf("attempt %d sent traceparent %q, want the attempt span's %q", i+1, got, wantTP)
		}
	}
	const identityRPC = "rpc.method=GetCallerIdentity,rpc.service=secinfra.v1.IdentityService"
	if got := tel.counts(t, secinfraotel.AttemptsMetric); got["error.type=unavailable,http.response.status_code=503,"+identityRPC] != 1 ||
		got["http.response.status_code=200,"+identityRPC] != 1 {
		t.Errorf("attempt counts %v", got)
	}
	calls := tel.counts(t, secinfraotel.CallsMetric)
	if calls[identityRPC] != 1 || calls["rpc.method=IssueCertificate,rpc.service=secinfra.v1.IdentityService"] != 1 {
		t.Errorf("call counts %v, want one GetCallerIdentity and one IssueCertificate (the enrolment is a call too)", calls)
	}
	for attrs := range calls {
		if strings.Contains(attrs, "error.type") {
			t.Errorf("every call succeeded, yet one is counted with %s", attrs)
		}
	}
}

// A failed call's span has status ERROR and error.type; a cache answer is
// an event on the call's span and a count (spec 14.5.1, 14.5.3, 14.4).
func TestFailedCallAndCacheEvent(t *testing.T) {
	srv := secinfratest.Start(t)
	tel := newTelemetry(t)
	client := srv.Enrol(t, secinfratest.SpiffeID("workload/denied"), secinfra.WithObserver(tel.obs))

	_, err := client.Secrets.GetSecret(ctx(t), &secinfrav1.GetSecretRequest{Name: "not/mine"})
	if !errors.Is(err, rpc.ErrPermissionDenied) {
		t.Fatalf("want permission_denied, got %v", err)
	}
	const getSecret = "secinfra.v1.SecretsService/GetSecret"
	const getSecretRPC = "rpc.method=GetSecret,rpc.service=secinfra.v1.SecretsService"
	spans := tel.ended(getSecret)
	if len(spans) != 1 {
		t.Fatalf("%d GetSecret spans", len(spans))
	}
	span := spans[0]
	if span.Status().Code != codes.Error {
		t.Errorf("status %v, want ERROR", span.Status())
	}
	for key, value := range map[attribute.Key]string{
		"error.type": rpc.CodePermissionDenied, "rpc.service": "secinfra.v1.SecretsService", "rpc.method": "GetSecret",
	} {
		if got, ok := attr(span, key); !ok || got.Emit() != value {
			t.Errorf("%s = %q, want %q", key, got.Emit(), value)
		}
	}
	if events := span.Events(); len(events) != 1 || events[0].Name != "cache" ||
		len(events[0].Attributes) != 1 || events[0].Attributes[0] != secinfraotel.CacheResultKey.String("miss") {
		t.Errorf("events %+v, want one cache event with secinfra.cache.result=miss", events)
	}
	if got := tel.counts(t, secinfraotel.CallsMetric); got["error.type=permission_denied,"+getSecretRPC] != 1 {
		t.Errorf("call counts %v", got)
	}

	const bundle = "secinfra.v1.IdentityService/GetTrustBundle"
	for i := 0; i < 2; i++ {
		if _, err := client.Identity.GetTrustBundle(ctx(t), &secinfrav1.GetTrustBundleRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	bundleSpans := tel.ended(bundle)
	last := bundleSpans[len(bundleSpans)-1]
	if events := last.Events(); len(events) != 1 || events[0].Attributes[0] != secinfraotel.CacheResultKey.String("hit") {
		t.Errorf("the second bundle read's events %+v, want a cache hit", events)
	}
	for _, s := range tel.spans.Ended() {
		if s.Name() == "GET "+bundle && s.Parent().SpanID() == last.SpanContext().SpanID() {
			t.Errorf("a cache hit made an attempt")
		}
	}
	if got := tel.counts(t, secinfraotel.CacheLookupsMetric); got["rpc.method=GetTrustBundle,rpc.service=secinfra.v1.IdentityService,secinfra.cache.result=hit"] < 1 ||
		got[getSecretRPC+",secinfra.cache.result=miss"] != 1 {
		t.Errorf("cache lookup counts %v", got)
	}
}

// Renewals are counted from rotation events, a failed one with error.type
// (the error's code) and nothing else (spec 14.5.4).
func TestRenewalsCounted(t *testing.T) {
	tel := newTelemetry(t)
	denied := fmt.Errorf("secinfra: identity: renewal: %w", &rpc.Error{Kind: rpc.KindPermissionDenied, Code: rpc.CodePermissionDenied})
	refused := errors.New("secinfra: identity: the renewal answer holds no certificate")
	for _, e := range []identity.Event{
		{Kind: identity.Enrolled},
		{Kind: identity.Renewed},
		{Kind: identity.Renewed},
		{Kind: identity.RenewalFailed, Err: denied},
		{Kind: identity.RenewalFailed, Err: refused},
		{Kind: identity.BundleUpdated},
	} {
		tel.obs.OnRotation(e)
	}
	got := tel.counts(t, secinfraotel.RenewalsMetric)
	want := map[string]int64{"": 2, "error.type=permission_denied": 1, "error.type=internal": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("renewal counts %v, want %v", got, want)
	}
}
