package rotation_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/secinfra/secinfra/sdk-go/internal/rotation"
)

var issued = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func TestRenewalTime(t *testing.T) {
	tests := []struct {
		name     string
		policy   func(*rotation.Policy)
		lifetime time.Duration
		u        float64
		want     time.Duration // after issued
	}{
		{name: "no jitter drawn: half-life", lifetime: time.Hour, u: 0, want: 30 * time.Minute},
		{name: "largest jitter: 40 % of the lifetime", lifetime: time.Hour, u: 1, want: 24 * time.Minute},
		{name: "half the jitter", lifetime: 10 * time.Second, u: 0.5, want: 4500 * time.Millisecond},
		{name: "other fraction and jitter", lifetime: time.Hour, u: 0.5,
			policy: func(p *rotation.Policy) { p.RenewalFraction, p.RenewalJitter = 0.8, 0.2 }, want: 42 * time.Minute},
		{name: "jitter off", lifetime: time.Hour, u: 0.9,
			policy: func(p *rotation.Policy) { p.RenewalJitter = 0 }, want: 30 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := rotation.DefaultPolicy()
			if tt.policy != nil {
				tt.policy(&p)
			}
			got := p.RenewalTime(issued, issued.Add(tt.lifetime), tt.u)
			if got.Sub(issued) != tt.want {
				t.Fatalf("renewal %v after issue, want %v", got.Sub(issued), tt.want)
			}
		})
	}
}

func TestRetryDelay(t *testing.T) {
	notAfter := issued.Add(time.Hour)
	tests := []struct {
		name     string
		failures int
		left     time.Duration // from now to NotAfter
		u        float64
		want     time.Duration
	}{
		{name: "first failure: up to 1 s", failures: 1, left: 30 * time.Minute, u: 0.5, want: 500 * time.Millisecond},
		{name: "third failure: up to 4 s", failures: 3, left: 30 * time.Minute, u: 0.5, want: 2 * time.Second},
		{name: "ceiling capped at 60 s", failures: 12, left: 30 * time.Minute, u: 1, want: 60 * time.Second},
		{name: "huge counts stay capped", failures: 1000, left: 30 * time.Minute, u: 0.5, want: 30 * time.Second},
		{name: "never later than the margin before expiry", failures: 12, left: 10 * time.Second, u: 1, want: 9 * time.Second},
		{name: "at the margin: the last try is made, next is expiry", failures: 5, left: time.Second, u: 0.5, want: time.Second},
		{name: "past the margin: wait for expiry", failures: 5, left: 300 * time.Millisecond, u: 0, want: 300 * time.Millisecond},
	}
	p := rotation.DefaultPolicy()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := notAfter.Add(-tt.left)
			if got := p.RetryDelay(tt.failures, now, notAfter, tt.u); got != tt.want {
				t.Fatalf("RetryDelay = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBundleRefresh(t *testing.T) {
	tests := []struct {
		name      string
		policy    func(*rotation.Policy)
		hint      time.Duration
		want      time.Duration
		wantRetry time.Duration
	}{
		{name: "the hint", hint: 2 * time.Second, want: 2 * time.Second, wantRetry: 2 * time.Second},
		{name: "no hint: 300 s", hint: 0, want: 300 * time.Second, wantRetry: 30 * time.Second},
		{name: "negative hint: 300 s", hint: -time.Second, want: 300 * time.Second, wantRetry: 30 * time.Second},
		{name: "too small: 1 s", hint: time.Millisecond, want: time.Second, wantRetry: time.Second},
		{name: "too large: a day", hint: 1000 * time.Hour, want: 24 * time.Hour, wantRetry: 30 * time.Second},
		{name: "own bounds", hint: time.Hour, want: 10 * time.Minute, wantRetry: 5 * time.Second,
			policy: func(p *rotation.Policy) { p.BundleRefreshMax, p.BundleRetry = 10*time.Minute, 5*time.Second }},
		{name: "own bounds apply to the default", hint: 0, want: 2 * time.Minute, wantRetry: 30 * time.Second,
			policy: func(p *rotation.Policy) { p.BundleRefreshMax = 2 * time.Minute }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := rotation.DefaultPolicy()
			if tt.policy != nil {
				tt.policy(&p)
			}
			if got := p.BundleRefresh(tt.hint); got != tt.want {
				t.Errorf("BundleRefresh = %v, want %v", got, tt.want)
			}
			if got := p.BundleRetryDelay(tt.hint); got != tt.wantRetry {
				t.Errorf("BundleRetryDelay = %v, want %v", got, tt.wantRetry)
			}
		})
	}
}

func TestValidateNamesTheSetting(t *testing.T) {
	tests := []struct {
		name    string
		policy  func(*rotation.Policy)
		wantErr string
	}{
		{name: "defaults", policy: func(*rotation.Policy) {}},
		{name: "jitter off", policy: func(p *rotation.Policy) { p.RenewalJitter = 0 }},
		{name: "no expiry margin", policy: func(p *rotation.Policy) { p.RenewalExpiryMargin = 0 }},
		{name: "fraction 0", policy: func(p *rotation.Policy) { p.RenewalFraction = 0 }, wantErr: "renewal_fraction"},
		{name: "fraction 1", policy: func(p *rotation.Policy) { p.RenewalFraction = 1 }, wantErr: "renewal_fraction"},
		{name: "fraction NaN", policy: func(p *rotation.Policy) { p.RenewalFraction = math.NaN() }, wantErr: "renewal_fraction"},
		{name: "jitter reaching the fraction", policy: func(p *rotation.Policy) { p.RenewalJitter = 0.5 }, wantErr: "renewal_jitter"},
		{name: "negative jitter", policy: func(p *rotation.Policy) { p.RenewalJitter = -0.1 }, wantErr: "renewal_jitter"},
		{name: "jitter NaN", policy: func(p *rotation.Policy) { p.RenewalJitter = math.NaN() }, wantErr: "renewal_jitter"},
		{name: "retry base 0", policy: func(p *rotation.Policy) { p.RenewalRetryBase = 0 }, wantErr: "renewal_retry_base"},
		{name: "retry max negative", policy: func(p *rotation.Policy) { p.RenewalRetryMax = -time.Second }, wantErr: "renewal_retry_max"},
		{name: "margin negative", policy: func(p *rotation.Policy) { p.RenewalExpiryMargin = -time.Second }, wantErr: "renewal_expiry_margin"},
		{name: "re-enrol retry 0", policy: func(p *rotation.Policy) { p.ReenrolRetry = 0 }, wantErr: "reenrol_retry"},
		{name: "bundle retry 0", policy: func(p *rotation.Policy) { p.BundleRetry = 0 }, wantErr: "bundle_retry"},
		{name: "refresh min 0", policy: func(p *rotation.Policy) { p.BundleRefreshMin = 0 }, wantErr: "bundle_refresh_min"},
		{name: "refresh max below min", policy: func(p *rotation.Policy) { p.BundleRefreshMax = 500 * time.Millisecond }, wantErr: "bundle_refresh_max"},
		{name: "infinite duration", policy: func(p *rotation.Policy) { p.ReenrolRetry = math.MaxInt64 }, wantErr: "reenrol_retry must be finite"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := rotation.DefaultPolicy()
			tt.policy(&p)
			err := p.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "secinfra: settings: ") {
				t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
			}
		})
	}
}
