// Package server is secinfra-proxy: an mTLS listener with the proxy's own
// rotating SVID, per-request caller checks (expiry, revocation), routes
// that allow a set of callers or ask the authorization service, and
// forwarding to upstreams over TCP or a Unix socket.
//
// One subject per file: proxy.go (start, reload, shutdown), handler.go
// (one request: caller, route, decision), routes.go (the routing table
// and the reverse proxies), headers.go (the identity headers),
// accesslog.go (the buffered access log),
// revocation.go (the CRL), metrics.go (Prometheus), admin.go (health).
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	secinfra "github.com/secinfra/secinfra/sdk-go"
	"github.com/secinfra/secinfra/sdk-go/identity"
	"github.com/secinfra/secinfra/sdk-go/mtls"

	"github.com/secinfra/secinfra/proxy/config"
)

// EnrolTimeout bounds the first enrolment at start.
const EnrolTimeout = 60 * time.Second

// Proxy is one running secinfra-proxy.
type Proxy struct {
	path        string
	trustDomain string
	client      *secinfra.Client
	revocations *revocations
	metrics     *metrics
	table       atomic.Pointer[table]
	config      atomic.Pointer[config.Config]
	log         *slog.Logger // operations, to stderr
	access      *slog.Logger // one line per request, to stdout
	stdErrorLog *log.Logger
}

// Run loads the configuration at path, enrols, serves until ctx ends or
// SIGTERM/SIGINT, reloads the routes on SIGHUP, and shuts down gracefully.
func Run(ctx context.Context, path string, stdout, stderr io.Writer) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	opsHandler := slog.NewJSONHandler(stderr, nil)
	accessOut := newBufferedLog(stdout)
	defer accessOut.close() // after the servers drained: every line is written
	p := &Proxy{
		path: path, trustDomain: cfg.TrustDomain,
		log:         slog.New(opsHandler),
		access:      slog.New(slog.NewJSONHandler(accessOut, nil)),
		stdErrorLog: slog.NewLogLogger(opsHandler, slog.LevelWarn),
	}
	p.metrics = newMetrics(p.gauges)
	if err := p.enrol(ctx, cfg); err != nil {
		return err
	}
	defer p.client.Close()
	t, err := p.buildTable(cfg)
	if err != nil {
		return fmt.Errorf("secinfra-proxy: config %s: %w", path, err)
	}
	p.table.Store(t)
	p.config.Store(cfg)

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	p.revocations = newRevocations(p.client, cfg.RevocationRefresh.D(), p.log)
	if err := p.revocations.refresh(ctx); err != nil {
		p.log.Warn("first crl fetch failed; requests are refused until one succeeds", "error", err.Error())
	}
	go p.revocations.run(ctx)

	tlsConf, err := mtls.ServerConfig(p.client.Source(), mtls.AuthorizeMemberOf(cfg.TrustDomain))
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler: p, TLSConfig: tlsConf, ErrorLog: p.stdErrorLog,
		ReadHeaderTimeout: cfg.Timeouts.ReadHeader.D(), IdleTimeout: cfg.Timeouts.Idle.D(),
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("secinfra-proxy: listen: %w", err)
	}
	adminLn, err := net.Listen("tcp", cfg.AdminListen)
	if err != nil {
		ln.Close()
		return fmt.Errorf("secinfra-proxy: admin listen: %w", err)
	}
	admin := &http.Server{Handler: p.adminHandler(), ReadHeaderTimeout: 5 * time.Second, ErrorLog: p.stdErrorLog}
	served := make(chan error, 2)
	go func() { served <- srv.ServeTLS(ln, "", "") }()
	go func() { served <- admin.Serve(adminLn) }()
	p.log.Info("serving", "listen", ln.Addr().String(), "admin", adminLn.Addr().String(),
		"spiffe_id", p.client.Source().Snapshot().SpiffeID, "routes", len(cfg.Routes))

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var failed error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-hup:
			p.reload()
		case err := <-served:
			failed = fmt.Errorf("secinfra-proxy: serve: %w", err)
			break loop
		}
	}
	grace := p.config.Load().Timeouts.ShutdownGrace.D()
	p.log.Info("shutting down", "grace", grace.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err = errors.Join(srv.Shutdown(shutdownCtx), admin.Shutdown(shutdownCtx))
	p.table.Load().close()
	if failed != nil {
		return failed
	}
	return err
}

// enrol gets the proxy's own rotating SVID.
func (p *Proxy) enrol(ctx context.Context, cfg *config.Config) error {
	bundle, err := os.ReadFile(cfg.TrustBundleFile)
	if err != nil {
		return fmt.Errorf("secinfra-proxy: trust bundle: %w", err)
	}
	var attestation identity.Attestation
	if cfg.Identity.JoinTokenFile != "" {
		token, err := os.ReadFile(cfg.Identity.JoinTokenFile)
		if err != nil {
			return fmt.Errorf("secinfra-proxy: join token: %w", err)
		}
		attestation = identity.JoinToken(strings.TrimSpace(string(token)))
	} else {
		file := cfg.Identity.JWTFile
		attestation = identity.JWTProvider(func(context.Context) (string, error) {
			data, err := os.ReadFile(file)
			return strings.TrimSpace(string(data)), err
		})
	}
	enrolCtx, cancel := context.WithTimeout(ctx, EnrolTimeout)
	defer cancel()
	client, err := secinfra.Enrol(enrolCtx, cfg.Server, attestation, bundle)
	if err != nil {
		return fmt.Errorf("secinfra-proxy: enrol: %w", err)
	}
	if got := client.Source().Snapshot().SpiffeID; got != cfg.Identity.SpiffeID {
		client.Close()
		return fmt.Errorf("secinfra-proxy: enrolled as %s, but identity.spiffe_id says %s", got, cfg.Identity.SpiffeID)
	}
	p.client = client
	client.OnRotation(func(e identity.Event) {
		p.log.Info("identity event", "event", string(e.Kind))
	})
	return nil
}

// reload reads the file again and swaps in its routes, upstreams and
// timeouts of checks; a file that does not load, or that changes what
// only a restart can change, leaves everything as it was.
func (p *Proxy) reload() {
	old := p.config.Load()
	cfg, err := config.Load(p.path)
	if err == nil {
		err = restartOnly(old, cfg)
	}
	var t *table
	if err == nil {
		t, err = p.buildTable(cfg)
	}
	if err != nil {
		p.metrics.reload("failed")
		p.log.Error("config reload refused; the running configuration stays", "error", err.Error())
		return
	}
	previous := p.table.Swap(t)
	p.config.Store(cfg)
	// Requests in flight keep the old table's pools until they end; idle
	// connections go now.
	previous.close()
	p.metrics.reload("ok")
	p.log.Info("config reloaded", "routes", len(cfg.Routes))
}

// restartOnly refuses a reload that changes the listener, the identity or
// the server: those are set up once at start.
func restartOnly(old, cfg *config.Config) error {
	var changed []string
	if old.Server != cfg.Server {
		changed = append(changed, "server")
	}
	if old.TrustBundleFile != cfg.TrustBundleFile {
		changed = append(changed, "trust_bundle_file")
	}
	if !reflect.DeepEqual(old.Identity, cfg.Identity) {
		changed = append(changed, "identity")
	}
	if old.Listen != cfg.Listen {
		changed = append(changed, "listen")
	}
	if old.AdminListen != cfg.AdminListen {
		changed = append(changed, "admin_listen")
	}
	if old.Timeouts.ReadHeader != cfg.Timeouts.ReadHeader || old.Timeouts.Idle != cfg.Timeouts.Idle {
		changed = append(changed, "timeouts.read_header/idle")
	}
	if old.RevocationRefresh != cfg.RevocationRefresh {
		changed = append(changed, "revocation_refresh")
	}
	if len(changed) > 0 {
		return fmt.Errorf("%s changed; only a restart applies %s", strings.Join(changed, ", "), strings.Join(changed, ", "))
	}
	return nil
}
