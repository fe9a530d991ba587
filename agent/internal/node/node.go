// Package node is the agent's own identity: the node SVID it enrols once with
// a join token, keeps on disk and renews with itself, so that a restart needs
// no new token.
//
// The node's key and certificate chain live in one file, node.pem (0600), and
// the trust bundle in bundle.pem; each is written to a temporary file, synced
// and renamed over the old one, so a crash leaves the old pair or the new one,
// never a key with another key's certificate.
package node

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	secinfra "github.com/secinfra/secinfra/sdk-go"
	secinfrav1 "github.com/secinfra/secinfra/sdk-go/gen/secinfrav1"
	"github.com/secinfra/secinfra/sdk-go/identity"

	"github.com/secinfra/secinfra/agent/internal/metrics"
)

const (
	// IdentityFile holds the node's certificate chain and private key.
	IdentityFile = "node.pem"
	// BundleFile holds the trust bundle the agent last fetched (PEM).
	BundleFile = "bundle.pem"
	// RetryMin and RetryMax bound the backoff after a failed renewal.
	RetryMin = time.Second
	RetryMax = 30 * time.Second
	// CallTimeout bounds one renewal call, the SDK's retries included.
	CallTimeout = 10 * time.Second
)

// ErrNoIdentity: no usable node identity on disk and no join token to enrol with.
var ErrNoIdentity = errors.New("secinfra-agent: node: no node identity in the data directory and no join token; create one with 'secinfra join-token create <node SPIFFE ID>'")

// Identity is the node's identity source: the SDK's transport asks it for the
// current node SVID on every handshake (identity.Source).
type Identity struct {
	dir      string
	serverID string
	log      *slog.Logger

	mu       sync.RWMutex
	snapshot *identity.Snapshot
	bundle   *identity.Bundle
}

var _ identity.Source = (*Identity)(nil)

// Open loads the node identity kept in dir, or enrols with joinToken when
// there is none (or it expired). bundle is the trust bundle to start from
// when dir holds none (the operator's copy of the server's bundle).
func Open(ctx context.Context, serverURL, dir string, bundle *identity.Bundle, joinToken string, log *slog.Logger) (*Identity, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("secinfra-agent: node: %w", err)
	}
	if kept, err := os.ReadFile(filepath.Join(dir, BundleFile)); err == nil {
		if b, err := identity.ParseBundle(kept); err == nil {
			bundle = b
		}
	}
	if bundle == nil {
		return nil, errors.New("secinfra-agent: node: no trust bundle: pass -bundle with the server's bundle (secinfra bundle --out FILE)")
	}
	td, err := identity.TrustDomainFromBundle(bundle)
	if err != nil {
		return nil, err
	}
	n := &Identity{dir: dir, serverID: identity.ServerID(td), bundle: bundle, log: log}
	if snap, err := n.load(); err == nil {
		n.snapshot = snap
		log.Info("node identity loaded", "spiffe_id", snap.SpiffeID, "serial", snap.Serial, "not_after", snap.NotAfter)
		return n, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		log.Warn("node identity on disk unusable; enrolling again", "error", err.Error())
	}
	if joinToken == "" {
		return nil, ErrNoIdentity
	}
	if err := n.enrol(ctx, serverURL, joinToken); err != nil {
		return nil, err
	}
	return n, nil
}

func (n *Identity) load() (*identity.Snapshot, error) {
	data, err := os.ReadFile(filepath.Join(n.dir, IdentityFile))
	if err != nil {
		return nil, err
	}
	chain, key := splitPEM(data)
	snap, err := identity.LoadSnapshot(chain, key, time.Now())
	if err != nil {
		return nil, err
	}
	if !time.Now().Before(snap.NotAfter) {
		return nil, fmt.Errorf("secinfra-agent: node: the node SVID expired at %s", snap.NotAfter.Format(time.RFC3339))
	}
	return snap, nil
}

// splitPEM separates the CERTIFICATE blocks from the key block of node.pem.
func splitPEM(data []byte) (chain, key []byte) {
	var c, k bytes.Buffer
	for {
		block, rest := pem.Decode(data)
		if block == nil {
			return c.Bytes(), k.Bytes()
		}
		if block.Type == "CERTIFICATE" {
			_ = pem.Encode(&c, block)
		} else {
			_ = pem.Encode(&k, block)
		}
		data = rest
	}
}

func (n *Identity) enrol(ctx context.Context, serverURL, token string) error {
	anonymous, err := identity.NewStaticSource(nil, n.Bundle(), n.serverID)
	if err != nil {
		return err
	}
	client, err := secinfra.New(serverURL, anonymous)
	if err != nil {
		return err
	}
	defer client.Close()
	key, csr, err := KeyAndCSR()
	if err != nil {
		return err
	}
	answer, err := client.Identity.IssueCertificate(ctx, &secinfrav1.IssueCertificateRequest{CSRPEM: csr, JoinToken: &token})
	if err != nil {
		return fmt.Errorf("secinfra-agent: node: enrolment failed: %w", err)
	}
	snap, err := identity.NewSnapshot([]byte(answer.SVID.CertChainPEM), key, time.Now())
	if err != nil {
		return err
	}
	if err := n.install(snap); err != nil {
		return err
	}
	n.log.Info("node enrolled", "spiffe_id", snap.SpiffeID, "serial", snap.Serial, "not_after", snap.NotAfter)
	return nil
}

// install writes snap to disk (atomically, 0600), then makes it current.
func (n *Identity) install(snap *identity.Snapshot) error {
	key, err := snap.KeyPEM()
	if err != nil {
		return err
	}
	data := append(append([]byte{}, snap.ChainPEM()...), key...)
	if err := WriteFileAtomic(filepath.Join(n.dir, IdentityFile), data, 0o600); err != nil {
		return err
	}
	n.mu.Lock()
	n.snapshot = snap
	n.mu.Unlock()
	return nil
}

// SetBundle installs a newer trust bundle and keeps it on disk.
func (n *Identity) SetBundle(b *identity.Bundle) error {
	if err := WriteFileAtomic(filepath.Join(n.dir, BundleFile), b.PEM(), 0o644); err != nil {
		return err
	}
	n.mu.Lock()
	n.bundle = b
	n.mu.Unlock()
	return nil
}

// ServerID is the SPIFFE ID the server must present.
func (n *Identity) ServerID() string { return n.serverID }

// Snapshot is the current node SVID.
func (n *Identity) Snapshot() *identity.Snapshot {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.snapshot
}

// Bundle is the current trust bundle.
func (n *Identity) Bundle() *identity.Bundle {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.bundle
}

// Current returns the node SVID while it is valid.
func (n *Identity) Current(context.Context) (*identity.Snapshot, error) {
	snap := n.Snapshot()
	if snap == nil || !time.Now().Before(snap.NotAfter) {
		return nil, errors.New("secinfra-agent: node: the node SVID expired; the node must be attested again (join token)")
	}
	return snap, nil
}

// RefreshBundle is done by the agent's bundle loop (Run), not on demand.
func (n *Identity) RefreshBundle(context.Context) (bool, error) { return false, nil }

// Subscribe: the agent needs no rotation events of its own identity.
func (n *Identity) Subscribe(func(identity.Event)) {}

// RenewAt is when the node SVID should be renewed: at half its lifetime.
func RenewAt(s *identity.Snapshot) time.Time {
	return s.IssuedAt.Add(s.NotAfter.Sub(s.IssuedAt) / 2)
}

// Run renews the node SVID at half-life with the SVID itself (mTLS), and
// retries with backoff (never past a third of the time left) until it expires. A revoked node gets
// unauthenticated: it keeps trying (an admin may lift the revocation) and
// says so in the log.
func (n *Identity) Run(ctx context.Context, client *secinfra.Client, m *metrics.Agent) {
	m.NodeSVIDNotAfter.Store(n.Snapshot().NotAfter.Unix())
	delay := RetryMin
	for {
		snap := n.Snapshot()
		wait := time.Until(RenewAt(snap))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if err := n.renew(ctx, client); err != nil {
			m.NodeRenewFailed.Add(1)
			// Never back off past the expiry: try again at least twice in what is left.
			wait := min(delay, max(time.Until(snap.NotAfter)/3, RetryMin/10))
			n.log.Warn("node renewal failed", "error", err.Error(), "retry_in", wait.String(), "not_after", snap.NotAfter)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			delay = min(2*delay, RetryMax)
			continue
		}
		delay = RetryMin
		m.NodeRenewals.Add(1)
		m.NodeSVIDNotAfter.Store(n.Snapshot().NotAfter.Unix())
	}
}

func (n *Identity) renew(ctx context.Context, client *secinfra.Client) error {
	key, csr, err := KeyAndCSR()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	answer, err := client.Identity.RenewCertificate(ctx, &secinfrav1.RenewCertificateRequest{CSRPEM: csr})
	if err != nil {
		return err
	}
	snap, err := identity.NewSnapshot([]byte(answer.SVID.CertChainPEM), key, time.Now())
	if err != nil {
		return err
	}
	if err := n.install(snap); err != nil {
		return err
	}
	n.log.Info("node SVID renewed", "serial", snap.Serial, "not_after", snap.NotAfter)
	return nil
}

// KeyAndCSR makes a new ECDSA P-256 key in this process and a CSR for it:
// every node and workload SVID the agent asks for has a key of its own.
func KeyAndCSR() (*ecdsa.PrivateKey, string, error) {
	key, err := identity.NewKey()
	if err != nil {
		return nil, "", err
	}
	csr, err := identity.CreateCSR(key)
	if err != nil {
		return nil, "", err
	}
	return key, csr, nil
}

// WriteFileAtomic writes data to a temporary file in path's directory, syncs
// it, renames it over path and syncs the directory.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename: nothing to remove
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
