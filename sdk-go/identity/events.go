package identity

import (
	"log"
	"slices"
	"sync"
	"time"
)

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
