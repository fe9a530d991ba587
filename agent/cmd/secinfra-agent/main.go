// Command secinfra-agent is the node agent: it attests the node once (join
// token), keeps the node identity on disk and renews it, and serves the
// SPIFFE Workload API on a Unix socket to the workloads of this node that
// registration entries name. See docs/operations/agent.md.
//
//	secinfra-agent -server https://secinfra.internal:8443 -bundle bundle.pem \
//	    -data-dir /var/lib/secinfra-agent -socket /run/secinfra/agent.sock \
//	    -join-token "$TOKEN"    # first start only
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"google.golang.org/grpc"

	secinfra "github.com/secinfra/secinfra/sdk-go"
	"github.com/secinfra/secinfra/sdk-go/identity"

	"github.com/secinfra/secinfra/agent/internal/attest"
	"github.com/secinfra/secinfra/agent/internal/metrics"
	"github.com/secinfra/secinfra/agent/internal/node"
	"github.com/secinfra/secinfra/agent/internal/svids"
	"github.com/secinfra/secinfra/agent/internal/workload"
)

// EnvJoinToken is read when -join-token is not given (keeps it out of ps).
const EnvJoinToken = "SECINFRA_JOIN_TOKEN"

type options struct {
	server, bundle, dataDir, socket, joinToken, healthAddr string
	syncInterval                                           time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.server, "server", "", "the secinfra server's URL (required)")
	flag.StringVar(&o.bundle, "bundle", "", "the server's trust bundle (PEM), needed on the first start")
	flag.StringVar(&o.dataDir, "data-dir", "/var/lib/secinfra-agent", "where the node identity and bundle are kept (0700)")
	flag.StringVar(&o.socket, "socket", "/run/secinfra/agent.sock", "the Workload API socket")
	flag.StringVar(&o.joinToken, "join-token", "", "one-time join token for the first start [$"+EnvJoinToken+"]")
	flag.StringVar(&o.healthAddr, "health-addr", "", "serve /healthz, /readyz and /metrics on this loopback address (e.g. 127.0.0.1:8088); empty: off")
	flag.DurationVar(&o.syncInterval, "sync-interval", svids.DefaultSyncInterval, "how often entries are fetched from the server")
	flag.Parse()
	if o.joinToken == "" {
		o.joinToken = os.Getenv(EnvJoinToken)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, log); err != nil {
		log.Error("secinfra-agent stopped", "error", err.Error())
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, log *slog.Logger) error {
	if o.server == "" {
		return errors.New("secinfra-agent: -server is required")
	}
	var bundle *identity.Bundle
	if o.bundle != "" {
		data, err := os.ReadFile(o.bundle)
		if err != nil {
			return fmt.Errorf("secinfra-agent: -bundle: %w", err)
		}
		if bundle, err = identity.ParseBundle(data); err != nil {
			return fmt.Errorf("secinfra-agent: -bundle: %w", err)
		}
	}
	started := time.Now()
	self, err := node.Open(ctx, o.server, o.dataDir, bundle, o.joinToken, log)
	if err != nil {
		return err
	}
	client, err := secinfra.New(o.server, self)
	if err != nil {
		return err
	}
	defer client.Close()
	counts := &metrics.Agent{}
	manager, err := svids.New(svids.Config{Client: client, Node: self, SyncInterval: o.syncInterval, Log: log, Metrics: counts})
	if err != nil {
		return err
	}
	listener, err := listen(o.socket)
	if err != nil {
		return err
	}
	g := grpc.NewServer(grpc.Creds(attest.PeerCredentials{}))
	(&workload.Server{Source: manager, ProcRoot: "/proc", Log: log, Metrics: counts}).Register(g)
	go self.Run(ctx, client, counts)
	go manager.Run(ctx)
	if o.healthAddr != "" {
		if err := serveHealth(ctx, o.healthAddr, self, manager, counts, log); err != nil {
			return err
		}
	}
	go func() {
		<-ctx.Done()
		g.Stop() // Workload API streams are open for good: do not wait for them
	}()
	log.Info("serving the Workload API", "socket", o.socket, "spiffe_id", self.Snapshot().SpiffeID, "startup_ms", time.Since(started).Milliseconds())
	if err := g.Serve(listener); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	log.Info("secinfra-agent stopped")
	return nil
}

// listen makes the socket: a stale one from an earlier run is removed; the
// socket is world-connectable (0777), since who a caller is comes from its
// peer credentials, never from who could open the socket.
func listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o777); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func serveHealth(ctx context.Context, addr string, self *node.Identity, m *svids.Manager, counts *metrics.Agent, log *slog.Logger) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("secinfra-agent: -health-addr: %w", err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return errors.New("secinfra-agent: -health-addr must be a loopback address (127.0.0.1:PORT)")
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		counts.Write(w)
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		state, _ := m.Current()
		checks := map[string]string{"node_svid": "ok", "entries": "ok"}
		if _, err := self.Current(context.Background()); err != nil {
			checks["node_svid"] = "expired"
		}
		if !state.Synced {
			checks["entries"] = "not_synced"
		}
		code := http.StatusOK
		for _, v := range checks {
			if v != "ok" {
				code = http.StatusServiceUnavailable
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string]any{"checks": checks, "svids": len(state.SVIDs)})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	log.Info("health endpoint listening", "addr", l.Addr().String())
	return nil
}
