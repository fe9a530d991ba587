package cache_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secinfra/secinfra/sdk-go/internal/cache"
)

func TestSingleFlight(t *testing.T) {
	var g cache.SingleFlight[int]
	var calls atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	results := make([]int, 20)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			v, err, _ := g.Do(context.Background(), "k", func() (int, error) {
				calls.Add(1)
				<-release
				return 42, nil
			})
			if err != nil {
				t.Error(err)
			}
			results[i] = v
		}(i)
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if calls.Load() != 1 {
		t.Fatalf("%d runs, want 1", calls.Load())
	}
	for _, v := range results {
		if v != 42 {
			t.Fatalf("a caller got %d", v)
		}
	}
}

func TestSingleFlightWaiterKeepsItsDeadline(t *testing.T) {
	var g cache.SingleFlight[int]
	started := make(chan struct{})
	release := make(chan struct{})
	go g.Do(context.Background(), "k", func() (int, error) { close(started); <-release; return 1, nil })
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err, shared := g.Do(ctx, "k", func() (int, error) { return 2, nil })
	close(release)
	if !shared || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a waiter must end by its own deadline: %v shared=%v", err, shared)
	}
}
