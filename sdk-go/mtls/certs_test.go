package mtls_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"testing"
	"time"

	"github.com/secinfra/secinfra/sdk-go/identity"
)

// testCA is a CA made for the tests that need certificates the reference
// server never issues (two URI SANs, a CA leaf, an expired leaf, another
// trust domain). Everything else runs against the reference server's CA
// (integration_test.go).
type testCA struct {
	t    *testing.T
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func serial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// newTestCA is a self-signed CA naming spiffe://<trustDomain>, as the
// reference server's CAs do.
func newTestCA(t *testing.T, trustDomain string) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t), Subject: pkix.Name{CommonName: "test CA " + trustDomain},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		URIs: []*url.URL{{Scheme: "spiffe", Host: trustDomain}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{t: t, cert: cert, key: key}
}

// leaf describes a certificate to issue; the zero value is a valid
// X509-SVID for no ID.
type leaf struct {
	ids      []string
	ca       bool
	notAfter time.Time
}

// issue signs l for a new key and returns it ready for a handshake.
func (ca *testCA) issue(l leaf) *tls.Certificate {
	t := ca.t
	t.Helper()
	key := newKey(t)
	notAfter := l.notAfter
	if notAfter.IsZero() {
		notAfter = time.Now().Add(time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t), NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: notAfter,
		BasicConstraintsValid: true, IsCA: l.ca, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if l.ca {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	for _, id := range l.ids {
		u, err := url.Parse(id)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}
}

// bundle is a trust bundle holding this CA.
func (ca *testCA) bundle() *identity.Bundle {
	b, err := identity.NewBundle([]*x509.Certificate{ca.cert}, 1, 0)
	if err != nil {
		ca.t.Fatal(err)
	}
	return b
}

// source is a static identity source for id, trusting this CA.
func (ca *testCA) source(id string) *identity.StaticSource {
	ca.t.Helper()
	return ca.sourceFor(leaf{ids: []string{id}})
}

// sourceFor is a static identity source holding l, trusting this CA.
func (ca *testCA) sourceFor(l leaf) *identity.StaticSource {
	t := ca.t
	t.Helper()
	cert := ca.issue(l)
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
	snapshot, err := identity.NewSnapshot(chain, cert.PrivateKey.(*ecdsa.PrivateKey), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	source, err := identity.NewStaticSource(snapshot, ca.bundle(), "")
	if err != nil {
		t.Fatal(err)
	}
	return source
}
