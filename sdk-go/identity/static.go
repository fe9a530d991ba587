package identity

import (
	"context"
	"time"
)

// StaticSource is an identity loaded once (files), never renewed (spec 8.8).
type StaticSource struct {
	snapshot *Snapshot
	bundle   *Bundle
	serverID string
	now      func() time.Time
}

// NewStaticSource serves snapshot and bundle; serverID may be empty to
// derive it from the bundle.
func NewStaticSource(snapshot *Snapshot, bundle *Bundle, serverID string) (*StaticSource, error) {
	if serverID == "" {
		td, err := TrustDomainFromBundle(bundle)
		if err != nil {
			return nil, err
		}
		serverID = ServerID(td)
	}
	return &StaticSource{snapshot: snapshot, bundle: bundle, serverID: serverID, now: time.Now}, nil
}

// ServerID implements Source.
func (s *StaticSource) ServerID() string { return s.serverID }

// Snapshot implements Source.
func (s *StaticSource) Snapshot() *Snapshot { return s.snapshot }

// Bundle implements Source.
func (s *StaticSource) Bundle() *Bundle { return s.bundle }

// Current implements Source: identity_expired once the certificate expired.
func (s *StaticSource) Current(context.Context) (*Snapshot, error) {
	if s.snapshot == nil || !s.now().Before(s.snapshot.NotAfter) {
		return nil, expiredError("secinfra: identity: the static certificate expired; a static identity is never renewed (load a current certificate)", nil)
	}
	return s.snapshot, nil
}

// RefreshBundle implements Source: a static bundle never changes.
func (s *StaticSource) RefreshBundle(context.Context) (bool, error) { return false, nil }

// Subscribe implements Source: a static source has no events.
func (s *StaticSource) Subscribe(func(Event)) {}
