package identity

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log"
	"sync"
	"time"

	"github.com/secinfra/secinfra/sdk-go/gen/secinfrav1"
	"github.com/secinfra/secinfra/sdk-go/internal/rotation"
	"github.com/secinfra/secinfra/sdk-go/rpc"
)

// Rotation defaults (spec 9.10, 10.7); internal/rotation holds the rules.
const (
	DefaultRenewalFraction     = rotation.DefaultRenewalFraction
	DefaultRenewalJitter       = rotation.DefaultRenewalJitter
	DefaultRenewalRetryBase    = rotation.DefaultRenewalRetryBase
	DefaultRenewalRetryMax     = rotation.DefaultRenewalRetryMax
	DefaultRenewalExpiryMargin = rotation.DefaultRenewalExpiryMargin
	DefaultReenrolRetry        = rotation.DefaultReenrolRetry
	// DefaultCallTimeout bounds each background call (renew, bundle fetch).
	DefaultCallTimeout = 30 * time.Second
	// minSleep keeps the rotation loop from spinning.
	minSleep = 10 * time.Millisecond
)

// RotatingConfig configures a Rotating source. Zero values take the
// defaults above (as net.Dialer's do, a negative RenewalJitter or
// RenewalExpiryMargin turns it off); Bundle and Attestation are required.
// NewRotating refuses an invalid setting with an error that names it.
type RotatingConfig struct {
	// Bundle is the initial trust bundle (required).
	Bundle *Bundle
	// Attestation is the join token or JWT provider (required).
	Attestation Attestation
	// ServerID overrides the server ID derived from the bundle.
	ServerID string
	// Now is the wall clock (default time.Now); Rand the jitter source.
	Now func() time.Time
	// Rand is the jitter source for renewal times and retry delays.
	Rand Random

	// RenewalFraction: renew at this fraction of the lifetime (0.5)...
	RenewalFraction float64
	// RenewalJitter: ...minus up to this fraction of it (0.1). Negative
	// means none: renew at RenewalFraction exactly.
	RenewalJitter float64
	// RenewalRetryBase and RenewalRetryMax bound the backoff after a failed
	// renewal (1 s, 60 s).
	RenewalRetryBase, RenewalRetryMax time.Duration
	// RenewalExpiryMargin: the last renewal try is this long before
	// NotAfter (1 s). Negative means none: the last try may be at NotAfter.
	RenewalExpiryMargin time.Duration
	// ReenrolRetry is the interval between re-enrolment tries (30 s).
	ReenrolRetry time.Duration
	// BundleRetry is the most a failed bundle fetch waits to try again (30 s).
	BundleRetry time.Duration
	// BundleRefreshMin and BundleRefreshMax clamp the bundle's refresh
	// hint (1 s, 86400 s).
	BundleRefreshMin, BundleRefreshMax time.Duration
	// CallTimeout bounds each background call (renew, bundle); default 30 s.
	CallTimeout time.Duration
}

// Rotating enrols, renews when its rotation settings say (by default at
// half-life minus jitter), refuses a renewed certificate that fails its
// checks (check.go), refreshes the bundle at its hint and re-enrols after
// expiry when the attestation allows. Safe for concurrent use.
type Rotating struct {
	cfg      RotatingConfig
	policy   rotation.Policy
	serverID string
	client   *secinfrav1.IdentityClient
	events   *dispatcher

	mu         sync.Mutex
	snapshot   *Snapshot
	bundle     *Bundle
	renewAt    time.Time
	failures   int
	bundleDue  time.Time
	expiredFor string // serial whose expiry was reported
	joinToken  string

	started    bool
	enrolMu    sync.Mutex
	flight     *reenrolment // the re-enrolment in flight, or the last one (under mu)
	refreshSem chan struct{}
	kick       chan struct{}
	stop       chan struct{}
	done       chan struct{}
	closeOnce  sync.Once
}

type refreshingKey struct{}

// reenrolment is one re-enrolment (spec 9.7.2), run by a goroutine of its
// own under the source's call timeout, never under a caller's deadline, so
// a caller that stops waiting does not cut it short. done is closed when
// snap or err is set.
type reenrolment struct {
	done chan struct{}
	snap *Snapshot
	err  error
}

// NewRotating checks cfg; call Start to enrol.
func NewRotating(cfg RotatingConfig) (*Rotating, error) {
	if cfg.Bundle == nil {
		return nil, errors.New("secinfra: identity: a trust bundle is required")
	}
	if (cfg.Attestation.joinToken == "") == (cfg.Attestation.jwt == nil) {
		return nil, errors.New("secinfra: identity: give exactly one of a join token or a JWT provider")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = lockedRand()
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if err := rpc.ValidateDuration("call_timeout", cfg.CallTimeout, true); err != nil {
		return nil, err
	}
	policy := rotationPolicy(cfg)
	if err := policy.Validate(); err != nil {
		return nil, err
	}
	serverID := cfg.ServerID
	if serverID == "" {
		td, err := TrustDomainFromBundle(cfg.Bundle)
		if err != nil {
			return nil, err
		}
		serverID = ServerID(td)
	}
	return &Rotating{cfg: cfg, policy: policy, serverID: serverID, bundle: cfg.Bundle, joinToken: cfg.Attestation.joinToken,
		events: newDispatcher(), refreshSem: make(chan struct{}, 1), kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}, nil
}

// rotationPolicy lays the config's set values over the defaults.
func rotationPolicy(cfg RotatingConfig) rotation.Policy {
	p := rotation.DefaultPolicy()
	if cfg.RenewalFraction != 0 {
		p.RenewalFraction = cfg.RenewalFraction
	}
	switch {
	case cfg.RenewalJitter < 0:
		p.RenewalJitter = 0
	case cfg.RenewalJitter != 0: // NaN too, which Validate refuses
		p.RenewalJitter = cfg.RenewalJitter
	}
	if cfg.RenewalExpiryMargin < 0 {
		cfg.RenewalExpiryMargin, p.RenewalExpiryMargin = 0, 0
	}
	for _, d := range []struct {
		v    time.Duration
		into *time.Duration
	}{
		{cfg.RenewalRetryBase, &p.RenewalRetryBase}, {cfg.RenewalRetryMax, &p.RenewalRetryMax},
		{cfg.RenewalExpiryMargin, &p.RenewalExpiryMargin}, {cfg.ReenrolRetry, &p.ReenrolRetry},
		{cfg.BundleRetry, &p.BundleRetry}, {cfg.BundleRefreshMin, &p.BundleRefreshMin},
		{cfg.BundleRefreshMax, &p.BundleRefreshMax},
	} {
		if d.v != 0 {
			*d.into = d.v
		}
	}
	return p
}

// Start enrols (returning its error), fetches the bundle, and starts the
// background rotation. client must send through a transport using r.
func (r *Rotating) Start(ctx context.Context, client *secinfrav1.IdentityClient) error {
	r.client = client
	if err := r.enrol(ctx); err != nil {
		r.events.close()
		return err
	}
	if err := r.fetchBundle(ctx); err != nil {
		log.Printf("secinfra: identity: first bundle fetch failed: %v", err)
		r.mu.Lock()
		r.bundleDue = r.cfg.Now().Add(r.policy.BundleRetryDelay(r.bundle.RefreshHint))
		r.mu.Unlock()
	}
	r.started = true
	go r.run()
	return nil
}

// Close stops the rotation and event delivery.
func (r *Rotating) Close() {
	r.closeOnce.Do(func() {
		close(r.stop)
		if r.started {
			select {
			case <-r.done:
			case <-time.After(5 * time.Second):
			}
		}
		r.events.close()
	})
}

// ServerID implements Source.
func (r *Rotating) ServerID() string { return r.serverID }

// Snapshot implements Source.
func (r *Rotating) Snapshot() *Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snapshot
}

// Bundle implements Source.
func (r *Rotating) Bundle() *Bundle {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bundle
}

// Subscribe implements Source.
func (r *Rotating) Subscribe(fn func(Event)) { r.events.subscribe(fn) }

// Current implements Source (spec 9.7). After expiry it starts a
// re-enrolment, or joins the one in flight, and waits for it until ctx
// ends: then it returns ctx's error (wrapped), and the re-enrolment goes
// on. identity_expired only when there is no reusable attestation or the
// re-enrolment failed (9.7.3).
func (r *Rotating) Current(ctx context.Context) (*Snapshot, error) {
	s := r.Snapshot()
	if s != nil && r.cfg.Now().Before(s.NotAfter) {
		return s, nil
	}
	if s != nil {
		r.reportExpired(s)
	}
	if r.cfg.Attestation.jwt == nil {
		return nil, expiredError("secinfra: identity: the certificate expired and could not be renewed; a join token cannot re-enrol (configure a JWT attestation, or enrol again with a new token)", nil)
	}
	f := r.reenrol()
	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("secinfra: identity: the certificate expired and the re-enrolment is still running: %w", ctx.Err())
	}
	if f.err != nil {
		return nil, expiredError("secinfra: identity: the certificate expired and re-enrolment failed: "+f.err.Error(), f.err)
	}
	if !r.cfg.Now().Before(f.snap.NotAfter) {
		return nil, expiredError("secinfra: identity: re-enrolment returned an already expired certificate (is this machine's clock right?)", nil)
	}
	return f.snap, nil
}

// reenrol returns the re-enrolment in flight, or starts one: one at a time
// (spec 9.7.2). A finished one that left a valid certificate is not
// repeated.
func (r *Rotating) reenrol() *reenrolment {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f := r.flight; f != nil {
		select {
		case <-f.done:
		default:
			return f
		}
	}
	f := &reenrolment{done: make(chan struct{})}
	if s := r.snapshot; s != nil && r.cfg.Now().Before(s.NotAfter) {
		f.snap = s
		close(f.done)
		return f
	}
	r.flight = f
	go func() {
		defer close(f.done)
		ctx, cancel := r.callContext()
		defer cancel()
		if f.err = r.enrol(ctx); f.err == nil {
			f.snap = r.Snapshot()
		}
	}()
	return f
}

// RefreshBundle implements Source (spec 10.3): one fetch; true when a
// newer bundle was installed. A fetch that itself fails verification does
// not refresh again.
func (r *Rotating) RefreshBundle(ctx context.Context) (bool, error) {
	if ctx.Value(refreshingKey{}) != nil {
		return false, nil
	}
	before := r.Bundle()
	if err := r.fetchBundle(ctx); err != nil {
		return false, err
	}
	return r.Bundle() != before, nil
}

// install checks a chain the server returned for key (checkNew; current is
// the snapshot a renewal replaces, nil for an enrolment) and installs it as
// one snapshot, scheduling its renewal. A refused chain leaves everything
// as it was.
func (r *Rotating) install(ctx context.Context, chainPEM string, key crypto.Signer, current *Snapshot) (*Snapshot, error) {
	s, err := checkNew(ctx, []byte(chainPEM), key, current, r.Bundle, r.fetchBundle, r.cfg.Now())
	if err != nil {
		return nil, err
	}
	renewAt := r.policy.RenewalTime(s.IssuedAt, s.NotAfter, r.cfg.Rand.Float64())
	r.mu.Lock()
	old := r.snapshot
	r.snapshot = s
	r.renewAt = renewAt
	r.failures = 0
	r.mu.Unlock()
	if old != nil && old.SpiffeID != s.SpiffeID {
		// Only a re-enrolment gets here: its attestation may map to another ID.
		log.Printf("secinfra: identity: SPIFFE ID changed from %s to %s", old.SpiffeID, s.SpiffeID)
	}
	r.wake()
	return s, nil
}

func (r *Rotating) enrol(ctx context.Context) error {
	r.enrolMu.Lock()
	defer r.enrolMu.Unlock()
	return r.enrolLocked(ctx)
}

func (r *Rotating) enrolLocked(ctx context.Context) error {
	key, err := NewKey()
	if err != nil {
		return err
	}
	csr, err := CreateCSR(key)
	if err != nil {
		return err
	}
	req := &secinfrav1.IssueCertificateRequest{CSRPEM: csr}
	r.mu.Lock()
	token := r.joinToken
	r.joinToken = "" // single use (spec 8.7.2)
	r.mu.Unlock()
	if token != "" {
		req.JoinToken = &token
	} else if r.cfg.Attestation.jwt != nil {
		jwt, err := r.cfg.Attestation.jwt(ctx)
		if err != nil {
			return fmt.Errorf("secinfra: identity: the JWT provider failed: %w", err)
		}
		req.JWT = &jwt
	} else {
		return expiredError("secinfra: identity: the join token was already used; enrol again with a new token", nil)
	}
	resp, err := r.client.IssueCertificate(ctx, req)
	if err != nil {
		return err
	}
	if resp.SVID == nil {
		return errors.New("secinfra: identity: the enrolment answer holds no certificate")
	}
	s, err := r.install(ctx, resp.SVID.CertChainPEM, key, nil)
	if err != nil {
		return err
	}
	r.events.emit(Event{Kind: Enrolled, Snapshot: s, Bundle: r.Bundle(), At: r.cfg.Now()})
	return nil
}

// renew replaces current with a renewed certificate for a new key (spec 9.3).
func (r *Rotating) renew(ctx context.Context, current *Snapshot) error {
	key, err := NewKey()
	if err != nil {
		return err
	}
	csr, err := CreateCSR(key)
	if err != nil {
		return err
	}
	resp, err := r.client.RenewCertificate(ctx, &secinfrav1.RenewCertificateRequest{CSRPEM: csr})
	if err != nil {
		return err
	}
	if resp.SVID == nil {
		return errors.New("secinfra: identity: the renewal answer holds no certificate")
	}
	s, err := r.install(ctx, resp.SVID.CertChainPEM, key, current)
	if err != nil {
		return err
	}
	r.events.emit(Event{Kind: Renewed, Snapshot: s, Bundle: r.Bundle(), At: r.cfg.Now()})
	return nil
}

// fetchBundle fetches and installs a newer bundle. The fetch itself never
// triggers another refresh on a verification failure (spec 10.3.2).
func (r *Rotating) fetchBundle(ctx context.Context) error {
	select {
	case r.refreshSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-r.refreshSem }()
	ctx = context.WithValue(ctx, refreshingKey{}, true)
	// Always reaches the server (spec 7.12.2), conditional on the last
	// bundle's ETag when the cache holds it (10.2.2).
	wire, err := r.client.GetTrustBundle(ctx, &secinfrav1.GetTrustBundleRequest{}, rpc.WithRevalidate())
	if err != nil {
		return err
	}
	fetched, err := BundleFromWire(wire)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.bundleDue = r.cfg.Now().Add(r.policy.BundleRefresh(fetched.RefreshHint))
	held := r.bundle
	if fetched.Sequence <= held.Sequence {
		r.mu.Unlock()
		return nil // not newer: unchanged (spec 10.4)
	}
	r.bundle = fetched
	snapshot := r.snapshot
	r.mu.Unlock()
	r.events.emit(Event{Kind: BundleUpdated, Snapshot: snapshot, Bundle: fetched, At: r.cfg.Now()})
	return nil
}

func (r *Rotating) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *Rotating) run() {
	defer close(r.done)
	for {
		wait := r.step()
		if wait < minSleep {
			wait = minSleep
		}
		timer := time.NewTimer(wait)
		select {
		case <-r.stop:
			timer.Stop()
			return
		case <-r.kick:
			timer.Stop()
		case <-timer.C:
		}
	}
}

func (r *Rotating) callContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.CallTimeout)
	go func() {
		select {
		case <-r.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// step does what is due and returns the time until the next thing is.
func (r *Rotating) step() time.Duration {
	now := r.cfg.Now()
	r.mu.Lock()
	s, renewAt, bundleDue := r.snapshot, r.renewAt, r.bundleDue
	r.mu.Unlock()
	switch {
	case s != nil && !now.Before(s.NotAfter):
		r.onExpired(s)
	case s != nil && !renewAt.IsZero() && !now.Before(renewAt):
		r.tryRenew(s)
	}
	if !r.cfg.Now().Before(bundleDue) {
		ctx, cancel := r.callContext()
		err := r.fetchBundle(ctx)
		cancel()
		if err != nil {
			log.Printf("secinfra: identity: bundle refresh failed: %v", err)
			r.mu.Lock()
			r.bundleDue = r.cfg.Now().Add(r.policy.BundleRetryDelay(r.bundle.RefreshHint))
			r.mu.Unlock()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	next := r.bundleDue
	if !r.renewAt.IsZero() && r.renewAt.Before(next) {
		next = r.renewAt
	}
	if r.snapshot != nil && r.expiredFor != r.snapshot.Serial && r.snapshot.NotAfter.Before(next) {
		next = r.snapshot.NotAfter
	}
	return next.Sub(r.cfg.Now())
}

// tryRenew renews s; after a failure (the call failed, or its answer was
// refused) it schedules the next try as rotation says and emits
// renewal_failed, and s stays in use (spec 9.4).
func (r *Rotating) tryRenew(s *Snapshot) {
	ctx, cancel := r.callContext()
	err := r.renew(ctx, s)
	cancel()
	if err == nil {
		return
	}
	now := r.cfg.Now()
	r.mu.Lock()
	r.failures++
	k := r.failures
	if r.snapshot == s { // else a re-enrolment installed another and scheduled it
		r.renewAt = now.Add(r.policy.RetryDelay(k, now, s.NotAfter, r.cfg.Rand.Float64()))
	}
	bundle := r.bundle
	r.mu.Unlock()
	log.Printf("secinfra: identity: renewal failed (%d in a row): %v", k, err)
	r.events.emit(Event{Kind: RenewalFailed, Snapshot: s, Bundle: bundle, Err: err, At: now})
}

func (r *Rotating) onExpired(s *Snapshot) {
	r.reportExpired(s)
	r.mu.Lock()
	if r.cfg.Attestation.jwt != nil {
		r.renewAt = r.cfg.Now().Add(r.policy.ReenrolRetry)
	} else {
		r.renewAt = time.Time{}
	}
	r.mu.Unlock()
	if r.cfg.Attestation.jwt != nil {
		ctx, cancel := r.callContext()
		_, err := r.Current(ctx)
		cancel()
		if err != nil {
			log.Printf("secinfra: identity: re-enrolment failed: %v", err)
		}
	}
}

// reportExpired emits Expired once per expired certificate (spec 9.7.5).
func (r *Rotating) reportExpired(s *Snapshot) {
	r.mu.Lock()
	if r.expiredFor == s.Serial {
		r.mu.Unlock()
		return
	}
	r.expiredFor = s.Serial
	bundle := r.bundle
	r.mu.Unlock()
	r.events.emit(Event{Kind: Expired, Snapshot: s, Bundle: bundle, At: r.cfg.Now(),
		Err: expiredError("secinfra: identity: the certificate expired", nil)})
}
