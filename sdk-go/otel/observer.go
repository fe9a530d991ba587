// Package otel is the OpenTelemetry integration of the secinfra Go SDK
// (spec 14.5): an observer that traces every call and attempt and counts
// calls, attempts, cache lookups and renewals with the OpenTelemetry API. It
// is a module of its own, github.com/secinfra/secinfra/sdk-go/otel, so the
// SDK itself keeps to the standard library.
//
//	obs, err := secinfraotel.NewObserver() // the global tracer and meter providers
//	if err != nil { ... }
//	client, err := secinfra.Enrol(ctx, url, token, bundle, secinfra.WithObserver(obs))
//	if err != nil { ... }
//	client.OnRotation(obs.OnRotation) // renewals, the failed ones by error.type
//
// (imported as secinfraotel, since go.opentelemetry.io/otel is also
// package otel).
//
// Each call is a span of kind INTERNAL named by the RPC's full name
// (secinfra.v1.SecretsService/GetSecret), a child of the span in the call's
// context; it gets an event "cache" with secinfra.cache.result when the
// cache answered it, and status ERROR with error.type set to the error's
// code when the call failed. Each attempt is a span of kind CLIENT, a child
// of the call's span, named "<HTTP method> <RPC full name>", with
// http.request.method, server.address, server.port, secinfra.attempt,
// http.response.status_code when answered and error.type when it failed;
// the attempt's traceparent and tracestate headers carry the attempt span's
// context (W3C Trace Context, whatever the global propagator), so the
// server's span is its child.
//
// Spans and counters name the RPC with rpc.service
// (secinfra.v1.SecretsService) and rpc.method (GetSecret), and a failure
// with error.type, the error's code, absent on success (spec 14.5.4). The
// counters are:
//
//	secinfra.client.calls          {call}     rpc.service, rpc.method, error.type when the call failed
//	secinfra.client.attempts       {attempt}  rpc.service, rpc.method, http.response.status_code when answered, error.type when the attempt failed
//	secinfra.client.cache.lookups  {lookup}   rpc.service, rpc.method, secinfra.cache.result
//	secinfra.client.renewals       {renewal}  error.type when the renewal failed
//
// No attribute carries a path, an object or secret name, or an error
// message.
package otel

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"strings"

	secinfra "github.com/secinfra/secinfra/sdk-go"
	"github.com/secinfra/secinfra/sdk-go/identity"
	"github.com/secinfra/secinfra/sdk-go/rpc"
	otelapi "go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the observer's tracer and meter.
const ScopeName = "github.com/secinfra/secinfra/sdk-go/otel"

// OpenTelemetry's RPC attribute keys, on every span and on the call,
// attempt and cache lookup counters (spec 14.5.4). The pinned semconv
// (v1.43.0) has no rpc.service and gives rpc.method the full name, so they
// are declared here with the meaning of OpenTelemetry's RPC conventions up
// to semconv v1.38.0, which the spec follows. error.type is semconv's
// (semconv.ErrorTypeKey).
const (
	// RPCServiceKey is the RPC's service, secinfra.v1.SecretsService.
	RPCServiceKey = attribute.Key("rpc.service")
	// RPCMethodKey is the RPC's method within its service, GetSecret.
	RPCMethodKey = attribute.Key("rpc.method")
)

// Attribute keys of secinfra's own.
const (
	// IdempotencyKey is the call's idempotency class, on call spans.
	IdempotencyKey = attribute.Key("secinfra.idempotency")
	// AttemptKey is the attempt's number (Secinfra-Attempt), on attempt spans.
	AttemptKey = attribute.Key("secinfra.attempt")
	// AttemptsKey is the attempts a call made, on call spans.
	AttemptsKey = attribute.Key("secinfra.attempts")
	// FromCacheKey says the call's value came from the cache, on call spans.
	FromCacheKey = attribute.Key("secinfra.from_cache")
	// StaleKey says the call's value was a stale cached one, on call spans.
	StaleKey = attribute.Key("secinfra.stale")
	// CacheResultKey is hit, miss or revalidate, on the cache event and
	// the cache lookup counter.
	CacheResultKey = attribute.Key("secinfra.cache.result")
)

// The metric names (spec 14.4, 14.5.4).
const (
	// CallsMetric ({call}) counts calls by RPCServiceKey and RPCMethodKey,
	// with error.type (the error's code) when the call failed.
	CallsMetric = "secinfra.client.calls"
	// AttemptsMetric ({attempt}) counts attempts by RPCServiceKey,
	// RPCMethodKey and http.response.status_code (absent for an attempt
	// without an answer), with error.type when the attempt failed.
	AttemptsMetric = "secinfra.client.attempts"
	// CacheLookupsMetric ({lookup}) counts cache lookups by RPCServiceKey,
	// RPCMethodKey and CacheResultKey.
	CacheLookupsMetric = "secinfra.client.cache.lookups"
	// RenewalsMetric ({renewal}) counts renewals, with error.type (the
	// error's code) when the renewal failed; from rotation events, spec
	// 9.8: see Observer.OnRotation.
	RenewalsMetric = "secinfra.client.renewals"
)

// Observer is an rpc.Observer that makes OpenTelemetry spans and metrics of
// a client's calls. Register it with secinfra.WithObserver; it is safe for
// concurrent use and may be shared by several clients.
type Observer struct {
	tracer       trace.Tracer
	calls        metric.Int64Counter
	attempts     metric.Int64Counter
	cacheLookups metric.Int64Counter
	renewals     metric.Int64Counter
}

var _ rpc.Observer = (*Observer)(nil)

// Option configures NewObserver.
type Option func(*config)

type config struct {
	tracers trace.TracerProvider
	meters  metric.MeterProvider
}

// WithTracerProvider makes the spans with tp instead of the global
// tracer provider.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.tracers = tp }
}

// WithMeterProvider counts with mp instead of the global meter provider.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) { c.meters = mp }
}

// NewObserver returns an observer on the global tracer and meter providers
// (otel.GetTracerProvider, otel.GetMeterProvider) unless options say
// otherwise. It fails only when an instrument cannot be made.
func NewObserver(opts ...Option) (*Observer, error) {
	c := config{}
	for _, opt := range opts {
		if opt != nil {
			opt(&c)
		}
	}
	if c.tracers == nil {
		c.tracers = otelapi.GetTracerProvider()
	}
	if c.meters == nil {
		c.meters = otelapi.GetMeterProvider()
	}
	o := &Observer{tracer: c.tracers.Tracer(ScopeName, trace.WithInstrumentationVersion(secinfra.Version))}
	meter := c.meters.Meter(ScopeName, metric.WithInstrumentationVersion(secinfra.Version))
	var err error
	for _, counter := range []struct {
		into              *metric.Int64Counter
		name, unit, about string
	}{
		{&o.calls, CallsMetric, "{call}", "Calls made by the secinfra client, by RPC and error type."},
		{&o.attempts, AttemptsMetric, "{attempt}", "HTTP attempts made by the secinfra client, by RPC, status and error type."},
		{&o.cacheLookups, CacheLookupsMetric, "{lookup}", "Response cache lookups of the secinfra client, by RPC and result."},
		{&o.renewals, RenewalsMetric, "{renewal}", "Certificate renewals of the secinfra client, by error type."},
	} {
		if *counter.into, err = meter.Int64Counter(counter.name, metric.WithUnit(counter.unit), metric.WithDescription(counter.about)); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// CallStarted starts the call's span (INTERNAL, named by the RPC) as a
// child of the span in ctx.
func (o *Observer) CallStarted(ctx context.Context, c rpc.CallStart) context.Context {
	service, method := rpcAttributes(c.RPC)
	ctx, _ = o.tracer.Start(ctx, c.RPC, trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(service, method, IdempotencyKey.String(c.Idempotency.String())))
	return ctx
}

// CacheLookup adds the event "cache" to the call's span and counts the lookup.
func (o *Observer) CacheLookup(ctx context.Context, l rpc.CacheLookup) {
	result := CacheResultKey.String(string(l.Result))
	trace.SpanFromContext(ctx).AddEvent("cache", trace.WithAttributes(result))
	service, method := rpcAttributes(l.RPC)
	o.cacheLookups.Add(ctx, 1, metric.WithAttributes(service, method, result))
}

// AttemptStarted starts the attempt's span (CLIENT, a child of the call's)
// and returns its W3C trace context for the attempt's request.
func (o *Observer) AttemptStarted(ctx context.Context, a rpc.AttemptStart) (context.Context, rpc.TraceContext) {
	service, method := rpcAttributes(a.RPC)
	attrs := []attribute.KeyValue{service, method, semconv.HTTPRequestMethodKey.String(a.Method), AttemptKey.Int(a.Attempt)}
	if host, port, ok := hostPort(a.Endpoint); ok {
		attrs = append(attrs, semconv.ServerAddress(host), semconv.ServerPort(port))
	}
	ctx, _ = o.tracer.Start(ctx, a.Method+" "+a.RPC, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	return ctx, rpc.TraceContext{Traceparent: carrier.Get("traceparent"), Tracestate: carrier.Get("tracestate")}
}

// AttemptFinished ends the attempt's span, with its status or error, and
// counts the attempt.
func (o *Observer) AttemptFinished(ctx context.Context, a rpc.AttemptEnd) {
	span := trace.SpanFromContext(ctx)
	service, method := rpcAttributes(a.RPC)
	attrs := make([]attribute.KeyValue, 2, 4)
	attrs[0], attrs[1] = service, method
	if a.Status != 0 {
		attrs = append(attrs, semconv.HTTPResponseStatusCode(a.Status))
	}
	if a.Code != "" {
		attrs = append(attrs, semconv.ErrorTypeKey.String(a.Code))
		span.SetStatus(codes.Error, a.Code)
	}
	span.SetAttributes(attrs[2:]...) // the span has the RPC's since it started
	span.End()
	o.attempts.Add(ctx, 1, metric.WithAttributes(attrs...))
}

// CallFinished ends the call's span, with status ERROR and error.type
// when the call failed, and counts the call.
func (o *Observer) CallFinished(ctx context.Context, c rpc.CallEnd) {
	span := trace.SpanFromContext(ctx)
	span.SetAttributes(AttemptsKey.Int(c.Meta.Attempts), FromCacheKey.Bool(c.Meta.FromCache), StaleKey.Bool(c.Meta.Stale))
	service, method := rpcAttributes(c.RPC)
	attrs := []attribute.KeyValue{service, method}
	if !c.OK() {
		errorType := semconv.ErrorTypeKey.String(c.Code)
		attrs = append(attrs, errorType)
		span.SetAttributes(errorType)
		span.SetStatus(codes.Error, c.Err.Error())
	}
	span.End()
	o.calls.Add(ctx, 1, metric.WithAttributes(attrs...))
}

// OnRotation counts renewals (spec 14.4, 14.5.4), a failed one with
// error.type: subscribe it with client.OnRotation(obs.OnRotation). Events
// other than renewed and renewal_failed are not counted.
func (o *Observer) OnRotation(e identity.Event) {
	switch e.Kind {
	case identity.Renewed:
		o.renewals.Add(context.Background(), 1)
	case identity.RenewalFailed:
		o.renewals.Add(context.Background(), 1, metric.WithAttributes(semconv.ErrorTypeKey.String(errorCode(e.Err))))
	}
}

// rpcAttributes splits an RPC's full name (secinfra.v1.SecretsService/GetSecret)
// into its rpc.service and rpc.method.
func rpcAttributes(fullName string) (service, method attribute.KeyValue) {
	s, m, _ := strings.Cut(fullName, "/")
	return RPCServiceKey.String(s), RPCMethodKey.String(m)
}

// errorCode is a failed renewal's code: the SDK error's, else internal, as
// the client gives a failed call's (a renewal answer it refused is not an
// *rpc.Error).
func errorCode(err error) string {
	var e *rpc.Error
	if errors.As(err, &e) && e.Code != "" {
		return e.Code
	}
	return rpc.CodeInternal
}

// hostPort splits an endpoint's https:// URL into its host and port (443
// when it names none).
func hostPort(endpoint string) (string, int, bool) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return "", 0, false
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		return host, 443, true
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return "", 0, false
	}
	return host, n, true
}
