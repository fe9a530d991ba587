// Command secinfra-conformance is the Go SDK's conformance client: it speaks
// the JSON-lines adapter protocol on stdin/stdout for the conformance runner,
// using only the SDK's public API. The protocol's messages are the types of
// ./protocol, generated from conformance/protocol/secinfra/conformance/v1/
// adapter.proto (explained in docs/conformance/adapter-protocol.md).
// stdout carries protocol lines only; logs go to stderr.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"reflect"
	"sync"
	"time"

	secinfra "github.com/secinfra/secinfra/sdk-go"
	"github.com/secinfra/secinfra/sdk-go/cmd/secinfra-conformance/protocol"
	"github.com/secinfra/secinfra/sdk-go/identity"
	"github.com/secinfra/secinfra/sdk-go/rpc"
)

const protocolVersion = 1

// features are every feature of the protocol: the Go SDK has every option and op.
var features = []protocol.Feature{
	protocol.FeatureJWTAttestation, protocol.FeatureConcurrent, protocol.FeatureIdentity,
	protocol.FeatureEvents, protocol.FeatureCacheSize, protocol.FeatureIdempotencyKey,
	protocol.FeatureUseCache, protocol.FeatureEndpoints, protocol.FeatureMtls, protocol.FeatureObserver,
}

// protocolError is an Unsupported, AdapterError or (configure only)
// InvalidSetting answer.
type protocolError struct{ kind, msg string }

func (e *protocolError) Error() string { return e.msg }

func unsupported(format string, a ...any) error {
	return &protocolError{"Unsupported", fmt.Sprintf(format, a...)}
}

func adapterError(format string, a ...any) error {
	return &protocolError{"AdapterError", fmt.Sprintf(format, a...)}
}

type adapter struct {
	client *secinfra.Client
	mu     sync.Mutex
	events []*protocol.RotationEvent
	// serving is the server of mtls_serve, until mtls_stop (mtls.go).
	serving *mtlsServer
	// observed is the recording observer of configure.observer, or nil.
	observed *recorder
}

// decodeStrict decodes one request line into its op's message; unknown
// fields are an AdapterError, as the protocol says.
func decodeStrict(line []byte, into any) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		return adapterError("malformed request: %v", err)
	}
	return nil
}

func main() {
	log.SetOutput(os.Stderr)
	serve(os.Stdin, os.Stdout)
}

// serve speaks the protocol: the hello line, then one answer per request
// line of in, until shutdown or the end of in.
func serve(in io.Reader, stdout io.Writer) {
	out := bufio.NewWriter(stdout)
	var outMu sync.Mutex
	send := func(v any) {
		data, err := json.Marshal(v)
		if err != nil {
			data, _ = json.Marshal(protocol.ErrorAnswer{Error: &protocol.Failure{Type: "AdapterError", Message: err.Error()}})
		}
		outMu.Lock()
		defer outMu.Unlock()
		out.Write(append(data, '\n'))
		out.Flush()
	}
	send(protocol.HelloLine{Hello: &protocol.Hello{
		Protocol: protocolVersion, Sdk: "go", SdkVersion: secinfra.Version,
		Ops: []string{"configure", "call", "concurrent", "identity", "events",
			"observations", "mtls_serve", "mtls_stop", "mtls_call", "shutdown"},
		Features: features,
	}})
	a := &adapter{}
	scanner := bufio.NewScanner(in)
	scanner.Buffer(make([]byte, 1<<20), 64<<20)
	for scanner.Scan() {
		line := bytes.TrimSpace(scanner.Bytes())
		if len(line) == 0 {
			continue
		}
		var header protocol.RequestHeader
		if err := json.Unmarshal(line, &header); err != nil {
			send(failed(nil, adapterError("%v", err)))
			continue
		}
		id := header.ID
		if header.Op == "shutdown" {
			send(protocol.ShutdownAnswer{ID: &id, Ok: true, Result: &protocol.ShutdownResult{}})
			break
		}
		send(a.handle(header.Op, id, line))
	}
	a.mtlsStop()
	if a.client != nil {
		a.client.Close()
	}
}

// handle runs one op; its answer message.
func (a *adapter) handle(op string, id int32, line []byte) (answer any) {
	defer func() {
		if r := recover(); r != nil {
			answer = failed(&id, adapterError("panic: %v", r))
		}
	}()
	switch op {
	case "configure":
		var req protocol.ConfigureRequest
		if err := decodeStrict(line, &req); err != nil {
			return failed(&id, err)
		}
		snapshot, err := a.configure(&req)
		if err != nil {
			return identityFailed(id, err)
		}
		return protocol.IdentityAnswer{ID: &id, Ok: true, Result: snapshot}
	case "call":
		var req protocol.CallRequest
		if err := decodeStrict(line, &req); err != nil {
			return failed(&id, err)
		}
		p, err := a.prepare(req.RPC, req.Request, req.CallOptions)
		if err != nil {
			return failed(&id, err)
		}
		o := p.run()
		if isProtocolError(o) {
			return protocol.ErrorAnswer{ID: &id, Error: o.Error}
		}
		return protocol.CallAnswer{ID: &id, Ok: o.Ok, Result: o.Result, Meta: o.Meta, Error: o.Error}
	case "concurrent":
		var req protocol.ConcurrentRequest
		if err := decodeStrict(line, &req); err != nil {
			return failed(&id, err)
		}
		result, err := a.concurrent(&req)
		if err != nil {
			return failed(&id, err)
		}
		return protocol.ConcurrentAnswer{ID: &id, Ok: true, Result: result}
	case "identity", "events":
		var req protocol.BareRequest
		if err := decodeStrict(line, &req); err != nil {
			return failed(&id, err)
		}
		if op == "events" {
			a.mu.Lock()
			events := append([]*protocol.RotationEvent{}, a.events...)
			a.mu.Unlock()
			return protocol.EventsAnswer{ID: &id, Ok: true, Result: &protocol.EventList{Events: events}}
		}
		snapshot, err := a.identity()
		if err != nil {
			return identityFailed(id, err)
		}
		return protocol.IdentityAnswer{ID: &id, Ok: true, Result: snapshot}
	case "observations":
		var req protocol.BareRequest
		if err := decodeStrict(line, &req); err != nil {
			return failed(&id, err)
		}
		if a.observed == nil {
			return failed(&id, adapterError("configure with an observer first"))
		}
		return protocol.ObservationsAnswer{ID: &id, Ok: true, Result: &protocol.ObservationList{Observations: a.observed.take()}}
	case "mtls_serve":
		var req protocol.MtlsServeRequest
		if err := decodeStrict(line, &req); err != nil {
			return failed(&id, err)
		}
		serving, err := a.mtlsServe(&req)
		if err != nil {
			return failed(&id, err)
		}
		return protocol.MtlsServeAnswer{ID: &id, Ok: true, Result: serving}
	case "mtls_stop":
		var req protocol.BareRequest
		if err := decodeStrict(line, &req); err != nil {
			return failed(&id, err)
		}
		a.mtlsStop()
		return protocol.MtlsStopAnswer{ID: &id, Ok: true, Result: &protocol.MtlsStopped{}}
	case "mtls_call":
		var req protocol.MtlsCallRequest
		if err := decodeStrict(line, &req); err != nil {
			return failed(&id, err)
		}
		result, failure, err := a.mtlsCall(&req)
		if err != nil {
			return failed(&id, err)
		}
		return protocol.MtlsCallAnswer{ID: &id, Ok: failure == nil, Result: result, Error: failure}
	}
	return failed(&id, unsupported("op %q", op))
}

// isProtocolError reports whether an outcome is the adapter's own failure.
func isProtocolError(o *protocol.CallOutcome) bool {
	return o.Error != nil && (o.Error.Type == "Unsupported" || o.Error.Type == "AdapterError")
}

// identityFailed answers configure or identity with an SDK error, or the
// adapter's own failure for anything else.
func identityFailed(id int32, err error) any {
	var e *rpc.Error
	if errors.As(err, &e) {
		return protocol.IdentityAnswer{ID: &id, Ok: false, Error: failure(e)}
	}
	return failed(&id, err)
}

// failed is the answer for a request the client cannot serve.
func failed(id *int32, err error) protocol.ErrorAnswer {
	var pe *protocolError
	if errors.As(err, &pe) {
		return protocol.ErrorAnswer{ID: id, Error: &protocol.Failure{Type: pe.kind, Message: pe.msg}}
	}
	return protocol.ErrorAnswer{ID: id, Error: &protocol.Failure{Type: "AdapterError", Message: "not an SDK error: " + err.Error()}}
}

// outcome is one call's result, meta or error.
func outcome(result map[string]any, meta *protocol.CallMeta, err error) *protocol.CallOutcome {
	if err == nil {
		return &protocol.CallOutcome{Ok: true, Result: result, Meta: meta}
	}
	var pe *protocolError
	if errors.As(err, &pe) {
		return &protocol.CallOutcome{Error: &protocol.Failure{Type: pe.kind, Message: pe.msg}}
	}
	var e *rpc.Error
	if !errors.As(err, &e) {
		return &protocol.CallOutcome{Error: &protocol.Failure{Type: "AdapterError", Message: "not an SDK error: " + err.Error()}}
	}
	return &protocol.CallOutcome{Error: failure(e)}
}

func failure(e *rpc.Error) *protocol.Failure {
	code, message, retryable, attempts := e.Code, e.Error(), e.Retryable, int32(e.Attempts)
	out := &protocol.Failure{
		Type: e.Kind.String(), Code: &code, Message: message, Retryable: &retryable, Attempts: &attempts,
	}
	if e.Status != 0 {
		status := int32(e.Status)
		out.Status = &status
	}
	if e.RequestID != "" {
		requestID := e.RequestID
		out.RequestID = &requestID
	}
	if e.HasRetryAfter {
		after := e.RetryAfter.Seconds()
		out.RetryAfter = &after
	}
	if e.Endpoint != "" {
		endpoint := e.Endpoint
		out.Endpoint = &endpoint
	}
	return out
}

func seconds(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

func (a *adapter) configure(req *protocol.ConfigureRequest) (*protocol.IdentitySnapshot, error) {
	if a.client != nil {
		return nil, adapterError("configure was already called")
	}
	var opts []secinfra.Option
	if o := req.Options; o != nil {
		if o.MaxAttempts != nil {
			opts = append(opts, secinfra.WithMaxAttempts(int(*o.MaxAttempts)))
		}
		if o.DeadlineSeconds != nil {
			opts = append(opts, secinfra.WithDeadline(seconds(*o.DeadlineSeconds)))
		}
		if o.AttemptTimeoutSeconds != nil {
			opts = append(opts, secinfra.WithAttemptTimeout(seconds(*o.AttemptTimeoutSeconds)))
		}
		if o.CacheSize != nil {
			opts = append(opts, secinfra.WithCacheSize(int(*o.CacheSize)))
		}
		if o.EndpointOrder != nil {
			order := map[string]secinfra.EndpointOrder{"random": secinfra.EndpointsRandom, "listed": secinfra.EndpointsListed}
			chosen, ok := order[*o.EndpointOrder]
			if !ok {
				return nil, adapterError("unknown endpoint_order %q", *o.EndpointOrder)
			}
			opts = append(opts, secinfra.WithEndpointOrder(chosen))
		}
		if o.EndpointCooldownSeconds != nil {
			cooldown := seconds(*o.EndpointCooldownSeconds)
			opts = append(opts, secinfra.WithEndpointCooldown(cooldown, max(cooldown, secinfra.DefaultEndpointCooldownMax)))
		}
	}
	if o := req.Observer; o != nil {
		// The failing observer first, so the recording one shows that it
		// stopped nothing (spec 14.1.3).
		if o.FailingFirst {
			opts = append(opts, secinfra.WithObserver(failing{}))
		}
		a.observed = &recorder{traceparent: o.Traceparent, tracestate: o.Tracestate}
		opts = append(opts, secinfra.WithObserver(a.observed))
	}
	serverURL := req.ServerURL
	if len(req.Endpoints) > 0 {
		// Several endpoints (spec 12.1): the first is the server URL, the rest follow.
		serverURL = req.Endpoints[0]
		opts = append(opts, secinfra.WithEndpoints(req.Endpoints[1:]...))
	}
	joinToken, jwt := "", ""
	if req.JoinToken != nil {
		joinToken = *req.JoinToken
	}
	if req.JWT != nil {
		jwt = *req.JWT
	}
	if (joinToken == "") == (jwt == "") {
		return nil, adapterError("configure takes exactly one of join_token and jwt")
	}
	attestation := identity.JoinToken(joinToken)
	if jwt != "" {
		token := jwt
		// A provider, not the string: a reusable attestation (spec 8.7.3), so
		// the SDK re-enrols by itself after an expiry (9.7.1).
		attestation = identity.JWTProvider(func(context.Context) (string, error) { return token, nil })
	}
	client, err := secinfra.Enrol(context.Background(), serverURL, attestation, []byte(req.BundlePEM), opts...)
	if err != nil {
		var e *rpc.Error
		if !errors.As(err, &e) {
			// Not a call's error: the SDK refused a setting at creation (spec 1.4.4).
			return nil, &protocolError{"InvalidSetting", err.Error()}
		}
		return nil, err
	}
	a.client = client
	client.OnRotation(a.record)
	return a.identity()
}

func (a *adapter) record(e identity.Event) {
	ev := &protocol.RotationEvent{Kind: string(e.Kind), At: float64(e.At.UnixNano()) / 1e9}
	if e.Snapshot != nil {
		serial, spiffeID := e.Snapshot.Serial, e.Snapshot.SpiffeID
		ev.Serial, ev.SpiffeID = &serial, &spiffeID
	}
	if e.Bundle != nil {
		ev.BundleSequence = int32(e.Bundle.Sequence)
	}
	if e.Err != nil {
		message := e.Err.Error()
		ev.Error = &message
	}
	a.mu.Lock()
	a.events = append(a.events, ev)
	a.mu.Unlock()
}

func (a *adapter) identity() (*protocol.IdentitySnapshot, error) {
	if a.client == nil {
		return nil, adapterError("configure first")
	}
	src := a.client.Source()
	result := &protocol.IdentitySnapshot{BundleSequence: int32(src.Bundle().Sequence)}
	if s := src.Snapshot(); s != nil {
		spiffeID, serial, notAfter := s.SpiffeID, s.Serial, s.NotAfter.UTC().Format(time.RFC3339)
		result.SpiffeID, result.Serial, result.NotAfter = &spiffeID, &serial, &notAfter
	}
	return result, nil
}

// prepared is a call ready to run any number of times.
type prepared struct {
	method reflect.Value
	req    reflect.Value
	opts   []rpc.CallOption
}

func (a *adapter) prepare(rpcName string, request map[string]any, overrides *protocol.CallOverrides) (*prepared, error) {
	if a.client == nil {
		return nil, adapterError("configure first")
	}
	var method reflect.Value
	for _, svc := range []any{a.client.Secrets, a.client.Authz, a.client.Identity} {
		if m := reflect.ValueOf(svc).MethodByName(rpcName); m.IsValid() {
			method = m
			break
		}
	}
	if !method.IsValid() || rpcName == "" {
		return nil, unsupported("rpc %q", rpcName)
	}
	reqType := method.Type().In(1).Elem()
	value := reflect.New(reqType)
	if request == nil {
		request = map[string]any{}
	}
	body, err := json.Marshal(request)
	if err != nil {
		return nil, adapterError("request for %s: %v", rpcName, err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(value.Interface()); err != nil {
		return nil, adapterError("request for %s: %v", rpcName, err)
	}
	return &prepared{method: method, req: value, opts: callOptions(overrides)}, nil
}

func callOptions(o *protocol.CallOverrides) []rpc.CallOption {
	var opts []rpc.CallOption
	if o == nil {
		return opts
	}
	if o.MaxAttempts != nil {
		opts = append(opts, rpc.WithMaxAttempts(int(*o.MaxAttempts)))
	}
	if o.DeadlineSeconds != nil {
		opts = append(opts, rpc.WithDeadline(seconds(*o.DeadlineSeconds)))
	}
	if o.AttemptTimeoutSeconds != nil {
		opts = append(opts, rpc.WithAttemptTimeout(seconds(*o.AttemptTimeoutSeconds)))
	}
	if o.IdempotencyKey != nil {
		opts = append(opts, rpc.WithIdempotencyKey(*o.IdempotencyKey))
	}
	if o.UseCache != nil {
		opts = append(opts, rpc.WithUseCache(*o.UseCache))
	}
	return opts
}

// run makes the call once; its outcome.
func (p *prepared) run() *protocol.CallOutcome {
	var meta rpc.Meta
	args := []reflect.Value{reflect.ValueOf(context.Background()), p.req}
	for _, o := range append(append([]rpc.CallOption{}, p.opts...), rpc.WithMeta(&meta)) {
		args = append(args, reflect.ValueOf(o))
	}
	out := p.method.Call(args)
	if errV := out[1]; !errV.IsNil() {
		return outcome(nil, nil, errV.Interface().(error))
	}
	data, err := json.Marshal(out[0].Interface())
	if err != nil {
		return outcome(nil, nil, adapterError("cannot encode the result: %v", err))
	}
	var result map[string]any
	if err := json.Unmarshal(data, &result); err != nil {
		return outcome(nil, nil, adapterError("the result is not a JSON object: %v", err))
	}
	return outcome(result, callMeta(meta), nil)
}

func (a *adapter) concurrent(req *protocol.ConcurrentRequest) (*protocol.ConcurrentResult, error) {
	if req.Count < 1 || req.Count > 256 {
		return nil, adapterError("count must be from 1 to 256")
	}
	p, err := a.prepare(req.RPC, req.Request, req.CallOptions)
	if err != nil {
		return nil, err
	}
	results := make([]*protocol.CallOutcome, req.Count)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			results[i] = p.run()
		}(i)
	}
	close(start)
	wg.Wait()
	return &protocol.ConcurrentResult{Results: results}, nil
}
