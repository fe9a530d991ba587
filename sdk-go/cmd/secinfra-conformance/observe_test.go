package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/secinfra/secinfra/sdk-go/cmd/secinfra-conformance/protocol"
	"github.com/secinfra/secinfra/sdk-go/secinfratest"
)

// session drives serve with request lines, one answer per line.
type session struct {
	t   *testing.T
	in  *io.PipeWriter
	out *bufio.Scanner
	id  int
}

func start(t *testing.T) *session {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		serve(inR, outW)
		outW.Close()
	}()
	t.Cleanup(func() {
		inW.Close()
		go io.Copy(io.Discard, outR)
		<-done
	})
	s := &session{t: t, in: inW, out: bufio.NewScanner(outR)}
	s.out.Buffer(make([]byte, 1<<20), 16<<20)
	var hello protocol.HelloLine
	s.read(&hello)
	found := false
	for _, f := range hello.Hello.Features {
		found = found || f == protocol.FeatureObserver
	}
	if !found {
		t.Fatalf("the hello declares no observer feature: %+v", hello.Hello)
	}
	return s
}

func (s *session) read(into any) {
	s.t.Helper()
	if !s.out.Scan() {
		s.t.Fatalf("no answer: %v", s.out.Err())
	}
	if err := json.Unmarshal(s.out.Bytes(), into); err != nil {
		s.t.Fatalf("answer %s: %v", s.out.Bytes(), err)
	}
}

// ask sends req (its id and op set here) and decodes the answer.
func (s *session) ask(op string, req map[string]any, into any) {
	s.t.Helper()
	s.id++
	req["id"], req["op"] = s.id, op
	line, _ := json.Marshal(req)
	if _, err := s.in.Write(append(line, '\n')); err != nil {
		s.t.Fatal(err)
	}
	s.read(into)
}

func (s *session) observations() []string {
	s.t.Helper()
	var answer protocol.ObservationsAnswer
	s.ask("observations", map[string]any{}, &answer)
	if !answer.Ok || answer.Result == nil {
		s.t.Fatalf("observations: %+v", answer)
	}
	var lines []string
	for _, o := range answer.Result.Observations {
		line := o.Kind + " " + o.RPC
		for _, f := range []*string{o.Idempotency, o.Cache, o.Code} {
			if f != nil {
				line += " " + *f
			}
		}
		if o.Attempt != nil {
			line += fmt.Sprintf(" #%d", *o.Attempt)
		}
		if o.Status != nil {
			line += fmt.Sprintf(" %d", *o.Status)
		}
		if o.Ok != nil {
			line += fmt.Sprintf(" ok=%v attempts=%d", *o.Ok, o.Meta.Attempts)
		}
		lines = append(lines, line)
	}
	return lines
}

// The conformance client records its observer's notifications from the
// enrolment on, behind an observer that fails at each, and sends the
// configured traceparent with the attempt's number.
func TestObservations(t *testing.T) {
	srv := secinfratest.Start(t)
	s := start(t)
	var configured protocol.IdentityAnswer
	s.ask("configure", map[string]any{
		"server_url": srv.URL, "bundle_pem": string(srv.BundlePEM(t)),
		"join_token": srv.JoinToken(t, secinfratest.SpiffeID("workload/conformance")),
		"observer": map[string]any{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-{attempt}-01",
			"tracestate": "k=v", "failing_first": true},
	}, &configured)
	if !configured.Ok {
		t.Fatalf("configure: %+v", configured.Error)
	}
	enrolment := strings.Join(s.observations(), "\n")
	if !strings.Contains(enrolment, "call_finished secinfra.v1.IdentityService/IssueCertificate ok=true attempts=1") {
		t.Fatalf("the enrolment was not observed:\n%s", enrolment)
	}
	if again := s.observations(); len(again) != 0 {
		t.Fatalf("observations must clear the list, got %v", again)
	}

	srv.Script(t, "GetCallerIdentity", secinfratest.Step{"status": 503})
	var called protocol.CallAnswer
	s.ask("call", map[string]any{"rpc": "GetCallerIdentity", "request": map[string]any{}}, &called)
	if !called.Ok {
		t.Fatalf("call: %+v", called.Error)
	}
	const name = "secinfra.v1.IdentityService/GetCallerIdentity"
	want := []string{
		"call_started " + name + " read_only",
		"attempt_started " + name + " #1", "attempt_finished " + name + " unavailable #1 503",
		"attempt_started " + name + " #2", "attempt_finished " + name + " #2 200",
		"call_finished " + name + " ok=true attempts=2",
	}
	if got := s.observations(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("observations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for i, r := range srv.Requests(t, "GetCallerIdentity") {
		wantTP := fmt.Sprintf("00-4bf92f3577b34da6a3ce929d0e0e4736-%016x-01", i+1)
		var got string
		for k, v := range r.Headers {
			if strings.EqualFold(k, "traceparent") {
				got = v
			}
		}
		if got != wantTP {
			t.Errorf("attempt %d: traceparent %q, want %q", i+1, got, wantTP)
		}
	}
}
