package identity

import (
	"math/rand/v2"
	"sync"
)

// Random is a uniform [0, 1) source for jitter (renewal times, retry
// delays); tests pass a seeded one (NewSeededRand) to pin schedules.
type Random interface{ Float64() float64 }

type locked struct {
	mu sync.Mutex
	r  *rand.Rand
}

// Float64 draws from [0, 1).
func (l *locked) Float64() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Float64()
}

// lockedRand is a goroutine-safe non-cryptographic jitter source.
func lockedRand() Random {
	return &locked{r: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
}

// NewSeededRand returns a goroutine-safe jitter source seeded for tests.
func NewSeededRand(seed uint64) Random {
	return &locked{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}
