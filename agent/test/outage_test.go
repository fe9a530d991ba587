package agent_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"

	secinfra "github.com/secinfra/secinfra/sdk-go"
	secinfrav1 "github.com/secinfra/secinfra/sdk-go/gen/secinfrav1"
	"github.com/secinfra/secinfra/sdk-go/identity"
	"github.com/secinfra/secinfra/sdk-go/secinfratest"
)

// outageTTL: long enough to ride out the outage below (renewal at 6 s).
const outageTTL = 12 * time.Second

// refServer is a reference server this test can stop and start again on the
// same data directory and port (secinfratest starts a fresh one each time).
type refServer struct {
	dir, port string
	cmd       *exec.Cmd
	done      chan struct{}
}

func (s *refServer) start(t *testing.T) {
	t.Helper()
	args := []string{"serve", "--data-dir", s.dir, "--host", "127.0.0.1", "--port", s.port,
		"--test-hooks", "--leaf-ttl-seconds", strconv.Itoa(int(outageTTL.Seconds()))}
	s.cmd = exec.Command(secinfratest.Executable(), args...)
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.done = make(chan struct{})
	serving := make(chan bool, 1)
	go func() {
		defer close(s.done)
		scan := bufio.NewScanner(stderr)
		scan.Buffer(make([]byte, 64*1024), 1<<20)
		sent := false
		for scan.Scan() {
			var rec struct{ Message string }
			if !sent && json.Unmarshal(scan.Bytes(), &rec) == nil && rec.Message == "serving" {
				serving <- true
				sent = true
			}
		}
		if !sent {
			serving <- false
		}
		s.cmd.Wait()
	}()
	select {
	case ok := <-serving:
		if !ok {
			t.Fatal("reference server exited before serving")
		}
	case <-time.After(secinfratest.StartupTimeout):
		t.Fatal("reference server did not start")
	}
}

func (s *refServer) stop() {
	if s.cmd != nil {
		stopProcess(s.cmd, s.done, 15*time.Second)
	}
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func adminClient(t *testing.T, url, dataDir string) *secinfra.Client {
	t.Helper()
	read := func(name string) []byte {
		data, err := os.ReadFile(filepath.Join(dataDir, "admin", name))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	snap, err := identity.LoadSnapshot(read("cert.pem"), read("key.pem"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := identity.ParseBundle(read("bundle.pem"))
	if err != nil {
		t.Fatal(err)
	}
	source, err := identity.NewStaticSource(snap, bundle, "")
	if err != nil {
		t.Fatal(err)
	}
	client, err := secinfra.New(url, source, secinfra.WithMaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

// TestServerOutageAndRestart: while the server is down the agent keeps
// serving the SVID it holds (past its renewal time); once the server is back
// (same database, same port) the agent renews and the open stream gets the
// new SVID: no update is lost.
func TestServerOutageAndRestart(t *testing.T) {
	exe := secinfratest.Executable()
	if exe == "" {
		t.Fatal("no reference server: set SECINFRA_REFERENCE_SERVER")
	}
	srv := &refServer{dir: t.TempDir(), port: freePort(t)}
	if out, err := exec.Command(exe, "init", "--data-dir", srv.dir, "--host", "127.0.0.1", "--port", srv.port).CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	srv.start(t)
	t.Cleanup(srv.stop)
	url := "https://127.0.0.1:" + srv.port
	admin := adminClient(t, url, srv.dir)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	nodeID := secinfratest.SpiffeID("/node/outage")
	token, err := admin.Identity.CreateJoinToken(ctx, &secinfrav1.CreateJoinTokenRequest{SpiffeID: nodeID})
	if err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	me := secinfratest.SpiffeID("/workload/outage")
	createEntry(t, admin, me, nodeID, fmt.Sprintf("unix:uid:%d", os.Getuid()), "unix:path:"+self)

	dir := t.TempDir()
	bundle := filepath.Join(dir, "bundle.pem")
	if err := os.WriteFile(bundle, mustRead(t, filepath.Join(srv.dir, "admin", "bundle.pem")), 0o644); err != nil {
		t.Fatal(err)
	}
	a, _ := startAgentAt(t, url, dir, bundle, token.Token)
	source, first := openSource(ctx, t, filepath.Join(dir, "agent.sock"), a)
	sock := "unix://" + filepath.Join(dir, "agent.sock")
	serial := first.Certificates[0].SerialNumber
	renewAt := time.Now().Add(outageTTL / 2)

	srv.stop()
	// Past the renewal time, the server still down: the agent serves what it holds.
	time.Sleep(time.Until(renewAt) + time.Second)
	held, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(sock))
	if err != nil {
		t.Fatalf("during the outage: %v\n%s", err, a.logs)
	}
	if held.Certificates[0].SerialNumber.Cmp(serial) != 0 {
		t.Fatal("a new SVID during the outage: the server was not down")
	}
	if !strings.Contains(a.logs.String(), "workload SVID signing failed") {
		t.Fatalf("the agent did not try to renew during the outage\n%s", a.logs)
	}

	srv.start(t)
	// Before the held SVID expires, the open stream gets the renewed one.
	awaitRotation(t, source, first, time.Until(first.Certificates[0].NotAfter), a)
}

func mustRead(t *testing.T, path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
