// Package secinfra is the Go client of secinfra: mTLS workload identity
// (enrolment, renewal, CA rotation), secrets and authorization checks.
//
// A Client is created once per process and shared by its goroutines:
//
//	client, err := secinfra.Enrol(ctx, "https://secinfra.internal:8443",
//		identity.JoinToken(token), bundlePEM)
//	if err != nil { ... }
//	defer client.Close()
//	secret, err := client.Secrets.GetSecret(ctx, &secinfrav1.GetSecretRequest{Name: "payments/db/password"})
//
// The private key is generated in process and never leaves it; the client
// renews its certificate before it expires, refreshes the trust bundle,
// retries safely (idempotency keys, backoff with full jitter, Retry-After, a
// retry budget) and caches reads (ETag revalidation, stale-if-error,
// single-flight), as docs/spec describes. Every method takes a
// context.Context; per-call settings are rpc.CallOption values. Errors are
// *rpc.Error values whose family answers errors.Is (see package rpc).
package secinfra

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/secinfra/secinfra/sdk-go/gen/secinfrav1"
	"github.com/secinfra/secinfra/sdk-go/identity"
	"github.com/secinfra/secinfra/sdk-go/internal/cache"
	"github.com/secinfra/secinfra/sdk-go/internal/call"
	"github.com/secinfra/secinfra/sdk-go/internal/endpoints"
	"github.com/secinfra/secinfra/sdk-go/internal/retry"
	"github.com/secinfra/secinfra/sdk-go/internal/rotation"
	"github.com/secinfra/secinfra/sdk-go/internal/transport"
	"github.com/secinfra/secinfra/sdk-go/rpc"
)

// Version is the SDK's release version.
const Version = "0.1.0"

// Defaults of every client setting (docs/spec 1.7).
const (
	DefaultMaxAttempts      = retry.DefaultMaxAttempts
	DefaultBaseBackoff      = retry.DefaultBaseBackoff
	DefaultMaxBackoff       = retry.DefaultMaxBackoff
	DefaultMaxRetryAfter    = retry.DefaultMaxRetryAfter
	DefaultDeadline         = retry.DefaultDeadline
	DefaultAttemptTimeout   = retry.DefaultAttemptTimeout
	DefaultBudgetCapacity   = retry.DefaultBudgetCapacity
	DefaultRetryCost        = retry.DefaultRetryCost
	DefaultTimeoutRetryCost = retry.DefaultTimeoutRetryCost
	DefaultSuccessRefund    = retry.DefaultSuccessRefund
	DefaultCacheMaxEntries  = cache.DefaultMaxEntries
	DefaultUseCache         = true

	DefaultRenewalFraction     = rotation.DefaultRenewalFraction
	DefaultRenewalJitter       = rotation.DefaultRenewalJitter
	DefaultRenewalRetryBase    = rotation.DefaultRenewalRetryBase
	DefaultRenewalRetryMax     = rotation.DefaultRenewalRetryMax
	DefaultRenewalExpiryMargin = rotation.DefaultRenewalExpiryMargin
	DefaultReenrolRetry        = rotation.DefaultReenrolRetry
	DefaultBundleRetry         = rotation.DefaultBundleRetry
	DefaultBundleRefreshMin    = rotation.DefaultBundleRefreshMin
	DefaultBundleRefreshMax    = rotation.DefaultBundleRefreshMax

	DefaultEndpointCooldown    = endpoints.DefaultCooldown
	DefaultEndpointCooldownMax = endpoints.DefaultCooldownMax
)

// EndpointOrder says how a client with several endpoints chooses its home
// endpoint (spec 12.2): EndpointsRandom (default) or EndpointsListed.
type EndpointOrder = endpoints.Order

// The endpoint orders.
const (
	// EndpointsRandom: the home endpoint is drawn at random, which spreads
	// a fleet's clients over the replicas.
	EndpointsRandom = endpoints.Random
	// EndpointsListed: the home endpoint is the first URL (the list is in
	// order of preference, e.g. the replica in the client's own zone first).
	EndpointsListed = endpoints.Listed
)

// EndpointState is one endpoint as the client sees it now: its URL, its
// endpoint failures in a row and how long its cooldown still lasts.
type EndpointState = endpoints.State

// UserAgent is sent on every request: secinfra-go/<version> (go/<version>).
func UserAgent() string {
	return fmt.Sprintf("secinfra-go/%s (go/%s)", Version, strings.TrimPrefix(runtime.Version(), "go"))
}

// Client is one secinfra client: one retry budget, one cache, one identity
// source and its connection pools. Safe for concurrent use.
type Client struct {
	// Secrets calls secinfra.v1.SecretsService.
	Secrets *secinfrav1.SecretsClient
	// Authz calls secinfra.v1.AuthzService.
	Authz *secinfrav1.AuthzClient
	// Identity calls secinfra.v1.IdentityService.
	Identity *secinfrav1.IdentityClient
	// Entries calls secinfra.v1.EntriesService (registration entries).
	Entries *secinfrav1.EntriesClient

	transport *transport.Transport
	pipeline  *call.Pipeline
	source    identity.Source
	rotating  *identity.Rotating
	closeOnce sync.Once
}

// Option configures a Client.
type Option func(*settings) error

type settings struct {
	policy      retry.Policy
	capacity    int
	retryCost   int
	timeoutCost int
	refund      int
	cacheSize   int
	useCache    bool
	serverID    string
	now         func() time.Time
	rand        identity.Random
	rotation    rotation.Policy
	fileSink    string
	more        []string // endpoints after the server URL (WithEndpoints)
	endpoints   endpoints.Config
	observers   []rpc.Observer
}

func defaults() *settings {
	return &settings{
		policy: retry.DefaultPolicy(), capacity: DefaultBudgetCapacity, retryCost: DefaultRetryCost,
		timeoutCost: DefaultTimeoutRetryCost, refund: DefaultSuccessRefund, cacheSize: DefaultCacheMaxEntries,
		useCache: DefaultUseCache, now: time.Now, rotation: rotation.DefaultPolicy(),
	}
}

// WithMaxAttempts sets the attempts per call, the first included (>= 1).
func WithMaxAttempts(n int) Option {
	return func(s *settings) error {
		if n < 1 {
			return fmt.Errorf("secinfra: settings: max_attempts must be at least 1, got %d", n)
		}
		s.policy.MaxAttempts = n
		return nil
	}
}

// durationSetting checks d (> 0 when positive, else >= 0) and gives it to set.
func durationSetting(name string, d time.Duration, positive bool, set func(*settings)) Option {
	return func(s *settings) error {
		if err := rpc.ValidateDuration(name, d, positive); err != nil {
			return err
		}
		set(s)
		return nil
	}
}

// WithDeadline bounds each call, every attempt and wait included (> 0).
// rpc.WithDeadline sets it for one call.
func WithDeadline(d time.Duration) Option {
	return durationSetting("deadline", d, true, func(s *settings) { s.policy.Deadline = d })
}

// WithAttemptTimeout bounds each attempt (> 0). rpc.WithAttemptTimeout
// sets it for one call.
func WithAttemptTimeout(d time.Duration) Option {
	return durationSetting("attempt_timeout", d, true, func(s *settings) { s.policy.AttemptTimeout = d })
}

// WithBaseBackoff sets the first retry's backoff ceiling (>= 0).
// rpc.WithBaseBackoff sets it for one call.
func WithBaseBackoff(d time.Duration) Option {
	return durationSetting("base_backoff", d, false, func(s *settings) { s.policy.BaseBackoff = d })
}

// WithMaxBackoff caps the backoff ceiling (>= 0). rpc.WithMaxBackoff sets
// it for one call.
func WithMaxBackoff(d time.Duration) Option {
	return durationSetting("max_backoff", d, false, func(s *settings) { s.policy.MaxBackoff = d })
}

// WithMaxRetryAfter sets the longest Retry-After waited for (>= 0); a
// longer one ends the call with its error at once. rpc.WithMaxRetryAfter
// sets it for one call.
func WithMaxRetryAfter(d time.Duration) Option {
	return durationSetting("max_retry_after", d, false, func(s *settings) { s.policy.MaxRetryAfter = d })
}

// WithRetryBudget sets the retry budget: capacity (>= 1), the cost of a
// retry and of a retry after a timeout, and the refund per success.
func WithRetryBudget(capacity, retryCost, timeoutRetryCost, successRefund int) Option {
	return func(s *settings) error {
		if _, err := retry.NewBudget(capacity, retryCost, timeoutRetryCost, successRefund); err != nil {
			return err
		}
		s.capacity, s.retryCost, s.timeoutCost, s.refund = capacity, retryCost, timeoutRetryCost, successRefund
		return nil
	}
}

// WithCacheSize sets the most entries the response cache holds (>= 1).
func WithCacheSize(n int) Option {
	return func(s *settings) error {
		if n < 1 {
			return fmt.Errorf("secinfra: settings: cache_max_entries must be at least 1, got %d", n)
		}
		s.cacheSize = n
		return nil
	}
}

// WithEndpoints gives the client more endpoints, after the server URL
// passed to New, Enrol or FromFiles: the replicas of one deployment, each
// an https:// URL (spec 12). The client stays on its home endpoint while
// it works and moves an attempt to the next one after a connection
// failure, a timeout, a 502, 503 or 504, within the retry rules and budget.
//
//	secinfra.Enrol(ctx, "https://secinfra-1:8443", token, bundle,
//		secinfra.WithEndpoints("https://secinfra-2:8443", "https://secinfra-3:8443"))
func WithEndpoints(urls ...string) Option {
	return func(s *settings) error {
		for _, u := range urls {
			if _, err := endpoints.CheckURL(u); err != nil {
				return err
			}
		}
		s.more = append(s.more, urls...)
		return nil
	}
}

// WithEndpointOrder sets how the home endpoint is chosen: EndpointsRandom
// (default) or EndpointsListed (the server URL).
func WithEndpointOrder(order EndpointOrder) Option {
	return func(s *settings) error {
		if order != EndpointsRandom && order != EndpointsListed {
			return fmt.Errorf("secinfra: settings: endpoint_order must be EndpointsRandom or EndpointsListed, got %d", order)
		}
		s.endpoints.Order = order
		return nil
	}
}

// WithEndpointCooldown sets how long a failed endpoint is avoided: first
// for cooldown (default 1 s), doubling per endpoint failure in a row up to
// max (default 30 s); both > 0, max >= cooldown.
func WithEndpointCooldown(cooldown, max time.Duration) Option {
	return func(s *settings) error {
		if cooldown <= 0 || max <= 0 || max < cooldown {
			return fmt.Errorf("secinfra: settings: endpoint_cooldown and endpoint_cooldown_max must be above 0 with max >= cooldown, got %s and %s", cooldown, max)
		}
		s.endpoints.Cooldown, s.endpoints.CooldownMax = cooldown, max
		return nil
	}
}

// WithUseCache turns the response cache on or off for every call (a call
// can still say otherwise with rpc.WithUseCache).
func WithUseCache(use bool) Option {
	return func(s *settings) error { s.useCache = use; return nil }
}

// WithServerID sets the SPIFFE ID the server must present, instead of
// deriving spiffe://<trust-domain>/secinfra/server from the bundle.
func WithServerID(id string) Option {
	return func(s *settings) error {
		if _, err := identity.TrustDomainOf(id); err != nil {
			return err
		}
		s.serverID = id
		return nil
	}
}

// WithRand replaces the jitter source (backoff and renewal), e.g. with
// identity.NewSeededRand in tests.
func WithRand(r identity.Random) Option {
	return func(s *settings) error {
		if r == nil {
			return errors.New("secinfra: settings: the random source must not be nil")
		}
		s.rand = r
		return nil
	}
}

// WithClock replaces the wall clock (time.Now) used for certificates,
// HTTP-dates and cache ages.
func WithClock(now func() time.Time) Option {
	return func(s *settings) error {
		if now == nil {
			return errors.New("secinfra: settings: the clock must not be nil")
		}
		s.now = now
		return nil
	}
}

// WithRenewal sets when a rotating client renews its certificate: at
// fraction of the lifetime (in (0, 1), default 0.5), less a uniform draw of
// up to jitter of it (in [0, fraction), default 0.1), retrying a failed
// renewal after uniform(0, min(retryMax, retryBase×2^(k−1))) for the k-th
// failure in a row (both > 0, defaults 1 s and 60 s).
func WithRenewal(fraction, jitter float64, retryBase, retryMax time.Duration) Option {
	return func(s *settings) error {
		p := s.rotation
		p.RenewalFraction, p.RenewalJitter = fraction, jitter
		p.RenewalRetryBase, p.RenewalRetryMax = retryBase, retryMax
		if err := p.Validate(); err != nil {
			return err
		}
		s.rotation = p
		return nil
	}
}

// WithRenewalExpiryMargin sets how long before NotAfter the last renewal
// try is made at the latest (>= 0, default 1 s): renewal needs the current
// certificate to be valid.
func WithRenewalExpiryMargin(d time.Duration) Option {
	return durationSetting("renewal_expiry_margin", d, false, func(s *settings) { s.rotation.RenewalExpiryMargin = d })
}

// WithReenrolRetry sets the interval between re-enrolment tries once the
// certificate expired (> 0, default 30 s); only a reusable attestation
// (identity.JWTProvider) re-enrols.
func WithReenrolRetry(d time.Duration) Option {
	return durationSetting("reenrol_retry", d, true, func(s *settings) { s.rotation.ReenrolRetry = d })
}

// WithBundleRetry sets the most a failed trust-bundle fetch waits to try
// again (> 0, default 30 s; never longer than the refresh interval).
func WithBundleRetry(d time.Duration) Option {
	return durationSetting("bundle_retry", d, true, func(s *settings) { s.rotation.BundleRetry = d })
}

// WithBundleRefreshBounds sets the range the trust bundle's refresh hint is
// clamped to (both > 0, min <= max; defaults 1 s and 86400 s).
func WithBundleRefreshBounds(min, max time.Duration) Option {
	return func(s *settings) error {
		p := s.rotation
		p.BundleRefreshMin, p.BundleRefreshMax = min, max
		if err := p.Validate(); err != nil {
			return err
		}
		s.rotation = p
		return nil
	}
}

// WithFileSink keeps the client's certificate chain, key and trust bundle
// in dir for software that reads PEM files (spec 9.9): cert.pem, key.pem
// (0600) and bundle.pem, replaced atomically after every change. Off by
// default: without it the key never touches the disk.
func WithFileSink(dir string) Option {
	return func(s *settings) error {
		if dir == "" {
			return errors.New("secinfra: settings: the file sink directory must not be empty")
		}
		s.fileSink = dir
		return nil
	}
}

// WithObserver registers an observer of the client's calls (spec 14): it
// is told when each call starts and ends, what the cache answered, and
// when each attempt starts and ends, for the application's calls and the
// client's own (enrolment, renewal, trust-bundle refresh), and it may give
// each attempt W3C trace context to send. Repeat it to register several;
// they are called in the order registered. An observer never changes a
// call: a panic in one is recovered and logged once per observer and kind
// of notification. Without observers the client sends no traceparent.
// See rpc.Observer; the module github.com/secinfra/secinfra/sdk-go/otel
// provides OpenTelemetry tracing and metrics as one.
func WithObserver(o rpc.Observer) Option {
	return func(s *settings) error {
		if o == nil {
			return errors.New("secinfra: settings: the observer must not be nil")
		}
		s.observers = append(s.observers, o)
		return nil
	}
}

func apply(opts []Option) (*settings, error) {
	s := defaults()
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(s); err != nil {
			return nil, err
		}
	}
	if s.rand == nil {
		s.rand = identity.NewSeededRand(rand.Uint64())
	}
	return s, nil
}

// New returns a client that gets its identity and trust from source.
func New(serverURL string, source identity.Source, opts ...Option) (*Client, error) {
	s, err := apply(opts)
	if err != nil {
		return nil, err
	}
	c, err := build(serverURL, source, s)
	if err != nil {
		return nil, err
	}
	return c.attachSink(s)
}

// attachSink starts the file sink the settings ask for, once the client
// has an identity.
func (c *Client) attachSink(s *settings) (*Client, error) {
	if s.fileSink == "" {
		return c, nil
	}
	sink, err := identity.NewFileSink(s.fileSink, c.source)
	if err == nil {
		err = sink.Sync()
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	c.source.Subscribe(sink.Handle)
	return c, nil
}

func build(serverURL string, source identity.Source, s *settings) (*Client, error) {
	budget, err := retry.NewBudget(s.capacity, s.retryCost, s.timeoutCost, s.refund)
	if err != nil {
		return nil, err
	}
	store, err := cache.New(s.cacheSize)
	if err != nil {
		return nil, err
	}
	if err := call.CheckBaseURL(serverURL); err != nil {
		return nil, err
	}
	ecfg := s.endpoints
	ecfg.Intn = func(n int) int { return min(int(s.rand.Float64()*float64(n)), n-1) }
	set, err := endpoints.New(append([]string{serverURL}, s.more...), ecfg)
	if err != nil {
		return nil, err
	}
	t, err := transport.New(transport.Config{Source: source, Now: s.now})
	if err != nil {
		return nil, err
	}
	p, err := call.New(call.Config{
		Endpoints: set, Transport: t, Source: source, Policy: s.policy, Budget: budget, Cache: store,
		UseCache: s.useCache, UserAgent: UserAgent(), Now: s.now, Jitter: s.rand.Float64,
		Observers: s.observers,
	})
	if err != nil {
		t.Close()
		return nil, err
	}
	return &Client{
		Secrets:   secinfrav1.NewSecretsClient(p),
		Authz:     secinfrav1.NewAuthzClient(p),
		Identity:  secinfrav1.NewIdentityClient(p),
		Entries:   secinfrav1.NewEntriesClient(p),
		transport: t,
		pipeline:  p,
		source:    source,
	}, nil
}

// FromFiles returns a client with a static identity read once from PEM
// files (certificate chain, private key, trust bundle), e.g. the admin
// identity. A static identity is never renewed.
func FromFiles(serverURL, certFile, keyFile, bundleFile string, opts ...Option) (*Client, error) {
	s, err := apply(opts)
	if err != nil {
		return nil, err
	}
	chain, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("secinfra: identity: %w", err)
	}
	key, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("secinfra: identity: %w", err)
	}
	bundleData, err := os.ReadFile(bundleFile)
	if err != nil {
		return nil, fmt.Errorf("secinfra: identity: %w", err)
	}
	snap, err := identity.LoadSnapshot(chain, key, s.now())
	if err != nil {
		return nil, err
	}
	bundle, err := identity.ParseBundle(bundleData)
	if err != nil {
		return nil, err
	}
	source, err := identity.NewStaticSource(snap, bundle, s.serverID)
	if err != nil {
		return nil, err
	}
	c, err := build(serverURL, source, s)
	if err != nil {
		return nil, err
	}
	return c.attachSink(s)
}

// Enrol generates a key, enrols with the attestation (identity.JoinToken or
// identity.JWTProvider) and starts rotating. bundle is the initial trust
// bundle (PEM or a SPIFFE bundle document). A failed enrolment returns its
// error and no client.
func Enrol(ctx context.Context, serverURL string, attestation identity.Attestation, bundle []byte, opts ...Option) (*Client, error) {
	s, err := apply(opts)
	if err != nil {
		return nil, err
	}
	initial, err := identity.ParseBundle(bundle)
	if err != nil {
		return nil, err
	}
	rot, err := identity.NewRotating(rotatingConfig(s, initial, attestation))
	if err != nil {
		return nil, err
	}
	c, err := build(serverURL, rot, s)
	if err != nil {
		rot.Close()
		return nil, err
	}
	c.rotating = rot
	if err := rot.Start(ctx, c.Identity); err != nil {
		c.transport.Close()
		c.pipeline.Close()
		return nil, err
	}
	return c.attachSink(s)
}

// rotatingConfig hands the client's rotation settings to the rotating
// source. Its zero values mean "the default", so a jitter or margin set to
// zero travels as the config's "none" (a negative value).
func rotatingConfig(s *settings, bundle *identity.Bundle, attestation identity.Attestation) identity.RotatingConfig {
	p := s.rotation
	cfg := identity.RotatingConfig{
		Bundle: bundle, Attestation: attestation, ServerID: s.serverID, Now: s.now, Rand: s.rand,
		RenewalFraction: p.RenewalFraction, RenewalJitter: p.RenewalJitter,
		RenewalRetryBase: p.RenewalRetryBase, RenewalRetryMax: p.RenewalRetryMax,
		RenewalExpiryMargin: p.RenewalExpiryMargin, ReenrolRetry: p.ReenrolRetry,
		BundleRetry: p.BundleRetry, BundleRefreshMin: p.BundleRefreshMin, BundleRefreshMax: p.BundleRefreshMax,
	}
	if cfg.RenewalJitter == 0 {
		cfg.RenewalJitter = -1
	}
	if cfg.RenewalExpiryMargin == 0 {
		cfg.RenewalExpiryMargin = -1
	}
	return cfg
}

// OnRotation subscribes fn to the client's rotation events (enrolled,
// renewed, renewal_failed, expired, bundle_updated). Events are delivered
// in order on one goroutine; fn may make calls on the client.
func (c *Client) OnRotation(fn func(identity.Event)) { c.source.Subscribe(fn) }

// Source is the client's identity source.
func (c *Client) Source() identity.Source { return c.source }

// Endpoints is every endpoint in the client's order (home first), with its
// endpoint failures in a row and cooldown (spec 12.8.4).
func (c *Client) Endpoints() []EndpointState { return c.pipeline.Endpoints().States() }

// RetryBudgetTokens is the tokens left in the client's retry budget.
func (c *Client) RetryBudgetTokens() int { return c.pipeline.Budget().Tokens() }

// Close stops rotation, closes pooled connections and drops cached values.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		if c.rotating != nil {
			c.rotating.Close()
		}
		c.transport.Close()
		c.pipeline.Close()
	})
	return nil
}
