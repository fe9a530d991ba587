// Package e2e tests secinfra-proxy as it runs: the built binary, a real
// reference server (secinfratest) for identities, checks and the CRL, and
// real upstreams on loopback TCP and a Unix socket.
package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/coder/websocket"
	"github.com/secinfra/secinfra/sdk-go/gen/secinfrav1"
	"github.com/secinfra/secinfra/sdk-go/identity"
	"github.com/secinfra/secinfra/sdk-go/mtls"
	"github.com/secinfra/secinfra/sdk-go/secinfratest"
)

// binary is the secinfra-proxy built once for the package's tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "secinfra-proxy-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "secinfra-proxy")
	build := exec.Command("go", "build", "-o", binary, "../cmd/secinfra-proxy")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building secinfra-proxy:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proxyID is the SPIFFE ID every test proxy is enrolled as.
var proxyID = secinfratest.SpiffeID("proxy/dashboards")

// upstream is a real HTTP server that answers what it received: the path,
// the headers and the protocol; /ws/ echoes WebSocket messages.
type upstream struct {
	URL    string // http://127.0.0.1:port (HTTP/1.1 and h2c)
	Socket string // a Unix socket serving the same handler
}

// seen is what the upstream answers.
type seen struct {
	Path    string      `json:"path"`
	Host    string      `json:"host"`
	Proto   string      `json:"proto"`
	Header  http.Header `json:"header"`
	Body    int         `json:"body"`
	Network string      `json:"network"`
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	handler := func(network string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/ws/") {
				c, err := websocket.Accept(w, r, nil)
				if err != nil {
					return
				}
				defer c.CloseNow()
				for {
					typ, msg, err := c.Read(r.Context())
					if err != nil {
						return
					}
					if err := c.Write(r.Context(), typ, append([]byte("echo: "), msg...)); err != nil {
						return
					}
				}
			}
			if strings.HasSuffix(r.URL.Path, "/slow") {
				time.Sleep(1500 * time.Millisecond) // past the test proxy's upstream_header timeout
			}
			n, _ := io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(seen{Path: r.URL.Path, Host: r.Host, Proto: r.Proto, Header: r.Header, Body: int(n), Network: network})
		})
	}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	serve := func(ln net.Listener, network string) {
		srv := &http.Server{Handler: handler(network), Protocols: protocols, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(shortTempDir(t), "up.sock")
	unix, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	serve(tcp, "tcp")
	serve(unix, "unix")
	return &upstream{URL: "http://" + tcp.Addr().String(), Socket: socket}
}

// shortTempDir is a temp dir with a short path: a Unix socket path is
// limited to about 100 bytes, and t.TempDir's can be longer.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// proxyProcess is a running secinfra-proxy.
type proxyProcess struct {
	URL    string // https://127.0.0.1:port
	Admin  string // http://127.0.0.1:port
	Config string // the file it was started with

	cmd    *exec.Cmd
	mu     sync.Mutex
	stdout bytes.Buffer
	stderr []string
}

// Stdout is the access log so far.
func (p *proxyProcess) Stdout() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdout.String()
}

// Logs is the operations log so far.
func (p *proxyProcess) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.stderr, "\n")
}

type lockedWriter struct{ p *proxyProcess }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.stdout.Write(b)
}

// configTemplate is the test configuration; fields come from params.
const configTemplate = `
server: {{.Server}}
trust_bundle_file: bundle.pem
identity:
  spiffe_id: {{.ProxyID}}
  join_token_file: token
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
authz_timeout: 1500ms
revocation_refresh: 500ms
{{.Extra}}upstreams:
  app:
    url: {{.Upstream}}
  app-h2c:
    url: {{.Upstream}}
    protocol: h2c
  app-unix:
    url: unix://{{.Socket}}
routes:
  - name: dashboards
    path: /dashboards/{name}
    methods: [GET]
    upstream: app
    authz:
      relation: viewer
      object: dashboard:{name}
  - name: reports-open
    path: /open/{name}
    upstream: app
    authz:
      relation: viewer
      object: dashboard:{name}
    on_authz_error: allow
  - name: billing-api
    host: billing.internal
    path: /api/{rest...}
    methods: [GET, POST]
    upstream: app-h2c
    allow:
      spiffe_ids: [{{.Billing}}]
    max_body_bytes: 1024
  - name: people
    path: /people/
    upstream: app-unix
    allow:
      path_prefixes: [/user/]
  - name: live
    path: /ws/{room}
    upstream: app
    allow:
      spiffe_ids: [{{.Billing}}]
`

type params struct {
	Server, ProxyID, Upstream, Socket, Billing, Extra string
}

// startProxy writes the configuration (a join token and the bundle beside
// it) and runs the proxy until the test ends.
func startProxy(t *testing.T, srv *secinfratest.Server, up *upstream, extra string) *proxyProcess {
	t.Helper()
	dir := t.TempDir()
	p := params{Server: srv.URL, ProxyID: proxyID, Upstream: up.URL, Socket: up.Socket,
		Billing: secinfratest.SpiffeID("billing"), Extra: extra}
	var cfg bytes.Buffer
	if err := template.Must(template.New("config").Parse(configTemplate)).Execute(&cfg, p); err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), data, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("proxy.yaml", cfg.Bytes(), 0o644)
	write("token", []byte(srv.JoinToken(t, proxyID)), 0o600)
	write("bundle.pem", srv.BundlePEM(t), 0o644)

	proc := &proxyProcess{Config: filepath.Join(dir, "proxy.yaml")}
	proc.cmd = exec.Command(binary, "-config", proc.Config)
	proc.cmd.Stdout = lockedWriter{proc}
	stderr, err := proc.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan [2]string, 1)
	go func() {
		scanner := bufio.NewScanner(stderr)
		sent := false
		for scanner.Scan() {
			line := scanner.Text()
			proc.mu.Lock()
			proc.stderr = append(proc.stderr, line)
			proc.mu.Unlock()
			var rec struct{ Msg, Listen, Admin string }
			if !sent && json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "serving" {
				ready <- [2]string{rec.Listen, rec.Admin}
				sent = true
			}
		}
		if !sent {
			ready <- [2]string{}
		}
	}()
	t.Cleanup(func() { proc.stop(t) })
	select {
	case addrs := <-ready:
		if addrs[0] == "" {
			_ = proc.cmd.Wait()
			t.Fatalf("the proxy exited:\n%s", proc.Logs())
		}
		proc.URL, proc.Admin = "https://"+addrs[0], "http://"+addrs[1]
	case <-time.After(60 * time.Second):
		t.Fatalf("the proxy did not start in 60 s:\n%s", proc.Logs())
	}
	// Serving starts after the first CRL fetch was tried; wait for ready.
	waitUntil(t, 10*time.Second, "the proxy is ready", func() bool {
		resp, err := http.Get(proc.Admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return proc
}

// stop sends SIGTERM and waits for the graceful shutdown.
func (p *proxyProcess) stop(t *testing.T) {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the proxy did not exit cleanly: %v\n%s", err, p.Logs())
		}
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
		t.Errorf("the proxy did not stop within 30 s of SIGTERM")
	}
}

// signal sends sig to the proxy.
func (p *proxyProcess) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// waitUntil polls cond; on a timeout it shows what context gives (the
// proxy's log, say).
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool, context ...func() string) {
	t.Helper()
	for deadline := time.Now().Add(limit); !cond(); time.Sleep(25 * time.Millisecond) {
		if time.Now().After(deadline) {
			var more []string
			for _, c := range context {
				more = append(more, c())
			}
			t.Fatalf("timed out after %s waiting until %s\n%s", limit, what, strings.Join(more, "\n"))
		}
	}
}

// caller is an mTLS client of the proxy with source's identity; it
// accepts only the proxy's SPIFFE ID. http1 limits it to HTTP/1.1
// (WebSockets), else it prefers HTTP/2.
func caller(t *testing.T, source identity.Source, http1 bool) *http.Client {
	t.Helper()
	tr, err := mtls.NewTransport(source, mtls.AuthorizeID(proxyID))
	if err != nil {
		t.Fatal(err)
	}
	if http1 {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetHTTP1(true)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// answer is one response: status, the error envelope's code, and what the
// upstream saw when it was reached.
type answer struct {
	Status int
	Code   string
	Seen   seen
	Header http.Header
	Close  bool // the proxy closes the connection after this answer
}

func do(t *testing.T, client *http.Client, method, url string, body io.Reader, header http.Header) (answer, error) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if h := header.Get("Host"); h != "" {
		req.Host = h
	}
	resp, err := client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	a := answer{Status: resp.StatusCode, Header: resp.Header, Close: resp.Close}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(data, &a.Seen); err != nil {
			t.Fatalf("the upstream's answer %q: %v", data, err)
		}
	} else {
		var envelope struct {
			Error struct {
				Code      string `json:"code"`
				RequestID string `json:"request_id"`
			} `json:"error"`
		}
		if err := json.Unmarshal(data, &envelope); err != nil {
			t.Fatalf("HTTP %d without the error envelope: %q", resp.StatusCode, data)
		}
		a.Code = envelope.Error.Code
		if envelope.Error.RequestID == "" || envelope.Error.RequestID != resp.Header.Get("Request-Id") {
			t.Fatalf("the envelope's request_id %q is not the Request-Id header %q", envelope.Error.RequestID, resp.Header.Get("Request-Id"))
		}
	}
	return a, nil
}

func get(t *testing.T, client *http.Client, url string) answer {
	t.Helper()
	a, err := do(t, client, http.MethodGet, url, nil, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return a
}

const dashboardModel = `model
  schema 1.1

type dashboard
  relations
    define viewer: [workload]
`

func writeModel(t *testing.T, srv *secinfratest.Server) {
	t.Helper()
	dsl := dashboardModel
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := srv.Admin(t).Authz.WriteAuthorizationModel(ctx, &secinfrav1.WriteAuthorizationModelRequest{Dsl: &dsl}); err != nil {
		t.Fatalf("write the dashboard model: %v", err)
	}
}
