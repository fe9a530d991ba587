// Package svids keeps the workload SVIDs of this node: it fetches the node's
// registration entries from the server, makes a key for each entry here (the
// key never leaves the agent except to the workload it is for), gets it
// signed, renews it at half its lifetime and tells every open Workload API
// stream when anything changed. While the server is unreachable it keeps
// serving the SVIDs it has until each expires.
package svids

import (
	"bytes"
	"context"
	"crypto/x509"
	"log/slog"

	"sync"
	"time"

	secinfra "github.com/secinfra/secinfra/sdk-go"
	secinfrav1 "github.com/secinfra/secinfra/sdk-go/gen/secinfrav1"
	"github.com/secinfra/secinfra/sdk-go/identity"

	"github.com/secinfra/secinfra/agent/internal/attest"
	"github.com/secinfra/secinfra/agent/internal/metrics"
	"github.com/secinfra/secinfra/agent/internal/node"
)

// Defaults of Config.
const (
	DefaultSyncInterval = 5 * time.Second
	DefaultTick         = 500 * time.Millisecond
	// RetryAfterFailure is the least time between two signing tries of one entry.
	RetryAfterFailure = time.Second
	// CallTimeout bounds each call to the server (the SDK's retries included),
	// so that one unreachable server does not stall renewals for 30 s.
	CallTimeout = 5 * time.Second
)

// Entry is a registration entry as the agent matches it.
type Entry struct {
	ID, SpiffeID string
	Selectors    []attest.Selector
}

// SVID is one signed workload SVID with its key (DER forms, as the Workload
// API sends them).
type SVID struct {
	EntryID, SpiffeID  string
	ChainDER           []byte // certificates, leaf first, concatenated
	KeyDER             []byte // PKCS#8
	IssuedAt, NotAfter time.Time
	Serial             string
}

// RenewAt is half the SVID's lifetime.
func (s *SVID) RenewAt() time.Time { return s.IssuedAt.Add(s.NotAfter.Sub(s.IssuedAt) / 2) }

// State is what the agent can serve now; immutable.
type State struct {
	// Entries in the server's order (oldest first).
	Entries []Entry
	// SVIDs by entry id (unexpired only).
	SVIDs map[string]*SVID
	// Bundle is the trust bundle; TrustDomain its trust domain's SPIFFE ID.
	Bundle      *identity.Bundle
	TrustDomain string
	// Synced: the entries came from the server at least once.
	Synced bool
}

// Match returns the SVIDs of the entries whose selectors the caller shows,
// in entry order, and whether any entry matched at all.
func (s *State) Match(observed []attest.Selector) (matched bool, out []*SVID) {
	have := make(map[attest.Selector]bool, len(observed))
	for _, sel := range observed {
		have[sel] = true
	}
	for _, e := range s.Entries {
		ok := len(e.Selectors) > 0
		for _, sel := range e.Selectors {
			if !have[sel] {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		matched = true
		if svid := s.SVIDs[e.ID]; svid != nil {
			out = append(out, svid)
		}
	}
	return matched, out
}

// BundleDER is the bundle's CAs, DER, concatenated.
func (s *State) BundleDER() []byte {
	var b bytes.Buffer
	if s.Bundle != nil {
		for _, ca := range s.Bundle.CAs {
			b.Write(ca.Raw)
		}
	}
	return b.Bytes()
}

// Config configures a Manager.
type Config struct {
	Client       *secinfra.Client
	Node         BundleKeeper
	SyncInterval time.Duration
	Log          *slog.Logger
	Metrics      *metrics.Agent
}

// BundleKeeper holds the trust bundle (the node identity keeps it on disk).
type BundleKeeper interface {
	Bundle() *identity.Bundle
	SetBundle(*identity.Bundle) error
}

// Manager keeps State current.
type Manager struct {
	cfg Config

	mu      sync.Mutex
	state   *State
	changed chan struct{}
	failed  map[string]time.Time // entry id -> last failed signing
}

// New returns a Manager; Run starts it.
func New(cfg Config) (*Manager, error) {
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = DefaultSyncInterval
	}
	if cfg.Metrics == nil {
		cfg.Metrics = &metrics.Agent{}
	}
	b := cfg.Node.Bundle()
	td, err := identity.TrustDomainFromBundle(b)
	if err != nil {
		return nil, err
	}
	return &Manager{
		cfg:     cfg,
		state:   &State{SVIDs: map[string]*SVID{}, Bundle: b, TrustDomain: "spiffe://" + td},
		changed: make(chan struct{}),
		failed:  map[string]time.Time{},
	}, nil
}

// Current is the state now and a channel closed at its next change.
func (m *Manager) Current() (*State, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state, m.changed
}

func (m *Manager) publish(next *State) {
	m.cfg.Metrics.Entries.Store(int64(len(next.Entries)))
	m.cfg.Metrics.SVIDs.Store(int64(len(next.SVIDs)))
	m.mu.Lock()
	defer m.mu.Unlock()
	m.state = next
	close(m.changed)
	m.changed = make(chan struct{})
}

// Run syncs entries every SyncInterval, refreshes the bundle at its hint,
// signs and renews SVIDs, and drops expired ones, until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	var nextSync, nextBundle time.Time
	tick := time.NewTicker(DefaultTick)
	defer tick.Stop()
	for {
		now := time.Now()
		cur, _ := m.Current()
		next := *cur
		next.SVIDs = make(map[string]*SVID, len(cur.SVIDs))
		for id, s := range cur.SVIDs {
			next.SVIDs[id] = s
		}
		dirty := false
		if !now.Before(nextBundle) {
			nextBundle = now.Add(m.refreshBundle(ctx, &next, &dirty))
		}
		if !now.Before(nextSync) {
			if m.syncEntries(ctx, &next, &dirty) {
				nextSync = now.Add(m.cfg.SyncInterval)
			} else {
				nextSync = now.Add(RetryAfterFailure)
			}
		}
		m.rotate(ctx, &next, &dirty)
		if dirty {
			m.publish(&next)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (m *Manager) refreshBundle(ctx context.Context, next *State, dirty *bool) time.Duration {
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	wire, err := m.cfg.Client.Identity.GetTrustBundle(ctx, &secinfrav1.GetTrustBundleRequest{})
	if err != nil {
		m.cfg.Log.Warn("bundle refresh failed; serving the bundle held", "error", err.Error())
		return 5 * time.Second
	}
	b, err := identity.BundleFromWire(wire)
	if err != nil {
		m.cfg.Log.Warn("bundle from the server unusable", "error", err.Error())
		return 5 * time.Second
	}
	if next.Bundle == nil || !b.SameCAs(next.Bundle) {
		if err := m.cfg.Node.SetBundle(b); err != nil {
			m.cfg.Log.Warn("could not keep the bundle on disk", "error", err.Error())
		}
		next.Bundle = b
		*dirty = true
		m.cfg.Log.Info("trust bundle updated", "sequence", b.Sequence, "cas", len(b.CAs))
	}
	return max(b.Refresh(), time.Second)
}

func (m *Manager) syncEntries(ctx context.Context, next *State, dirty *bool) bool {
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	answer, err := m.cfg.Client.Entries.ListNodeEntries(ctx, &secinfrav1.ListNodeEntriesRequest{})
	if err != nil {
		m.cfg.Metrics.SyncFailures.Add(1)
		m.cfg.Log.Warn("entry sync failed; serving the entries held", "error", err.Error())
		return false
	}
	entries := make([]Entry, 0, len(answer.Entries))
	for _, e := range answer.Entries {
		sels := make([]attest.Selector, 0, len(e.Selectors))
		for _, s := range e.Selectors {
			sels = append(sels, attest.Selector{Type: s.Type, Value: s.Value})
		}
		entries = append(entries, Entry{ID: e.ID, SpiffeID: e.SpiffeID, Selectors: sels})
	}
	if !next.Synced || !sameEntries(entries, next.Entries) {
		next.Entries = entries
		next.Synced = true
		*dirty = true
		keep := map[string]bool{}
		for _, e := range entries {
			keep[e.ID] = true
		}
		for id := range next.SVIDs {
			if !keep[id] {
				delete(next.SVIDs, id) // entry deleted: stop serving it
			}
		}
		m.cfg.Log.Info("entries synced", "entries", len(entries))
	}
	return true
}

func sameEntries(a, b []Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID || a[i].SpiffeID != b[i].SpiffeID || len(a[i].Selectors) != len(b[i].Selectors) {
			return false
		}
		for j := range a[i].Selectors {
			if a[i].Selectors[j] != b[i].Selectors[j] {
				return false
			}
		}
	}
	return true
}

// rotate signs every entry without an SVID or past half-life, and drops
// expired SVIDs (a server outage longer than their lifetime).
func (m *Manager) rotate(ctx context.Context, next *State, dirty *bool) {
	now := time.Now()
	for id, s := range next.SVIDs {
		if !now.Before(s.NotAfter) {
			delete(next.SVIDs, id)
			*dirty = true
			m.cfg.Log.Warn("workload SVID expired before it could be renewed", "entry_id", id, "spiffe_id", s.SpiffeID)
		}
	}
	for _, e := range next.Entries {
		cur := next.SVIDs[e.ID]
		if cur != nil && now.Before(cur.RenewAt()) {
			continue
		}
		if last, ok := m.failed[e.ID]; ok && now.Sub(last) < RetryAfterFailure {
			continue
		}
		svid, err := m.sign(ctx, e)
		if err != nil {
			m.failed[e.ID] = now
			m.cfg.Metrics.SigningFailures.Add(1)
			m.cfg.Log.Warn("workload SVID signing failed", "entry_id", e.ID, "spiffe_id", e.SpiffeID, "error", err.Error())
			continue
		}
		delete(m.failed, e.ID)
		m.cfg.Metrics.SVIDsSigned.Add(1)
		next.SVIDs[e.ID] = svid
		*dirty = true
		m.cfg.Log.Info("workload SVID signed", "entry_id", e.ID, "spiffe_id", svid.SpiffeID, "serial", svid.Serial, "not_after", svid.NotAfter)
	}
}

func (m *Manager) sign(ctx context.Context, e Entry) (*SVID, error) {
	key, csr, err := node.KeyAndCSR()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	answer, err := m.cfg.Client.Entries.SignWorkloadSvid(ctx, &secinfrav1.SignWorkloadSvidRequest{EntryID: e.ID, CSRPEM: csr})
	if err != nil {
		return nil, err
	}
	snap, err := identity.NewSnapshot([]byte(answer.SVID.CertChainPEM), key, time.Now())
	if err != nil {
		return nil, err
	}
	var chain bytes.Buffer
	for _, c := range snap.Chain {
		chain.Write(c.Raw)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &SVID{
		EntryID:  e.ID,
		SpiffeID: snap.SpiffeID,
		ChainDER: chain.Bytes(),
		KeyDER:   keyDER,
		IssuedAt: snap.IssuedAt,
		NotAfter: snap.NotAfter,
		Serial:   snap.Serial,
	}, nil
}
