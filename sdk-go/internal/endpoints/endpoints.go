// Package endpoints is which endpoint an attempt goes to (spec 12).
//
// A Set holds the endpoint order (the list rotated to start at the home
// endpoint, chosen at random unless the order is Listed), and per endpoint
// its endpoint failures in a row and when its cooldown ends. An attempt goes
// to the first endpoint of the order that is not cooling down, or, when all
// are, to the one whose last failure is the oldest (12.3). IsFailure says
// which outcomes are endpoint failures (12.4.1).
//
// Whether there is another attempt at all stays retry.Decide's decision: a
// move to another endpoint is an ordinary retry.
package endpoints

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Defaults (spec 12.9).
const (
	// DefaultCooldown is the cooldown after an endpoint's first endpoint
	// failure in a row.
	DefaultCooldown = time.Second
	// DefaultCooldownMax is the longest cooldown.
	DefaultCooldownMax = 30 * time.Second
)

// Order says how the home endpoint is chosen (spec 12.2.2).
type Order int

const (
	// Random: the home endpoint is drawn uniformly from the list (default).
	Random Order = iota
	// Listed: the home endpoint is the first URL given.
	Listed
)

// Config configures a Set.
type Config struct {
	// Order is how the home endpoint is chosen.
	Order Order
	// Cooldown and CooldownMax: the first and the longest cooldown (> 0,
	// CooldownMax >= Cooldown); zero means the default.
	Cooldown, CooldownMax time.Duration
	// Monotonic is the clock cooldowns are measured on (default: the time
	// since the Set was made, which Go measures monotonically).
	Monotonic func() time.Duration
	// Intn draws uniformly from [0, n) to choose the home (required for
	// Random with several URLs).
	Intn func(n int) int
}

// State is one endpoint as the client sees it now (spec 12.8.4).
type State struct {
	// URL as configured, a trailing "/" removed.
	URL string
	// Failures is the endpoint failures in a row (0 after any other outcome).
	Failures int
	// CoolingFor is how long its cooldown still lasts; 0 when it is not cooling down.
	CoolingFor time.Duration
}

type endpoint struct {
	url      string
	failures int
	until    time.Duration // monotonic; cooling down while now < until
	failedAt time.Duration
	failed   bool
}

// Set is a client's endpoints and their cooldowns; safe for concurrent use.
type Set struct {
	cfg       Config
	mu        sync.Mutex
	endpoints []*endpoint
}

// IsFailure says whether an attempt that got status (0: no answer at all)
// is an endpoint failure. A verification failure is never one (12.6.1):
// callers do not record it.
func IsFailure(status int) bool {
	return status == 0 || status == 502 || status == 503 || status == 504
}

// CheckURL refuses an endpoint URL that is not https://host[:port][/path]
// or that carries user-info, and returns it without a trailing "/".
func CheckURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Hostname() == "" {
		return "", fmt.Errorf("secinfra: settings: endpoints: every URL must be https://host[:port], got %q", raw)
	}
	if u.User != nil {
		// Never echo it: the user-info may hold a password.
		return "", errors.New("secinfra: settings: endpoints: a URL must not carry user-info (user:password@); the client authenticates by its certificate")
	}
	return strings.TrimRight(raw, "/"), nil
}

// New checks the URLs and cfg and fixes the endpoint order.
func New(urls []string, cfg Config) (*Set, error) {
	if len(urls) == 0 {
		return nil, errors.New("secinfra: settings: endpoints: give at least one URL")
	}
	seen := map[string]bool{}
	cleaned := make([]string, 0, len(urls))
	for _, raw := range urls {
		u, err := CheckURL(raw)
		if err != nil {
			return nil, err
		}
		if seen[u] {
			return nil, fmt.Errorf("secinfra: settings: endpoints: %q is listed twice", u)
		}
		seen[u] = true
		cleaned = append(cleaned, u)
	}
	if cfg.Cooldown == 0 {
		cfg.Cooldown = DefaultCooldown
	}
	if cfg.CooldownMax == 0 {
		cfg.CooldownMax = max(DefaultCooldownMax, cfg.Cooldown)
	}
	if cfg.Cooldown < 0 || cfg.CooldownMax < 0 {
		return nil, fmt.Errorf("secinfra: settings: endpoint_cooldown and endpoint_cooldown_max must be above 0, got %s and %s", cfg.Cooldown, cfg.CooldownMax)
	}
	if cfg.CooldownMax < cfg.Cooldown {
		return nil, fmt.Errorf("secinfra: settings: endpoint_cooldown_max must be at least endpoint_cooldown (%s < %s)", cfg.CooldownMax, cfg.Cooldown)
	}
	if cfg.Order != Random && cfg.Order != Listed {
		return nil, fmt.Errorf("secinfra: settings: endpoint_order must be Random or Listed, got %d", cfg.Order)
	}
	if cfg.Monotonic == nil {
		start := time.Now()
		cfg.Monotonic = func() time.Duration { return time.Since(start) }
	}
	home := 0
	if cfg.Order == Random && len(cleaned) > 1 {
		if cfg.Intn == nil {
			return nil, errors.New("secinfra: settings: endpoints: a random source is required to choose the home endpoint")
		}
		home = cfg.Intn(len(cleaned))
	}
	s := &Set{cfg: cfg}
	for _, u := range append(cleaned[home:], cleaned[:home]...) {
		s.endpoints = append(s.endpoints, &endpoint{url: u})
	}
	return s, nil
}

// URLs is the endpoint order: the home endpoint first (12.2.1).
func (s *Set) URLs() []string {
	out := make([]string, len(s.endpoints))
	for i, e := range s.endpoints {
		out[i] = e.url
	}
	return out
}

// Choose is the endpoint of the next attempt (12.3.1, 12.3.2).
func (s *Set) Choose() string {
	now := s.cfg.Monotonic()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.endpoints {
		if !e.failed || now >= e.until {
			return e.url
		}
	}
	// All cooling down: the oldest last failure (the first on ties).
	oldest := s.endpoints[0]
	for _, e := range s.endpoints[1:] {
		if e.failedAt < oldest.failedAt {
			oldest = e
		}
	}
	return oldest.url
}

// Record records an attempt's outcome at u: an endpoint failure or not (12.4).
func (s *Set) Record(u string, failed bool) {
	now := s.cfg.Monotonic()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.endpoints {
		if e.url != u {
			continue
		}
		if !failed {
			e.failures, e.failed = 0, false
			return
		}
		e.failures++
		wait := float64(s.cfg.Cooldown) * math.Pow(2, float64(min(e.failures-1, 62)))
		e.failed, e.failedAt = true, now
		e.until = now + time.Duration(min(wait, float64(s.cfg.CooldownMax)))
		return
	}
}

// States is every endpoint's state now, in endpoint order (12.8.4).
func (s *Set) States() []State {
	now := s.cfg.Monotonic()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]State, len(s.endpoints))
	for i, e := range s.endpoints {
		out[i] = State{URL: e.url, Failures: e.failures}
		if e.failed && now < e.until {
			out[i].CoolingFor = e.until - now
		}
	}
	return out
}
