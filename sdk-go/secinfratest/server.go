// Package secinfratest starts the real reference server for tests: in test
// mode, on a free loopback port, with a fresh data directory, and gives
// access to its admin identity, join tokens and the conformance control API
// (docs/conformance/control-api.md).
//
// The server executable is $SECINFRA_REFERENCE_SERVER, else secinfra-server on PATH.
// Without one, Start skips the test, unless SECINFRA_REQUIRE_SERVER=1
// (CI sets it), when it fails.
package secinfratest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	secinfra "github.com/secinfra/secinfra/sdk-go"
	"github.com/secinfra/secinfra/sdk-go/gen/secinfrav1"
	"github.com/secinfra/secinfra/sdk-go/identity"
)

// StartupTimeout bounds init and the server's start.
const StartupTimeout = 60 * time.Second

// TrustDomain is the reference server's default trust domain.
const TrustDomain = "secinfra.local"

// Server is a running reference server.
type Server struct {
	// URL is https://127.0.0.1:<port>.
	URL string
	// DataDir holds the server's data, including admin/.
	DataDir string

	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr []string
	done   chan struct{}
}

// Executable finds the server executable, or "".
func Executable() string {
	if path := os.Getenv("SECINFRA_REFERENCE_SERVER"); path != "" {
		return path
	}
	if path, err := exec.LookPath("secinfra-server"); err == nil {
		return path
	}
	return ""
}

// Start inits a data dir and serves with --test-hooks plus flags (e.g.
// "--leaf-ttl-seconds", "4"). The server is stopped when the test ends.
func Start(t testing.TB, flags ...string) *Server {
	t.Helper()
	exe := Executable()
	if exe == "" {
		if os.Getenv("SECINFRA_REQUIRE_SERVER") == "1" {
			t.Fatal("secinfratest: no reference server: set SECINFRA_REFERENCE_SERVER or put secinfra-server on PATH")
		}
		t.Skip("secinfratest: no reference server (set SECINFRA_REFERENCE_SERVER, or run scripts/ensure-server.sh)")
	}
	dir := t.TempDir()
	common := []string{"--data-dir", dir, "--host", "127.0.0.1", "--port", "0"}
	ctx, cancel := context.WithTimeout(context.Background(), StartupTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, exe, append([]string{"init"}, common...)...).CombinedOutput(); err != nil {
		t.Fatalf("secinfratest: init failed: %v\n%s", err, out)
	}
	args := append(append([]string{"serve"}, common...), "--test-hooks")
	cmd := exec.Command(exe, append(args, flags...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("secinfratest: cannot start %s: %v", exe, err)
	}
	s := &Server{DataDir: dir, cmd: cmd, done: make(chan struct{})}
	ready := make(chan string, 1)
	go s.readLogs(stderr, ready)
	t.Cleanup(s.Stop)
	select {
	case url := <-ready:
		if url == "" {
			t.Fatalf("secinfratest: the server exited:\n%s", s.Logs())
		}
		s.URL = url
	case <-time.After(StartupTimeout):
		t.Fatalf("secinfratest: the server did not start in %s:\n%s", StartupTimeout, s.Logs())
	}
	return s
}

func (s *Server) readLogs(r io.Reader, ready chan<- string) {
	defer close(s.done)
	sent := false
	scanner := bufio.NewScanner(r)
	scanner.Buffer(make([]byte, 64*1024), 1<<20)
	for scanner.Scan() {
		line := scanner.Text()
		s.mu.Lock()
		s.stderr = append(s.stderr, line)
		if len(s.stderr) > 200 {
			s.stderr = s.stderr[1:]
		}
		s.mu.Unlock()
		if !sent && strings.HasPrefix(line, "{") {
			var rec struct {
				Message string `json:"message"`
				URL     string `json:"url"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Message == "serving" && rec.URL != "" {
				ready <- rec.URL
				sent = true
			}
		}
	}
	if !sent {
		ready <- ""
	}
}

// Logs is the tail of the server's log.
func (s *Server) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.stderr, "\n")
}

// Stop terminates the server and waits for it.
func (s *Server) Stop() {
	if s.cmd.Process == nil || s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	waited := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-waited
	}
}

// AdminFile is a file of the admin identity: cert.pem, key.pem or bundle.pem.
func (s *Server) AdminFile(name string) string { return filepath.Join(s.DataDir, "admin", name) }

// BundlePEM is the trust bundle init wrote.
func (s *Server) BundlePEM(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile(s.AdminFile("bundle.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// Admin is a client with the admin identity; closed when the test ends.
func (s *Server) Admin(t testing.TB, opts ...secinfra.Option) *secinfra.Client {
	t.Helper()
	c, err := secinfra.FromFiles(s.URL, s.AdminFile("cert.pem"), s.AdminFile("key.pem"), s.AdminFile("bundle.pem"), opts...)
	if err != nil {
		t.Fatalf("secinfratest: admin client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// SpiffeID is spiffe://secinfra.local/<path>.
func SpiffeID(path string) string {
	return "spiffe://" + TrustDomain + "/" + strings.TrimPrefix(path, "/")
}

// JoinToken creates a one-time join token for spiffeID.
func (s *Server) JoinToken(t testing.TB, spiffeID string) string {
	t.Helper()
	resp, err := s.Admin(t).Identity.CreateJoinToken(context.Background(),
		&secinfrav1.CreateJoinTokenRequest{SpiffeID: spiffeID, TTLSeconds: 600})
	if err != nil {
		t.Fatalf("secinfratest: join token: %v", err)
	}
	return resp.Token
}

// Enrol returns a client enrolled as spiffeID; closed when the test ends.
func (s *Server) Enrol(t testing.TB, spiffeID string, opts ...secinfra.Option) *secinfra.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := secinfra.Enrol(ctx, s.URL, identity.JoinToken(s.JoinToken(t, spiffeID)), s.BundlePEM(t), opts...)
	if err != nil {
		t.Fatalf("secinfratest: enrol: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// StaticIdentity issues an X509-SVID for spiffeID from the server's CA and
// returns it as a static source with the server's current trust bundle: a
// peer for mTLS tests. It enrols as a workload would (a new key made here, a
// CSR, a one-time join token) but is never renewed. Its ChainPEM and KeyPEM
// give the files another SPIFFE library loads.
func (s *Server) StaticIdentity(t testing.TB, spiffeID string) *identity.StaticSource {
	t.Helper()
	key, err := identity.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := identity.CreateCSR(key)
	if err != nil {
		t.Fatal(err)
	}
	token := s.JoinToken(t, spiffeID)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := s.Admin(t)
	issued, err := admin.Identity.IssueCertificate(ctx, &secinfrav1.IssueCertificateRequest{CSRPEM: csr, JoinToken: &token})
	if err != nil {
		t.Fatalf("secinfratest: issue an SVID for %s: %v", spiffeID, err)
	}
	snapshot, err := identity.NewSnapshot([]byte(issued.SVID.CertChainPEM), key, time.Now())
	if err != nil {
		t.Fatalf("secinfratest: the SVID for %s: %v", spiffeID, err)
	}
	source, err := identity.NewStaticSource(snapshot, s.TrustBundle(t), "")
	if err != nil {
		t.Fatal(err)
	}
	return source
}

// TrustBundle is the server's current trust bundle (every CA it trusts now,
// during a CA rotation the old and the new), fetched from it.
func (s *Server) TrustBundle(t testing.TB) *identity.Bundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wire, err := s.Admin(t).Identity.GetTrustBundle(ctx, &secinfrav1.GetTrustBundleRequest{})
	if err != nil {
		t.Fatalf("secinfratest: trust bundle: %v", err)
	}
	bundle, err := identity.BundleFromWire(wire)
	if err != nil {
		t.Fatalf("secinfratest: trust bundle: %v", err)
	}
	return bundle
}

// Grant writes workload:<spiffeID> <relation> <object>.
func (s *Server) Grant(t testing.TB, spiffeID, relation, object string) {
	t.Helper()
	_, err := s.Admin(t).Authz.WriteTuples(context.Background(), &secinfrav1.WriteTuplesRequest{
		Writes: []*secinfrav1.TupleKey{{User: "workload:" + spiffeID, Relation: relation, Object: object}}})
	if err != nil {
		t.Fatalf("secinfratest: grant: %v", err)
	}
}

// PutSecret stores a secret as the admin; returns its version.
func (s *Server) PutSecret(t testing.TB, name string, value []byte) int32 {
	t.Helper()
	v, err := s.Admin(t).Secrets.PutSecret(context.Background(), &secinfrav1.PutSecretRequest{Name: name, Value: value})
	if err != nil {
		t.Fatalf("secinfratest: put secret: %v", err)
	}
	return v.Version
}

// Control calls the test-mode control API with the admin identity and
// decodes the JSON answer into out (if not nil).
func (s *Server) Control(t testing.TB, method, path string, body, out any) {
	t.Helper()
	client := s.controlClient(t)
	defer client.CloseIdleConnections()
	s.control(t, client, method, path, body, out)
}

// RotateCA prepares and activates a new CA now (POST /_test/ca/rotate),
// then reissues the admin identity from it, so that the helpers that call
// the server (Admin, Control, JoinToken...) trust its new serving
// certificate: both calls go over one kept-alive connection, made while
// the admin files still name the old CA. It returns the new bundle's
// sequence.
func (s *Server) RotateCA(t testing.TB) int {
	t.Helper()
	client := s.controlClient(t)
	defer client.CloseIdleConnections()
	var rotated struct {
		BundleSequence int `json:"bundle_sequence"`
	}
	s.control(t, client, http.MethodPost, "/_test/ca/rotate", map[string]any{}, &rotated)
	s.control(t, client, http.MethodPost, "/_test/admin-identity", map[string]any{}, nil)
	return rotated.BundleSequence
}

// controlClient is an HTTP client with the admin identity that verifies
// the server by its chain to bundle.pem and its SPIFFE ID.
func (s *Server) controlClient(t testing.TB) *http.Client {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(s.AdminFile("cert.pem"), s.AdminFile("key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := identity.ParseBundle(s.BundlePEM(t))
	if err != nil {
		t.Fatal(err)
	}
	conf := &tls.Config{
		MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert},
		// Chain to the bundle, no host name (the SDK checks the SPIFFE ID too).
		InsecureSkipVerify: true, //nolint:gosec // verified below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			return identity.VerifyServer(raw, bundle, identity.ServerID(TrustDomain), time.Now())
		},
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: conf}}
}

// control makes one control call with client.
func (s *Server) control(t testing.TB, client *http.Client, method, path string, body, out any) {
	t.Helper()
	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		reader = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, s.URL+path, reader)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("secinfratest: control %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("secinfratest: control %s %s: HTTP %d: %s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("secinfratest: control %s %s: %v", method, path, err)
		}
	}
}

// Step is one scripted response (see the control API).
type Step map[string]any

// Script queues scripted responses for rpc.
func (s *Server) Script(t testing.TB, rpc string, steps ...Step) {
	t.Helper()
	s.Control(t, http.MethodPost, "/_test/scripts", map[string]any{"rpc": rpc, "steps": steps}, nil)
}

// Request is one entry of the server's request log.
type Request struct {
	// Seq orders the log; the other fields are as the control API names them.
	Seq          int               `json:"seq"`
	Method       string            `json:"method"`
	Path         string            `json:"path"`
	RPC          string            `json:"rpc"`
	Headers      map[string]string `json:"headers"`
	ClientSerial *string           `json:"client_serial"`
	Status       int               `json:"status"`
	Received     float64           `json:"received_monotonic"`
}

// Requests lists the server's logged requests for rpc ("" for all).
func (s *Server) Requests(t testing.TB, rpc string) []Request {
	t.Helper()
	path := "/_test/requests"
	if rpc != "" {
		path += "?rpc=" + rpc
	}
	var out struct {
		Requests []Request `json:"requests"`
	}
	s.Control(t, http.MethodGet, path, nil, &out)
	return out.Requests
}

// String names the server.
func (s *Server) String() string { return fmt.Sprintf("secinfratest.Server(%s)", s.URL) }
