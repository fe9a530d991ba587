package cache

import (
	"context"
	"sync"
)

// SingleFlight runs one function per key at a time; callers that arrive
// meanwhile wait for its result (spec 7.8), each no longer than its own
// context. Concurrent misses for one cache entry thus make one request. The
// zero value is ready to use.
type SingleFlight[T any] struct {
	mu      sync.Mutex
	flights map[string]*flight[T]
}

type flight[T any] struct {
	done  chan struct{}
	value T
	err   error
}

// Do runs fn for key, or waits for the run in progress. shared reports
// whether the result came from another caller's run. A waiter whose ctx
// ends first gets ctx.Err().
func (g *SingleFlight[T]) Do(ctx context.Context, key string, fn func() (T, error)) (value T, err error, shared bool) {
	g.mu.Lock()
	if g.flights == nil {
		g.flights = map[string]*flight[T]{}
	}
	if f, ok := g.flights[key]; ok {
		g.mu.Unlock()
		select {
		case <-f.done:
			return f.value, f.err, true
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err(), true
		}
	}
	f := &flight[T]{done: make(chan struct{})}
	g.flights[key] = f
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.flights, key)
		g.mu.Unlock()
		close(f.done)
	}()
	f.value, f.err = fn()
	return f.value, f.err, false
}
