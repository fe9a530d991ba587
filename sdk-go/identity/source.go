package identity

import (
	"context"
	"log"
	"slices"
	"sync"
	"time"

	"github.com/secinfra/secinfra/sdk-go/rpc"
)

// Source is where the transport gets identity and trust: it asks on every
// new connection (spec 8.1). StaticSource and Rotating implement it.
type Source interface {
	// ServerID is the SPIFFE ID the server must present.
	ServerID() string
	// Snapshot is the current identity, or nil before enrolment.
	Snapshot() *Snapshot
	// Bundle is the current trust bundle.
	Bundle() *Bundle
	// Current returns a currently valid identity, re-enrolling if the
	// source can, else an rpc.Error of kind KindIdentityExpired.
	Current(ctx context.Context) (*Snapshot, error)
	// RefreshBundle fetches the bundle now (after a verification failure)
	// and reports whether a newer one was installed.
	RefreshBundle(ctx context.Context) (bool, error)
	// Subscribe registers fn for every rotation event.
	Subscribe(fn func(Event))
}

// EventKind is what changed (spec 9.8.2).
type EventKind string

// The event kinds.
const (
	Enrolled      EventKind = "enrolled"
	Renewed       EventKind = "renewed"
	RenewalFailed EventKind = "renewal_failed"
	Expired       EventKind = "expired"
	BundleUpdated EventKind = "bundle_updated"
)

// Event is one rotation event, delivered after the change is installed.
type Event struct {
	// Kind is what changed.
	Kind EventKind
	// Snapshot and Bundle are current after the change (Snapshot may be nil).
	Snapshot *Snapshot
	Bundle   *Bundle
	// Err is set for RenewalFailed and Expired.
	Err error
	// At is when the change happened.
	At time.Time
}

// dispatcher delivers events in order on its own goroutine, so that no
// lock a call needs is held while subscribers run (spec 9.8.5).
type dispatcher struct {
	mu     sync.Mutex
	cond   *sync.Cond
	subs   []func(Event)
	queue  []Event
	closed bool
	done   chan struct{}
}

func newDispatcher() *dispatcher {
	d := &dispatcher{done: make(chan struct{})}
	d.cond = sync.NewCond(&d.mu)
	go d.run()
	return d
}

func (d *dispatcher) subscribe(fn func(Event)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.subs = append(d.subs, fn)
}

func (d *dispatcher) emit(e Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.queue = append(d.queue, e)
	d.cond.Signal()
}

func (d *dispatcher) close() {
	d.mu.Lock()
	d.closed = true
	d.cond.Signal()
	d.mu.Unlock()
	<-d.done
}

func (d *dispatcher) run() {
	defer close(d.done)
	for {
		d.mu.Lock()
		for len(d.queue) == 0 && !d.closed {
			d.cond.Wait()
		}
		if len(d.queue) == 0 && d.closed {
			d.mu.Unlock()
			return
		}
		e := d.queue[0]
		d.queue = d.queue[1:]
		subs := slices.Clone(d.subs)
		d.mu.Unlock()
		for _, fn := range subs {
			deliver(fn, e)
		}
	}
}

func deliver(fn func(Event), e Event) {
	defer func() {
		if r := recover(); r != nil {
			log.Printf("secinfra: identity: a rotation subscriber panicked: %v", r)
		}
	}()
	fn(e)
}

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

func expiredError(msg string, cause error) *rpc.Error {
	return &rpc.Error{Kind: rpc.KindIdentityExpired, Code: rpc.CodeIdentityExpired, Message: msg, Cause: cause}
}
