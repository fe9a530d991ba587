package retry_test

import (
	"testing"

	"github.com/secinfra/secinfra/sdk-go/internal/retry"
)

func TestBudget(t *testing.T) {
	b, err := retry.NewBudget(12, 5, 10, 1)
	if err != nil {
		t.Fatal(err)
	}
	// The spec's example (6.5): 12 -> 7 -> 2, a third retry refused, a success refunds 1.
	if !b.TryAcquire(b.Cost(false)) || !b.TryAcquire(b.Cost(false)) || b.Tokens() != 2 {
		t.Fatalf("tokens %d, want 2", b.Tokens())
	}
	if b.TryAcquire(b.Cost(false)) || b.Tokens() != 2 {
		t.Fatal("a retry the bucket cannot pay must take nothing")
	}
	b.RecordSuccess()
	if b.Tokens() != 3 {
		t.Fatalf("refund: tokens %d, want 3", b.Tokens())
	}
	if b.Cost(true) != 10 {
		t.Fatal("a retry after a timeout costs timeout_retry_cost")
	}
	for range 100 {
		b.RecordSuccess()
	}
	if b.Tokens() != 12 {
		t.Fatalf("refunds never pass the capacity, got %d", b.Tokens())
	}
	if _, err := retry.NewBudget(0, 5, 10, 1); err == nil {
		t.Fatal("capacity 0 must be rejected")
	}
}

func TestBudgetConcurrentTakesNeverGoNegative(t *testing.T) {
	b, _ := retry.NewBudget(500, 5, 10, 1)
	done := make(chan int)
	for range 50 {
		go func() {
			n := 0
			for b.TryAcquire(5) {
				n++
			}
			done <- n
		}()
	}
	total := 0
	for range 50 {
		total += <-done
	}
	if total != 100 || b.Tokens() != 0 {
		t.Fatalf("took %d retries, %d tokens left; want 100 and 0", total, b.Tokens())
	}
}
