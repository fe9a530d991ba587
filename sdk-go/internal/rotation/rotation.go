// Package rotation is the timing of certificate rotation and nothing else:
// when to renew a certificate (spec 9.2), how long to wait after a failed
// renewal (9.4), and when to fetch the trust bundle again (10.2). It is
// pure: it reads no clock, draws no random number and sends nothing. The
// rotating identity source asks it and schedules itself, so every rule is
// tested here with a table, without a server or a timer.
//
// Policy holds the per-client settings of the spec's defaults table (1.7);
// the client's options set it and Validate refuses an invalid one when the
// client is created (1.4.4).
package rotation

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/secinfra/secinfra/sdk-go/internal/retry"
	"github.com/secinfra/secinfra/sdk-go/rpc"
)

// Defaults (spec 9.10, 10.7).
const (
	// DefaultRenewalFraction: renew once half the lifetime has passed...
	DefaultRenewalFraction = 0.5
	// DefaultRenewalJitter: ...less up to a tenth of it, so that a fleet
	// enrolled at one moment spreads its renewals.
	DefaultRenewalJitter = 0.1
	// DefaultRenewalRetryBase is the backoff ceiling after the first failed renewal.
	DefaultRenewalRetryBase = 1 * time.Second
	// DefaultRenewalRetryMax caps that ceiling.
	DefaultRenewalRetryMax = 60 * time.Second
	// DefaultRenewalExpiryMargin: the last renewal try starts this long
	// before NotAfter, while the certificate that authenticates it is valid.
	DefaultRenewalExpiryMargin = 1 * time.Second
	// DefaultReenrolRetry is the interval between re-enrolment tries after expiry.
	DefaultReenrolRetry = 30 * time.Second
	// DefaultBundleRetry is the most a failed bundle fetch waits to try again.
	DefaultBundleRetry = 30 * time.Second
	// DefaultBundleRefresh is the interval between bundle fetches when the
	// bundle has no usable spiffe_refresh_hint.
	DefaultBundleRefresh = 300 * time.Second
	// DefaultBundleRefreshMin raises a smaller hint (a hint of 0 must not spin).
	DefaultBundleRefreshMin = 1 * time.Second
	// DefaultBundleRefreshMax lowers a larger hint (a day).
	DefaultBundleRefreshMax = 86400 * time.Second
)

// Policy is a client's rotation settings. Its zero value is not valid:
// start from DefaultPolicy.
type Policy struct {
	// RenewalFraction: renew at this fraction of the lifetime...
	RenewalFraction float64
	// RenewalJitter: ...less a uniform draw of up to this fraction of it.
	RenewalJitter float64
	// RenewalRetryBase and RenewalRetryMax bound the full-jitter backoff
	// after a failed renewal.
	RenewalRetryBase, RenewalRetryMax time.Duration
	// RenewalExpiryMargin: no renewal try is scheduled later than this
	// before NotAfter.
	RenewalExpiryMargin time.Duration
	// ReenrolRetry is the interval between re-enrolment tries after expiry.
	ReenrolRetry time.Duration
	// BundleRetry is the most a failed bundle fetch waits to try again.
	BundleRetry time.Duration
	// BundleRefreshMin and BundleRefreshMax clamp the bundle's refresh hint.
	BundleRefreshMin, BundleRefreshMax time.Duration
}

// DefaultPolicy holds every default.
func DefaultPolicy() Policy {
	return Policy{
		RenewalFraction:     DefaultRenewalFraction,
		RenewalJitter:       DefaultRenewalJitter,
		RenewalRetryBase:    DefaultRenewalRetryBase,
		RenewalRetryMax:     DefaultRenewalRetryMax,
		RenewalExpiryMargin: DefaultRenewalExpiryMargin,
		ReenrolRetry:        DefaultReenrolRetry,
		BundleRetry:         DefaultBundleRetry,
		BundleRefreshMin:    DefaultBundleRefreshMin,
		BundleRefreshMax:    DefaultBundleRefreshMax,
	}
}

// Validate names the first invalid setting (spec 1.4.4).
func (p Policy) Validate() error {
	if !(p.RenewalFraction > 0 && p.RenewalFraction < 1) {
		return fmt.Errorf("secinfra: settings: renewal_fraction must be greater than 0 and less than 1, got %v", p.RenewalFraction)
	}
	if math.IsNaN(p.RenewalJitter) || p.RenewalJitter < 0 || p.RenewalJitter >= p.RenewalFraction {
		return fmt.Errorf("secinfra: settings: renewal_jitter must be at least 0 and less than renewal_fraction (%v), got %v",
			p.RenewalFraction, p.RenewalJitter)
	}
	for _, s := range []struct {
		name     string
		d        time.Duration
		positive bool
	}{
		{"renewal_retry_base", p.RenewalRetryBase, true},
		{"renewal_retry_max", p.RenewalRetryMax, true},
		{"renewal_expiry_margin", p.RenewalExpiryMargin, false},
		{"reenrol_retry", p.ReenrolRetry, true},
		{"bundle_retry", p.BundleRetry, true},
		{"bundle_refresh_min", p.BundleRefreshMin, true},
		{"bundle_refresh_max", p.BundleRefreshMax, true},
	} {
		if err := rpc.ValidateDuration(s.name, s.d, s.positive); err != nil {
			return err
		}
	}
	if p.BundleRefreshMax < p.BundleRefreshMin {
		return errors.New("secinfra: settings: bundle_refresh_max must not be less than bundle_refresh_min")
	}
	return nil
}

// RenewalTime is when to start renewing a certificate whose lifetime runs
// from issued (its issue time, spec 9.1) to notAfter:
// issued + RenewalFraction×L − J, with J = u × RenewalJitter×L and u a
// uniform [0, 1) draw made afresh for each certificate (spec 9.2).
func (p Policy) RenewalTime(issued, notAfter time.Time, u float64) time.Time {
	lifetime := float64(notAfter.Sub(issued))
	jitter := time.Duration(u * p.RenewalJitter * lifetime)
	return issued.Add(time.Duration(p.RenewalFraction*lifetime) - jitter)
}

// RetryDelay is how long to wait, at now, before the next renewal try
// after failures consecutive failed ones (from 1) of a certificate expiring
// at notAfter (spec 9.4): full jitter over
// min(RenewalRetryMax, RenewalRetryBase × 2^(failures−1)), with u a uniform
// [0, 1) draw, but never past RenewalExpiryMargin before notAfter. Once that
// moment has passed, the try just made was the last one, and the delay
// runs to notAfter, where expiry (re-enrolment or identity_expired) takes over.
func (p Policy) RetryDelay(failures int, now, notAfter time.Time, u float64) time.Duration {
	latest := notAfter.Add(-p.RenewalExpiryMargin)
	if !now.Before(latest) {
		return notAfter.Sub(now)
	}
	ceiling := retry.BackoffCeiling(failures, p.RenewalRetryBase, p.RenewalRetryMax)
	return min(retry.FullJitter(ceiling, u), latest.Sub(now))
}

// BundleRefresh is the interval from a successful bundle fetch to the next
// (spec 10.2.1): the bundle's refresh hint clamped to [BundleRefreshMin,
// BundleRefreshMax], or DefaultBundleRefresh (clamped alike) when the
// bundle has no positive hint.
func (p Policy) BundleRefresh(hint time.Duration) time.Duration {
	if hint <= 0 {
		hint = DefaultBundleRefresh
	}
	return min(max(hint, p.BundleRefreshMin), p.BundleRefreshMax)
}

// BundleRetryDelay is the interval from a failed bundle fetch to the next
// try: min(refresh, BundleRetry), refresh being BundleRefresh of the held
// bundle's hint (spec 10.2.3).
func (p Policy) BundleRetryDelay(hint time.Duration) time.Duration {
	return min(p.BundleRefresh(hint), p.BundleRetry)
}
