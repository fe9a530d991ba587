package identity_test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secinfra/secinfra/sdk-go/gen/secinfrav1"
	"github.com/secinfra/secinfra/sdk-go/identity"
	"github.com/secinfra/secinfra/sdk-go/rpc"
)

const workloadID = "spiffe://example.org/app"

// fakeCA answers the identity RPCs a Rotating source makes, as the
// reference server would, except that renewals can be told to carry another
// SPIFFE ID or come from a CA in no bundle (like the server's test control
// /_test/ca/next-issuance).
type fakeCA struct {
	t        *testing.T
	ca       *issued
	rogue    *issued
	lifetime time.Duration

	// issueGate, when set, holds every IssueCertificate until it is closed
	// (a slow re-enrolment).
	issueGate chan struct{}

	mu       sync.Mutex
	next     []string // how the next renewals are signed: "other_id", "untrusted"
	renewals int
	bundles  int
	issues   int
}

func newFakeCA(t *testing.T, lifetime time.Duration) *fakeCA {
	return &fakeCA{t: t, ca: newCert(t, nil, nil, true, "spiffe://example.org"),
		rogue: newCert(t, nil, nil, true, "spiffe://example.org"), lifetime: lifetime}
}

func (f *fakeCA) bundle() *identity.Bundle {
	b, err := identity.ParseBundle(f.ca.pem)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// sign issues a leaf for the CSR's key, backdated 60 s like the server's.
func (f *fakeCA) sign(csrPEM string, parent *issued, id string) string {
	block, _ := pem.Decode([]byte(csrPEM))
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		panic(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serial, NotBefore: now.Add(-60 * time.Second), NotAfter: now.Add(f.lifetime),
		KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	tmpl.URIs = append(tmpl.URIs, mustURL(id))
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent.cert, csr.PublicKey, parent.key)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// Invoke implements rpc.Invoker.
func (f *fakeCA) Invoke(ctx context.Context, d *rpc.Descriptor, req, resp any, _ ...rpc.CallOption) error {
	f.mu.Lock()
	gate := f.issueGate
	f.mu.Unlock()
	if d.Name == "IssueCertificate" && gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch d.Name {
	case "IssueCertificate":
		f.issues++
		resp.(*secinfrav1.IssueCertificateResponse).SVID = &secinfrav1.X509Svid{
			CertChainPEM: f.sign(req.(*secinfrav1.IssueCertificateRequest).CSRPEM, f.ca, workloadID)}
	case "RenewCertificate":
		f.renewals++
		parent, id := f.ca, workloadID
		if len(f.next) > 0 {
			switch f.next[0] {
			case "other_id":
				id = "spiffe://example.org/someone-else"
			case "untrusted":
				parent = f.rogue
			}
			f.next = f.next[1:]
		}
		resp.(*secinfrav1.RenewCertificateResponse).SVID = &secinfrav1.X509Svid{
			CertChainPEM: f.sign(req.(*secinfrav1.RenewCertificateRequest).CSRPEM, parent, id)}
	case "GetTrustBundle":
		f.bundles++
		*resp.(*secinfrav1.TrustBundle) = secinfrav1.TrustBundle{SpiffeSequence: 1, SpiffeRefreshHint: 3600,
			Keys: []*secinfrav1.Jwk{{Use: "x509-svid", Kty: "EC", X5c: []string{base64.StdEncoding.EncodeToString(f.ca.cert.Raw)}}}}
	default:
		return fmt.Errorf("fakeCA: unexpected %s", d.Name)
	}
	return nil
}

func (f *fakeCA) counts() (renewals, bundles int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.renewals, f.bundles
}

// A renewal answer that fails a check is not installed: the renewal counts
// as failed, renewal_failed says which check, the current certificate stays
// in use, and the next try, after the backoff, installs a good answer
// (spec 9.3.3, 8.7.4).
func TestRenewalRefusesACertificateThatFailsItsChecks(t *testing.T) {
	tests := []struct {
		name      string
		next      []string
		wantCheck string
		// wantRefresh: a chain that does not verify gets one bundle refresh first.
		wantRefresh bool
	}{
		{name: "another SPIFFE ID", next: []string{"other_id"}, wantCheck: identity.CheckSPIFFEID},
		{name: "signed by a CA in no bundle", next: []string{"untrusted"}, wantCheck: identity.CheckChain, wantRefresh: true},
		{name: "refused twice, then installed", next: []string{"other_id", "untrusted"}, wantCheck: identity.CheckSPIFFEID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca := newFakeCA(t, 3*time.Second)
			ca.next = tt.next
			rot, err := identity.NewRotating(identity.RotatingConfig{Bundle: ca.bundle(), Attestation: identity.JoinToken("sjt_x.y"),
				Rand: identity.NewSeededRand(1), RenewalRetryBase: 20 * time.Millisecond, RenewalRetryMax: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer rot.Close()
			events := make(chan identity.Event, 64)
			rot.Subscribe(func(e identity.Event) { events <- e })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := rot.Start(ctx, secinfrav1.NewIdentityClient(ca)); err != nil {
				t.Fatal(err)
			}
			first := rot.Snapshot()
			_, bundlesBefore := ca.counts()
			var failures []identity.Event
			for {
				var e identity.Event
				select {
				case e = <-events:
				case <-ctx.Done():
					t.Fatalf("no renewal installed; failures %v", failures)
				}
				if e.Kind == identity.Enrolled || e.Kind == identity.BundleUpdated {
					continue
				}
				if e.Kind == identity.RenewalFailed {
					failures = append(failures, e)
					// Calls keep working with the current certificate.
					if e.Snapshot != first || rot.Snapshot() != first {
						t.Fatalf("a refused certificate was installed: %v", rot.Snapshot())
					}
					if s, err := rot.Current(ctx); err != nil || s != first {
						t.Fatalf("Current = %v, %v; want the current certificate", s, err)
					}
					continue
				}
				if e.Kind != identity.Renewed {
					t.Fatalf("unexpected event %s: %v", e.Kind, e.Err)
				}
				if e.Snapshot.SpiffeID != workloadID || e.Snapshot.Serial == first.Serial || rot.Snapshot() != e.Snapshot {
					t.Fatalf("renewed to %v", e.Snapshot)
				}
				break
			}
			if len(failures) != len(tt.next) {
				t.Fatalf("%d renewal_failed events, want %d", len(failures), len(tt.next))
			}
			var cerr *identity.CertificateError
			if !errors.As(failures[0].Err, &cerr) || cerr.Check != tt.wantCheck {
				t.Fatalf("renewal_failed carries %v, want a %s check failure", failures[0].Err, tt.wantCheck)
			}
			for _, f := range failures {
				if !errors.As(f.Err, &cerr) || cerr.Error() == "" || cerr.Check == "" {
					t.Fatalf("renewal_failed carries %v, want an identity error naming its check", f.Err)
				}
			}
			renewals, bundles := ca.counts()
			if renewals != len(tt.next)+1 {
				t.Errorf("%d renewals, want %d", renewals, len(tt.next)+1)
			}
			if tt.wantRefresh && bundles == bundlesBefore {
				t.Error("a chain that does not verify must get one bundle refresh before it is refused")
			}
			if !tt.wantRefresh && len(tt.next) == 1 && bundles != bundlesBefore {
				t.Error("another SPIFFE ID is no reason to refresh the bundle")
			}
		})
	}
}

func TestCertificateErrorNamesItsCheck(t *testing.T) {
	err := error(&identity.CertificateError{Check: identity.CheckSPIFFEID, Reason: "it names spiffe://example.org/b"})
	want := "secinfra: identity: the new certificate was refused (spiffe_id check): it names spiffe://example.org/b"
	if err.Error() != want {
		t.Fatalf("Error() = %q, want %q", err.Error(), want)
	}
}

// Zero values take the defaults, a negative jitter or margin turns it off,
// and anything invalid is refused by NewRotating with its name.
func TestNewRotatingChecksItsSettings(t *testing.T) {
	bundle := newFakeCA(t, time.Hour).bundle()
	tests := []struct {
		name    string
		cfg     identity.RotatingConfig
		wantErr string
	}{
		{name: "defaults", cfg: identity.RotatingConfig{}},
		{name: "no jitter, no margin", cfg: identity.RotatingConfig{RenewalJitter: -1, RenewalExpiryMargin: -1}},
		{name: "fraction too large", cfg: identity.RotatingConfig{RenewalFraction: 1.5}, wantErr: "renewal_fraction"},
		{name: "jitter not below the fraction", cfg: identity.RotatingConfig{RenewalFraction: 0.2, RenewalJitter: 0.3}, wantErr: "renewal_jitter"},
		{name: "negative retry base", cfg: identity.RotatingConfig{RenewalRetryBase: -time.Second}, wantErr: "renewal_retry_base"},
		{name: "negative re-enrol retry", cfg: identity.RotatingConfig{ReenrolRetry: -time.Second}, wantErr: "reenrol_retry"},
		{name: "negative bundle retry", cfg: identity.RotatingConfig{BundleRetry: -time.Second}, wantErr: "bundle_retry"},
		{name: "refresh bounds crossed", cfg: identity.RotatingConfig{BundleRefreshMin: time.Hour, BundleRefreshMax: time.Minute}, wantErr: "bundle_refresh_max"},
		{name: "negative call timeout", cfg: identity.RotatingConfig{CallTimeout: -time.Second}, wantErr: "call_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Bundle, tt.cfg.Attestation = bundle, identity.JoinToken("sjt_x.y")
			rot, err := identity.NewRotating(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				rot.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
			}
		})
	}
}

// A caller waits for a re-enrolment only until its context ends, and gets
// the context's error, not identity_expired; the re-enrolment goes on and
// a later caller gets its certificate (spec 5.1.2, 5.4.1, 9.7.2).
func TestWaitForReenrolmentEndsWithTheCallersContext(t *testing.T) {
	ca := newFakeCA(t, 2*time.Second)
	ca.next = make([]string, 1000)
	for i := range ca.next {
		ca.next[i] = "untrusted" // every renewal refused
	}
	jwt := identity.JWTProvider(func(context.Context) (string, error) { return "a.reusable.jwt", nil })
	rot, err := identity.NewRotating(identity.RotatingConfig{Bundle: ca.bundle(), Attestation: jwt,
		Rand: identity.NewSeededRand(1), RenewalRetryBase: 50 * time.Millisecond, RenewalRetryMax: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer rot.Close()
	expired := make(chan struct{}, 1)
	rot.Subscribe(func(e identity.Event) {
		if e.Kind == identity.Expired {
			select {
			case expired <- struct{}{}:
			default:
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rot.Start(ctx, secinfrav1.NewIdentityClient(ca)); err != nil {
		t.Fatal(err)
	}
	first := rot.Snapshot()
	gate := make(chan struct{})
	ca.mu.Lock()
	ca.issueGate = gate
	ca.mu.Unlock()
	select {
	case <-expired:
	case <-ctx.Done():
		t.Fatal("the certificate never expired")
	}

	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	_, err = rot.Current(short)
	var e *rpc.Error
	if !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &e) {
		t.Fatalf("Current with a short deadline = %v; want the context's deadline error, not an rpc.Error", err)
	}

	close(gate)
	s, err := rot.Current(ctx)
	if err != nil || s.Serial == first.Serial || s.SpiffeID != workloadID {
		t.Fatalf("Current after the re-enrolment = %v, %v; want a new certificate", s, err)
	}
	ca.mu.Lock()
	issues := ca.issues
	ca.mu.Unlock()
	if issues != 2 {
		t.Errorf("%d issuances, want 2: the enrolment and one re-enrolment for every waiter", issues)
	}
}
