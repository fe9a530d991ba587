package mtls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/secinfra/secinfra/sdk-go/identity"
)

// Option changes how a configuration verifies its peers.
type Option func(*options)

type options struct {
	now func() time.Time
}

// WithClock sets the clock a peer's validity is checked at (default
// time.Now), e.g. a fake clock in tests. The certificate presented is the
// source's, which follows its own clock.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// ServerConfig is a TLS server configuration for mTLS with source's
// identity: it presents the source's current certificate on every
// handshake, requires a client certificate, and accepts a client only when
// its X509-SVID passes the rules of verify.go against the source's current
// trust bundle and authorizer accepts its SPIFFE ID.
//
// TLS session tickets are off: a resumed session would skip presenting
// the current certificate, so every handshake is a full one. The result
// is the caller's to extend (NextProtos, cipher suites); changing
// ClientAuth, GetCertificate or VerifyConnection undoes the verification.
func ServerConfig(source identity.Source, authorizer Authorizer, opts ...Option) (*tls.Config, error) {
	v, err := newVerifier(source, authorizer, x509.ExtKeyUsageClientAuth, opts)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			return current(hello.Context(), source)
		},
		// Go's own verification would check host names and take a fixed
		// CA pool; VerifyConnection checks the peer against the bundle the
		// source holds now, on every connection.
		ClientAuth:             tls.RequireAnyClientCert,
		VerifyConnection:       func(cs tls.ConnectionState) error { _, err := v.verify(cs.PeerCertificates); return err },
		SessionTicketsDisabled: true,
	}, nil
}

// ClientConfig is a TLS client configuration for mTLS with source's
// identity: it presents the source's current certificate when the server
// asks for one, and accepts the server only when its X509-SVID passes the
// rules of verify.go against the source's current trust bundle and
// authorizer accepts its SPIFFE ID. Host names are not verified: the
// SPIFFE ID is what names a service.
func ClientConfig(source identity.Source, authorizer Authorizer, opts ...Option) (*tls.Config, error) {
	v, err := newVerifier(source, authorizer, x509.ExtKeyUsageServerAuth, opts)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(info *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return current(info.Context(), source)
		},
		// Host-name verification is replaced, not skipped: VerifyConnection
		// runs on every connection, resumed ones included.
		InsecureSkipVerify: true, //nolint:gosec // verified by VerifyConnection
		VerifyConnection:   func(cs tls.ConnectionState) error { _, err := v.verify(cs.PeerCertificates); return err },
	}, nil
}

// newVerifier checks the arguments every configuration needs: a source
// whose server ID names its trust domain, and an authorizer.
func newVerifier(source identity.Source, authorizer Authorizer, usage x509.ExtKeyUsage, opts []Option) (*verifier, error) {
	if source == nil {
		return nil, errors.New("secinfra: mtls: an identity source is required")
	}
	if err := CheckAuthorizer(authorizer); err != nil {
		return nil, err
	}
	td, err := identity.TrustDomainOf(source.ServerID())
	if err != nil {
		return nil, fmt.Errorf("secinfra: mtls: the source names no trust domain: %w", err)
	}
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if o.now == nil {
		return nil, errors.New("secinfra: mtls: WithClock: the clock must not be nil")
	}
	return &verifier{source: source, trustDomain: td, authorizer: authorizer, usage: usage, now: o.now}, nil
}

// current is the certificate to present: the source's current snapshot,
// whose chain and key come as one value.
func current(ctx context.Context, source identity.Source) (*tls.Certificate, error) {
	s, err := source.Current(ctx)
	if err != nil {
		return nil, fmt.Errorf("secinfra: mtls: no certificate to present: %w", err)
	}
	return s.TLSCertificate(), nil
}
