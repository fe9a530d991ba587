// Package agent_test runs the real secinfra-agent binary against the real
// reference server (test mode, short leaf TTLs) and talks to its socket with
// go-spiffe v2's workloadapi, the client most workloads use, and with a bare
// gRPC client for the error codes. Children run as other uids (root only).
package agent_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	workloadpb "github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	secinfra "github.com/secinfra/secinfra/sdk-go"
	secinfrav1 "github.com/secinfra/secinfra/sdk-go/gen/secinfrav1"
	"github.com/secinfra/secinfra/sdk-go/secinfratest"
)

const (
	// pythonEnv names a Python interpreter with py-spiffe installed.
	pythonEnv = "SECINFRA_AGENT_TEST_PYTHON"
	// childEnv makes the test binary a Workload API client (see TestMain).
	childEnv     = "SECINFRA_AGENT_TEST_CHILD"
	nobody       = 65534
	unregistered = 65533
	leafTTL      = "8" // seconds: the agent rotates at half, 4 s
)

var agentBinary string

func TestMain(m *testing.M) {
	if sock := os.Getenv(childEnv); sock != "" {
		os.Exit(child(sock))
	}
	dir, err := os.MkdirTemp("", "secinfra-agent-bin")
	if err != nil {
		panic(err)
	}
	agentBinary = filepath.Join(dir, "secinfra-agent")
	build := exec.Command("go", "build", "-o", agentBinary, "../cmd/secinfra-agent")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// child fetches one X509-SVID over the socket and prints the SPIFFE ID, or
// the gRPC code of the error, as JSON.
func child(sock string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svid, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr("unix://"+sock))
	out := map[string]string{}
	if err != nil {
		out["code"] = status.Code(err).String()
		out["error"] = err.Error()
	} else {
		out["spiffe_id"] = svid.ID.String()
	}
	json.NewEncoder(os.Stdout).Encode(out)
	return 0
}

// agent is one running secinfra-agent process.
type agent struct {
	cmd    *exec.Cmd
	logs   *syncBuffer
	done   chan struct{}
	health string // host:port of /healthz, /readyz and /metrics
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startAgent runs the agent against srv and waits until it serves the socket.
func startAgent(t *testing.T, srv *secinfratest.Server, dir, bundle, token string) (*agent, time.Duration) {
	t.Helper()
	return startAgentAt(t, srv.URL, dir, bundle, token)
}

// startAgentAt runs the agent against the server at url.
func startAgentAt(t *testing.T, url, dir, bundle, token string) (*agent, time.Duration) {
	t.Helper()
	args := []string{
		"-server", url, "-bundle", bundle, "-data-dir", filepath.Join(dir, "data"),
		"-socket", filepath.Join(dir, "agent.sock"), "-sync-interval", "500ms",
		"-health-addr", "127.0.0.1:0",
	}
	cmd := exec.Command(agentBinary, args...)
	cmd.Env = append(os.Environ(), "SECINFRA_JOIN_TOKEN="+token)
	a := &agent{cmd: cmd, logs: &syncBuffer{}, done: make(chan struct{})}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	serving := make(chan struct{})
	go func() {
		defer close(a.done)
		scan := bufio.NewScanner(stderr)
		once := sync.Once{}
		for scan.Scan() {
			line := scan.Text()
			fmt.Fprintln(a.logs, line)
			var entry struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "health endpoint listening" {
				a.setHealth(entry.Addr)
			}
			if strings.Contains(line, `"msg":"serving the Workload API"`) {
				once.Do(func() { close(serving) })
			}
		}
		cmd.Wait()
	}()
	t.Cleanup(a.stop)
	select {
	case <-serving:
	case <-a.done:
		t.Fatalf("agent exited before serving:\n%s", a.logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("agent did not serve within 30 s:\n%s", a.logs)
	}
	return a, time.Since(started)
}

func (a *agent) setHealth(addr string) {
	a.logs.mu.Lock()
	defer a.logs.mu.Unlock()
	a.health = addr
}

// get fetches path from the health listener.
func (a *agent) get(t *testing.T, path string) (int, string) {
	t.Helper()
	a.logs.mu.Lock()
	addr := a.health
	a.logs.mu.Unlock()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func (a *agent) stop() { stopProcess(a.cmd, a.done, 10*time.Second) }

// stopProcess sends SIGTERM to a process this test started (unless it has
// ended), waits up to grace for done (its log reader's end), then kills it.
func stopProcess(cmd *exec.Cmd, done <-chan struct{}, grace time.Duration) {
	if cmd.ProcessState == nil {
		cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-done:
	case <-time.After(grace):
		cmd.Process.Kill()
		<-done
	}
}

// rssKiB is the agent's resident memory (VmRSS).
func (a *agent) rssKiB(t *testing.T) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", a.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:"))
		}
	}
	return "?"
}

func createEntry(t *testing.T, admin *secinfra.Client, spiffeID, parent string, selectors ...string) {
	t.Helper()
	req := &secinfrav1.CreateEntryRequest{SpiffeID: spiffeID, ParentID: parent}
	for _, s := range selectors {
		typ, value, _ := strings.Cut(s, ":")
		req.Selectors = append(req.Selectors, &secinfrav1.Selector{Type: typ, Value: value})
	}
	if _, err := admin.Entries.CreateEntry(context.Background(), req); err != nil {
		t.Fatalf("create entry %s: %v", spiffeID, err)
	}
}

// world makes dir and its parents below the temporary directory traversable
// by other uids (the temporary directory itself, e.g. /tmp, is left as it is).
func world(t *testing.T, dir string) {
	top := filepath.Clean(os.TempDir())
	for d := filepath.Clean(dir); d != top && strings.HasPrefix(d, top+"/"); d = filepath.Dir(d) {
		info, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, info.Mode().Perm()|0o055); err != nil {
			t.Fatal(err)
		}
	}
}

// runChild runs this test binary as a Workload API client under uid.
func runChild(t *testing.T, bin, sock string, uid uint32) map[string]string {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = []string{childEnv + "=" + sock}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child as uid %d: %v\n%s", uid, err, stderr.String())
	}
	var result map[string]string
	if err := json.Unmarshal(out, &result); err != nil {
		t.Fatalf("child as uid %d printed %q: %v", uid, out, err)
	}
	return result
}

func copyExecutable(t *testing.T, dir string) string {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst := filepath.Join(dir, "client")
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, src); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return dst
}

func TestAgentServesTheWorkloadAPI(t *testing.T) {
	srv := secinfratest.Start(t, "--leaf-ttl-seconds", leafTTL)
	admin := srv.Admin(t)
	nodeID := secinfratest.SpiffeID("/node/test")
	dir := t.TempDir()
	bundle := filepath.Join(dir, "bundle.pem")
	if err := os.WriteFile(bundle, srv.BundlePEM(t), 0o644); err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	me := secinfratest.SpiffeID("/workload/test-runner")
	createEntry(t, admin, me, nodeID, fmt.Sprintf("unix:uid:%d", os.Getuid()), "unix:path:"+self)
	a, firstStart := startAgent(t, srv, dir, bundle, srv.JoinToken(t, nodeID))
	t.Logf("first start (enrolment) to serving: %s", firstStart)
	sock := filepath.Join(dir, "agent.sock")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("x509-source-gets-the-svid-and-sees-a-rotation", func(t *testing.T) {
		source, first := openSource(ctx, t, sock, a)
		if first.ID.String() != me {
			t.Fatalf("SPIFFE ID %s, want %s", first.ID, me)
		}
		if !publicKeysMatch(first.Certificates[0].PublicKey, first.PrivateKey.Public()) {
			t.Fatal("the SVID's key does not match its certificate")
		}
		bundles, err := source.GetX509BundleForTrustDomain(first.ID.TrustDomain())
		if err != nil || len(bundles.X509Authorities()) == 0 {
			t.Fatalf("bundle: %v", err)
		}
		awaitRotation(t, source, first, 15*time.Second, a)
		t.Logf("agent memory after rotation: VmRSS %s", a.rssKiB(t))
	})

	t.Run("py-spiffe-gets-the-svid-and-bundle", func(t *testing.T) {
		python := os.Getenv(pythonEnv)
		if python == "" {
			t.Skipf("%s is not set: nox -s tests-agent sets it to a Python with py-spiffe", pythonEnv)
		}
		// The caller is the interpreter: /proc/<pid>/exe is its real binary.
		exe, err := filepath.EvalSymlinks(python)
		if err != nil {
			t.Fatal(err)
		}
		want := secinfratest.SpiffeID("/workload/py-spiffe")
		createEntry(t, admin, want, nodeID, fmt.Sprintf("unix:uid:%d", os.Getuid()), "unix:path:"+exe)
		var got map[string]any
		for deadline := time.Now().Add(10 * time.Second); ; {
			out, err := exec.Command(python, "py_spiffe_client.py", "unix://"+sock).CombinedOutput()
			if err == nil {
				if err := json.Unmarshal(out, &got); err != nil {
					t.Fatalf("py-spiffe client printed %q: %v", out, err)
				}
				break
			}
			// The agent picks the new entry up at its next sync: denied until then.
			if time.Now().After(deadline) {
				t.Fatalf("py-spiffe client: %v\n%s\n%s", err, out, a.logs)
			}
			time.Sleep(300 * time.Millisecond)
		}
		if got["spiffe_id"] != want || got["key_matches"] != true {
			t.Fatalf("py-spiffe got %v, want %s with a matching key", got, want)
		}
		if domains, _ := got["bundles"].([]any); len(domains) != 1 || domains[0] != secinfratest.TrustDomain {
			t.Fatalf("py-spiffe bundles %v, want [%s]", got["bundles"], secinfratest.TrustDomain)
		}
	})

	t.Run("missing-security-header-is-invalid-argument", func(t *testing.T) {
		conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		client := workloadpb.NewSpiffeWorkloadAPIClient(conn)
		stream, err := client.FetchX509SVID(ctx, &workloadpb.X509SVIDRequest{})
		if err == nil {
			_, err = stream.Recv()
		}
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("without the header: %v, want InvalidArgument", err)
		}
		withHeader := metadata.AppendToOutgoingContext(ctx, "workload.spiffe.io", "true")
		_, err = client.FetchJWTSVID(withHeader, &workloadpb.JWTSVIDRequest{Audience: []string{"x"}})
		if status.Code(err) != codes.Unimplemented {
			t.Fatalf("FetchJWTSVID: %v, want Unimplemented (not in this version)", err)
		}
	})

	t.Run("other-uids-get-their-own-svid-or-permission-denied", func(t *testing.T) {
		if os.Getuid() != 0 {
			t.Skip("needs root to run children under other uids (CI runs as root)")
		}
		other := secinfratest.SpiffeID("/workload/nobody")
		createEntry(t, admin, other, nodeID, fmt.Sprintf("unix:uid:%d", nobody))
		world(t, dir)
		bin := copyExecutable(t, dir)
		var got map[string]string
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
			// The agent picks the new entry up at its next sync.
			if got = runChild(t, bin, sock, nobody); got["spiffe_id"] != "" {
				break
			}
			time.Sleep(300 * time.Millisecond)
		}
		if got["spiffe_id"] != other {
			t.Fatalf("uid %d got %v, want %s\n%s", nobody, got, other, a.logs)
		}
		denied := runChild(t, bin, sock, unregistered)
		if denied["code"] != codes.PermissionDenied.String() {
			t.Fatalf("unregistered uid %d got %v, want PermissionDenied", unregistered, denied)
		}
	})

	parent := t
	t.Run("health-and-metrics", func(t *testing.T) {
		if code, body := a.get(t, "/readyz"); code != http.StatusOK {
			t.Fatalf("/readyz %d %s", code, body)
		}
		_, metrics := a.get(t, "/metrics")
		for _, want := range []string{
			"# TYPE secinfra_agent_svids_signed_total counter",
			`secinfra_agent_workload_calls_total{outcome="invalid_argument"} 1`,
			"# TYPE secinfra_agent_node_svid_not_after_seconds gauge",
		} {
			if !strings.Contains(metrics, want) {
				t.Fatalf("/metrics lacks %q:\n%s", want, metrics)
			}
		}
		if strings.Contains(metrics, "secinfra_agent_svids_signed_total 0\n") {
			t.Fatalf("no SVID counted as signed:\n%s", metrics)
		}
	})

	t.Run("restart-needs-no-token", func(t *testing.T) {
		a.stop()
		info, err := os.Stat(filepath.Join(dir, "data", "node.pem"))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Fatalf("node.pem mode %v, want 0600", info.Mode().Perm())
		}
		// No token this time (the first one is spent anyway).
		restarted := time.Now()
		again, listening := startAgent(parent, srv, dir, bundle, "")
		a = again
		svid, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr("unix://"+sock))
		if err != nil {
			t.Fatalf("after restart: %v\n%s", err, again.logs)
		}
		if svid.ID.String() != me {
			t.Fatalf("after restart: %s", svid.ID)
		}
		t.Logf("restart: socket served after %s, first SVID served after %s; VmRSS %s",
			listening, time.Since(restarted), again.rssKiB(t))
	})

	t.Run("sigkill-mid-rotation-leaves-matching-pairs", func(t *testing.T) {
		// SIGKILL at points spread over a renewal period (node and workload
		// SVIDs renew every 4 s): each time the agent must start again from
		// node.pem without a token (a torn file would need one) and serve an
		// SVID whose key matches its certificate.
		for i := range 3 {
			time.Sleep(time.Duration(700+1100*i) * time.Millisecond)
			a.cmd.Process.Kill()
			<-a.done
			again, _ := startAgent(parent, srv, dir, bundle, "")
			a = again
			svid, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr("unix://"+sock))
			if err != nil {
				t.Fatalf("after SIGKILL %d: %v\n%s", i, err, again.logs)
			}
			if !publicKeysMatch(svid.Certificates[0].PublicKey, svid.PrivateKey.Public()) {
				t.Fatalf("after SIGKILL %d: key and certificate do not match", i)
			}
		}
	})

	t.Run("revoked-node-is-evicted", func(t *testing.T) {
		_, err := admin.Identity.Revoke(ctx, &secinfrav1.RevokeRequest{SpiffeID: &nodeID, Reason: "test eviction"})
		if err != nil {
			t.Fatal(err)
		}
		// The cached SVID is served until it expires, then nothing is: the
		// agent can no longer get one signed.
		deadline := time.Now().Add(20 * time.Second)
		for {
			short, stop := context.WithTimeout(ctx, 2*time.Second)
			_, err := workloadapi.FetchX509SVID(short, workloadapi.WithAddr("unix://"+sock))
			stop()
			if err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("still served 20 s after the node was revoked\n%s", a.logs)
			}
			time.Sleep(500 * time.Millisecond)
		}
		if !strings.Contains(a.logs.String(), "workload SVID signing failed") {
			t.Fatalf("no refused signing in the agent's log\n%s", a.logs)
		}
	})
}

// openSource opens a go-spiffe X509Source on the agent's socket (closed at
// the end of the test) and returns its first SVID.
func openSource(ctx context.Context, t *testing.T, sock string, a *agent) (*workloadapi.X509Source, *x509svid.SVID) {
	t.Helper()
	addr := workloadapi.WithClientOptions(workloadapi.WithAddr("unix://" + sock))
	source, err := workloadapi.NewX509Source(ctx, addr)
	if err != nil {
		t.Fatalf("X509Source: %v\n%s", err, a.logs)
	}
	t.Cleanup(func() { source.Close() })
	first, err := source.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	return source, first
}

// awaitRotation waits up to within for the source to hold an SVID other
// than old, whose key matches its certificate (never a new chain with the
// old key).
func awaitRotation(t *testing.T, source *workloadapi.X509Source, old *x509svid.SVID, within time.Duration, a *agent) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		now, err := source.GetX509SVID()
		if err != nil {
			t.Fatal(err)
		}
		if now.Certificates[0].SerialNumber.Cmp(old.Certificates[0].SerialNumber) != 0 {
			if !publicKeysMatch(now.Certificates[0].PublicKey, now.PrivateKey.Public()) {
				t.Fatal("the new SVID's key does not match its certificate")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new SVID pushed within %s\n%s", within, a.logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func publicKeysMatch(a, b crypto.PublicKey) bool {
	if e, ok := a.(interface{ Equal(crypto.PublicKey) bool }); ok {
		return e.Equal(b)
	}
	return false
}
