package identity_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/secinfra/secinfra/sdk-go/identity"
)

type issued struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// newCert issues a certificate for key (a new one when nil) signed by parent
// (self-signed when nil).
func newCert(t *testing.T, parent *issued, key *ecdsa.PrivateKey, ca bool, uris ...string) *issued {
	t.Helper()
	if key == nil {
		var err error
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		BasicConstraintsValid: true, IsCA: ca,
	}
	if ca {
		tmpl.KeyUsage = x509.KeyUsageCertSign
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	for _, u := range uris {
		tmpl.URIs = append(tmpl.URIs, mustURL(u))
	}
	signer, parentCert := key, tmpl
	if parent != nil {
		signer, parentCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &issued{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func TestCSRHasEmptySubjectAndNoExtensions(t *testing.T) {
	key, err := identity.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if key.Curve != elliptic.P256() {
		t.Fatal("the default key is ECDSA P-256")
	}
	text, err := identity.CreateCSR(key)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode([]byte(text))
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		t.Fatalf("not a PEM CSR: %q", text)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Fatal(err)
	}
	if len(csr.Subject.Names) != 0 || len(csr.Extensions) != 0 || len(csr.URIs) != 0 ||
		csr.SignatureAlgorithm != x509.ECDSAWithSHA256 {
		t.Fatalf("CSR must have an empty subject, no extensions, ECDSA-SHA256: %+v", csr.Subject)
	}
}

func TestNewSnapshot(t *testing.T) {
	ca := newCert(t, nil, nil, true, "spiffe://example.org")
	leaf := newCert(t, ca, nil, false, "spiffe://example.org/app")
	other, _ := identity.NewKey()
	tests := []struct {
		name    string
		chain   []byte
		key     *ecdsa.PrivateKey
		wantErr string
	}{
		{name: "valid svid", chain: leaf.pem, key: leaf.key},
		{name: "key-does-not-match", chain: leaf.pem, key: other, wantErr: "public key"},
		{name: "leaf-with-two-uri-sans", chain: newCert(t, ca, other, false, "spiffe://example.org/a", "spiffe://example.org/b").pem, key: other, wantErr: "exactly one URI SAN"},
		{name: "leaf-with-https-uri", chain: newCert(t, ca, other, false, "https://example.org/a").pem, key: other, wantErr: "not a spiffe"},
		{name: "no certificate", chain: []byte("junk"), key: leaf.key, wantErr: "no certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			received := time.Now()
			s, err := identity.NewSnapshot(tt.chain, tt.key, received)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.SpiffeID != "spiffe://example.org/app" || s.Serial != leaf.cert.SerialNumber.Text(16) {
				t.Fatalf("snapshot %v", s)
			}
			// NotBefore is backdated: issued at min(received, NotBefore + 60 s).
			if want := leaf.cert.NotBefore.Add(time.Minute); !s.IssuedAt.Equal(want) && !s.IssuedAt.Equal(received) {
				t.Fatalf("issued at %v", s.IssuedAt)
			}
			for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
				if out := fmt.Sprintf(format, s); strings.Contains(out, "PRIVATE") || !strings.Contains(out, "redacted") {
					t.Errorf("%s shows the key or no redaction: %s", format, out)
				}
			}
		})
	}
}

func bundleJSON(entries ...map[string]any) []byte {
	data, _ := json.Marshal(map[string]any{"keys": entries, "spiffe_sequence": 7, "spiffe_refresh_hint": 2, "future": true})
	return data
}

func TestParseBundle(t *testing.T) {
	ca := newCert(t, nil, nil, true, "spiffe://example.org")
	ca2 := newCert(t, nil, nil, true, "spiffe://example.org")
	x5c := func(c *issued) []string { return []string{base64.StdEncoding.EncodeToString(c.cert.Raw), "ignored"} }
	b, err := identity.ParseBundle(bundleJSON(
		map[string]any{"use": "x509-svid", "kty": "EC", "x5c": x5c(ca)},
		map[string]any{"use": "jwt-svid", "kty": "EC", "x5c": x5c(ca2)},
		map[string]any{"use": "x509-svid", "kty": "EC"},
	))
	if err != nil {
		t.Fatal(err)
	}
	if len(b.CAs) != 1 || !b.CAs[0].Equal(ca.cert) || b.Sequence != 7 || b.Refresh() != 2*time.Second {
		t.Fatalf("bundle %+v", b)
	}
	pemBundle, err := identity.ParseBundle(append(ca.pem, ca2.pem...))
	if err != nil || len(pemBundle.CAs) != 2 || pemBundle.Sequence != 0 || pemBundle.Refresh() != identity.DefaultBundleRefresh {
		t.Fatalf("PEM bundle %+v %v", pemBundle, err)
	}
	if _, err := identity.ParseBundle(bundleJSON(map[string]any{"use": "jwt-svid", "x5c": x5c(ca)})); err == nil {
		t.Fatal("a bundle without an X.509 CA must be rejected")
	}
	td, err := identity.TrustDomainFromBundle(b)
	if err != nil || identity.ServerID(td) != "spiffe://example.org/secinfra/server" {
		t.Fatalf("trust domain %q %v", td, err)
	}
}

func TestVerifyServer(t *testing.T) {
	ca := newCert(t, nil, nil, true, "spiffe://example.org")
	rogue := newCert(t, nil, nil, true, "spiffe://example.org")
	bundle, _ := identity.ParseBundle(ca.pem)
	const serverID = "spiffe://example.org/secinfra/server"
	tests := []struct {
		name      string
		leaf      *issued
		wantCheck string
	}{
		{"server svid", newCert(t, ca, nil, false, serverID), ""},
		{"wrong spiffe id", newCert(t, ca, nil, false, "spiffe://example.org/app"), "spiffe_id"},
		{"unknown ca", newCert(t, rogue, nil, false, serverID), "chain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := identity.VerifyServer([][]byte{tt.leaf.cert.Raw}, bundle, serverID, time.Now())
			if tt.wantCheck == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var v *identity.VerificationError
			if !errors.As(err, &v) || v.Check != tt.wantCheck {
				t.Fatalf("err = %v, want a %s failure", err, tt.wantCheck)
			}
		})
	}
}

func TestAttestationHidesTheToken(t *testing.T) {
	a := identity.JoinToken("sjt_abc.secret")
	for _, format := range []string{"%v", "%+v", "%#v"} {
		if out := fmt.Sprintf(format, a); strings.Contains(out, "secret") && !strings.Contains(out, "redacted") || strings.Contains(out, "sjt_") {
			t.Fatalf("%s shows the token: %s", format, out)
		}
	}
}
