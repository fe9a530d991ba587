package retry

import (
	"fmt"
	"sync"
)

// Budget defaults (spec 6.6).
const (
	DefaultBudgetCapacity   = 500
	DefaultRetryCost        = 5
	DefaultTimeoutRetryCost = 10
	DefaultSuccessRefund    = 1
)

// Budget is a client's token bucket for retries; safe for concurrent use.
type Budget struct {
	mu          sync.Mutex
	tokens      int
	capacity    int
	retryCost   int
	timeoutCost int
	refund      int
}

// NewBudget returns a full bucket. Capacity must be at least 1 and costs
// and refund not negative.
func NewBudget(capacity, retryCost, timeoutCost, refund int) (*Budget, error) {
	switch {
	case capacity < 1:
		return nil, fmt.Errorf("secinfra: retry: budget_capacity must be at least 1, got %d", capacity)
	case retryCost < 0:
		return nil, fmt.Errorf("secinfra: retry: retry_cost must not be negative, got %d", retryCost)
	case timeoutCost < 0:
		return nil, fmt.Errorf("secinfra: retry: timeout_retry_cost must not be negative, got %d", timeoutCost)
	case refund < 0:
		return nil, fmt.Errorf("secinfra: retry: success_refund must not be negative, got %d", refund)
	}
	return &Budget{tokens: capacity, capacity: capacity, retryCost: retryCost, timeoutCost: timeoutCost, refund: refund}, nil
}

// Cost is what a retry costs: more after a timed-out attempt.
func (b *Budget) Cost(timedOut bool) int {
	if timedOut {
		return b.timeoutCost
	}
	return b.retryCost
}

// TryAcquire takes cost tokens if the bucket holds them (atomically).
func (b *Budget) TryAcquire(cost int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tokens < cost {
		return false
	}
	b.tokens -= cost
	return true
}

// RecordSuccess adds the refund, never beyond the capacity.
func (b *Budget) RecordSuccess() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tokens = min(b.capacity, b.tokens+b.refund)
}

// Tokens is the tokens left.
func (b *Budget) Tokens() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.tokens
}
