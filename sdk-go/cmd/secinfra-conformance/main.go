// Command secinfra-conformance is the Go SDK's conformance client: it speaks
// the JSON-lines adapter protocol (docs/conformance/adapter-protocol.md) on
// stdin/stdout for the conformance runner, using only the SDK's public API.
// stdout carries protocol lines only; logs go to stderr.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"reflect"
	"sync"
	"time"

	secinfra "github.com/secinfra/secinfra/sdk-go"
	"github.com/secinfra/secinfra/sdk-go/identity"
	"github.com/secinfra/secinfra/sdk-go/rpc"
)

const protocol = 1

// request is one protocol request.
type request struct {
	ID          json.RawMessage            `json:"id"`
	Op          string                     `json:"op"`
	ServerURL   string                     `json:"server_url"`
	BundlePEM   string                     `json:"bundle_pem"`
	JoinToken   string                     `json:"join_token"`
	JWT         string                     `json:"jwt"`
	Options     map[string]json.RawMessage `json:"options"`
	RPC         string                     `json:"rpc"`
	Request     json.RawMessage            `json:"request"`
	CallOptions map[string]json.RawMessage `json:"call_options"`
	Count       int                        `json:"count"`
}

// protocolError is an Unsupported or AdapterError answer.
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
	events []map[string]any
}

func main() {
	log.SetOutput(os.Stderr)
	out := bufio.NewWriter(os.Stdout)
	var outMu sync.Mutex
	send := func(v any) {
		data, err := json.Marshal(v)
		if err != nil {
			data, _ = json.Marshal(map[string]any{"id": nil, "ok": false,
				"error": map[string]any{"type": "AdapterError", "message": err.Error()}})
		}
		outMu.Lock()
		defer outMu.Unlock()
		out.Write(append(data, '\n'))
		out.Flush()
	}
	send(map[string]any{"hello": map[string]any{"protocol": protocol, "sdk": "go", "sdk_version": secinfra.Version,
		"ops": []string{"configure", "call", "concurrent", "identity", "events", "shutdown"}}})
	a := &adapter{}
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 1<<20), 64<<20)
	for scanner.Scan() {
		line := bytes.TrimSpace(scanner.Bytes())
		if len(line) == 0 {
			continue
		}
		var req request
		if err := json.Unmarshal(line, &req); err != nil {
			send(map[string]any{"id": nil, "ok": false, "error": map[string]any{"type": "AdapterError", "message": err.Error()}})
			continue
		}
		var id any
		_ = json.Unmarshal(req.ID, &id)
		if req.Op == "shutdown" {
			send(map[string]any{"id": id, "ok": true, "result": map[string]any{}})
			break
		}
		answer := a.handle(&req)
		answer["id"] = id
		send(answer)
	}
	if a.client != nil {
		a.client.Close()
	}
}

func (a *adapter) handle(req *request) (answer map[string]any) {
	defer func() {
		if r := recover(); r != nil {
			answer = map[string]any{"ok": false, "error": map[string]any{"type": "AdapterError", "message": fmt.Sprint("panic: ", r)}}
		}
	}()
	var result any
	var meta any
	var err error
	switch req.Op {
	case "configure":
		result, err = a.configure(req)
	case "call":
		return a.call(req)
	case "concurrent":
		result, err = a.concurrent(req)
	case "identity":
		result, err = a.identity()
	case "events":
		a.mu.Lock()
		events := append([]map[string]any{}, a.events...)
		a.mu.Unlock()
		result = map[string]any{"events": events}
	default:
		err = unsupported("op %q", req.Op)
	}
	return outcome(result, meta, err)
}

func outcome(result, meta any, err error) map[string]any {
	if err == nil {
		answer := map[string]any{"ok": true, "result": result}
		if meta != nil {
			answer["meta"] = meta
		}
		return answer
	}
	var pe *protocolError
	if errors.As(err, &pe) {
		return map[string]any{"ok": false, "error": map[string]any{"type": pe.kind, "message": pe.msg}}
	}
	var e *rpc.Error
	if !errors.As(err, &e) {
		return map[string]any{"ok": false, "error": map[string]any{"type": "AdapterError", "message": "not an SDK error: " + err.Error()}}
	}
	return map[string]any{"ok": false, "error": errorJSON(e)}
}

func errorJSON(e *rpc.Error) map[string]any {
	out := map[string]any{
		"type": e.Kind.String(), "code": e.Code, "message": e.Error(), "status": nil,
		"request_id": nil, "retryable": e.Retryable, "retry_after": nil, "attempts": e.Attempts,
	}
	if e.Status != 0 {
		out["status"] = e.Status
	}
	if e.RequestID != "" {
		out["request_id"] = e.RequestID
	}
	if e.HasRetryAfter {
		out["retry_after"] = e.RetryAfter.Seconds()
	}
	return out
}

func seconds(raw json.RawMessage) (time.Duration, error) {
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, adapterError("not a number: %s", raw)
	}
	return time.Duration(f * float64(time.Second)), nil
}

func integer(raw json.RawMessage) (int, error) {
	var n int
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, adapterError("not an integer: %s", raw)
	}
	return n, nil
}

func (a *adapter) configure(req *request) (any, error) {
	if a.client != nil {
		return nil, adapterError("configure was already called")
	}
	var opts []secinfra.Option
	for name, raw := range req.Options {
		if string(raw) == "null" {
			continue
		}
		switch name {
		case "max_attempts":
			n, err := integer(raw)
			if err != nil {
				return nil, err
			}
			opts = append(opts, secinfra.WithMaxAttempts(n))
		case "deadline_seconds":
			d, err := seconds(raw)
			if err != nil {
				return nil, err
			}
			opts = append(opts, secinfra.WithDeadline(d))
		case "attempt_timeout_seconds":
			d, err := seconds(raw)
			if err != nil {
				return nil, err
			}
			opts = append(opts, secinfra.WithAttemptTimeout(d))
		case "cache_size":
			n, err := integer(raw)
			if err != nil {
				return nil, err
			}
			opts = append(opts, secinfra.WithCacheSize(n))
		default:
			return nil, unsupported("client option %q", name)
		}
	}
	if (req.JoinToken == "") == (req.JWT == "") {
		return nil, adapterError("configure takes exactly one of join_token and jwt")
	}
	attestation := identity.JoinToken(req.JoinToken)
	if req.JWT != "" {
		token := req.JWT
		// A provider, not the string: a reusable attestation (spec 8.7.3), so
		// the SDK re-enrols by itself after an expiry (9.7.1).
		attestation = identity.JWTProvider(func(context.Context) (string, error) { return token, nil })
	}
	client, err := secinfra.Enrol(context.Background(), req.ServerURL, attestation, []byte(req.BundlePEM), opts...)
	if err != nil {
		return nil, err
	}
	a.client = client
	client.OnRotation(a.record)
	return a.identity()
}

func (a *adapter) record(e identity.Event) {
	ev := map[string]any{"kind": string(e.Kind), "serial": nil, "spiffe_id": nil, "bundle_sequence": nil,
		"error": nil, "at": float64(e.At.UnixNano()) / 1e9}
	if e.Snapshot != nil {
		ev["serial"], ev["spiffe_id"] = e.Snapshot.Serial, e.Snapshot.SpiffeID
	}
	if e.Bundle != nil {
		ev["bundle_sequence"] = e.Bundle.Sequence
	}
	if e.Err != nil {
		ev["error"] = e.Err.Error()
	}
	a.mu.Lock()
	a.events = append(a.events, ev)
	a.mu.Unlock()
}

func (a *adapter) identity() (any, error) {
	if a.client == nil {
		return nil, adapterError("configure first")
	}
	src := a.client.Source()
	result := map[string]any{"bundle_sequence": src.Bundle().Sequence}
	if s := src.Snapshot(); s != nil {
		result["spiffe_id"] = s.SpiffeID
		result["serial"] = s.Serial
		result["not_after"] = s.NotAfter.UTC().Format(time.RFC3339)
	}
	return result, nil
}

// prepared is a call ready to run any number of times.
type prepared struct {
	method reflect.Value
	req    reflect.Value
	opts   []rpc.CallOption
}

func (a *adapter) prepare(req *request) (*prepared, error) {
	if a.client == nil {
		return nil, adapterError("configure first")
	}
	var method reflect.Value
	for _, svc := range []any{a.client.Secrets, a.client.Authz, a.client.Identity} {
		if m := reflect.ValueOf(svc).MethodByName(req.RPC); m.IsValid() {
			method = m
			break
		}
	}
	if !method.IsValid() || req.RPC == "" {
		return nil, unsupported("rpc %q", req.RPC)
	}
	reqType := method.Type().In(1).Elem()
	value := reflect.New(reqType)
	body := []byte(req.Request)
	if len(bytes.TrimSpace(body)) == 0 || string(body) == "null" {
		body = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(value.Interface()); err != nil {
		return nil, adapterError("request for %s: %v", req.RPC, err)
	}
	opts, err := callOptions(req.CallOptions)
	if err != nil {
		return nil, err
	}
	return &prepared{method: method, req: value, opts: opts}, nil
}

func callOptions(raw map[string]json.RawMessage) ([]rpc.CallOption, error) {
	var opts []rpc.CallOption
	for name, v := range raw {
		if string(v) == "null" {
			continue
		}
		switch name {
		case "max_attempts":
			n, err := integer(v)
			if err != nil {
				return nil, err
			}
			opts = append(opts, rpc.WithMaxAttempts(n))
		case "deadline_seconds":
			d, err := seconds(v)
			if err != nil {
				return nil, err
			}
			opts = append(opts, rpc.WithDeadline(d))
		case "attempt_timeout_seconds":
			d, err := seconds(v)
			if err != nil {
				return nil, err
			}
			opts = append(opts, rpc.WithAttemptTimeout(d))
		case "idempotency_key":
			var key string
			if err := json.Unmarshal(v, &key); err != nil {
				return nil, adapterError("idempotency_key: %v", err)
			}
			opts = append(opts, rpc.WithIdempotencyKey(key))
		case "use_cache":
			var use bool
			if err := json.Unmarshal(v, &use); err != nil {
				return nil, adapterError("use_cache: %v", err)
			}
			opts = append(opts, rpc.WithUseCache(use))
		default:
			return nil, unsupported("call option %q", name)
		}
	}
	return opts, nil
}

// run makes the call once; the protocol's outcome object.
func (p *prepared) run() map[string]any {
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
	m := map[string]any{"from_cache": meta.FromCache, "stale": meta.Stale, "attempts": meta.Attempts,
		"request_id": nil, "status": nil}
	if meta.RequestID != "" {
		m["request_id"] = meta.RequestID
	}
	if meta.Status != 0 {
		m["status"] = meta.Status
	}
	return outcome(json.RawMessage(data), m, nil)
}

func (a *adapter) call(req *request) map[string]any {
	p, err := a.prepare(req)
	if err != nil {
		return outcome(nil, nil, err)
	}
	return p.run()
}

func (a *adapter) concurrent(req *request) (any, error) {
	if req.Count < 1 || req.Count > 256 {
		return nil, adapterError("count must be from 1 to 256")
	}
	p, err := a.prepare(req)
	if err != nil {
		return nil, err
	}
	results := make([]map[string]any, req.Count)
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
	return map[string]any{"results": results}, nil
}
