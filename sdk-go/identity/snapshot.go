package identity

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// NotBeforeBackdating is how far the server backdates NotBefore (spec 9.1).
const NotBeforeBackdating = 60 * time.Second

// Snapshot is one X509-SVID chain with its private key and the values parsed
// from the leaf. It is immutable; chain and key are replaced together.
type Snapshot struct {
	// SpiffeID is the leaf's URI SAN.
	SpiffeID string
	// Serial is the leaf's serial, lowercase hex without leading zeros.
	Serial string
	// NotBefore and NotAfter are the leaf's validity.
	NotBefore, NotAfter time.Time
	// IssuedAt is min(received, NotBefore + 60 s): the start of the lifetime.
	IssuedAt time.Time
	// Chain is the certificate chain, leaf first.
	Chain []*x509.Certificate

	chainPEM []byte
	key      crypto.Signer
	tlsCert  *tls.Certificate
}

// ChainPEM returns the chain as PEM, leaf first.
func (s *Snapshot) ChainPEM() []byte { return bytes.Clone(s.chainPEM) }

// TLSCertificate is the chain and key for a TLS handshake.
func (s *Snapshot) TLSCertificate() *tls.Certificate { return s.tlsCert }

// KeyPEM encodes the private key as PKCS #8 PEM. Only a file sink the
// application asked for should call it: the key must not leave the process.
func (s *Snapshot) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(s.key)
	if err != nil {
		return nil, fmt.Errorf("secinfra: identity: cannot encode the private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// String never shows the key.
func (s *Snapshot) String() string {
	return fmt.Sprintf("identity.Snapshot{%s serial=%s not_after=%s key=redacted}",
		s.SpiffeID, s.Serial, s.NotAfter.UTC().Format(time.RFC3339))
}

// GoString is String.
func (s *Snapshot) GoString() string { return s.String() }

// ParseCertificates reads every CERTIFICATE block of a PEM document.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("secinfra: identity: invalid certificate: %w", err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, errors.New("secinfra: identity: no certificate in the PEM data")
	}
	return certs, nil
}

// SpiffeIDOf returns the single spiffe:// URI SAN of an X509-SVID leaf.
func SpiffeIDOf(cert *x509.Certificate) (string, error) {
	if len(cert.URIs) != 1 {
		return "", fmt.Errorf("secinfra: identity: an X509-SVID has exactly one URI SAN, this certificate has %d", len(cert.URIs))
	}
	u := cert.URIs[0]
	if u.Scheme != "spiffe" || u.Host == "" {
		return "", fmt.Errorf("secinfra: identity: the URI SAN %q is not a spiffe:// ID", u.String())
	}
	return u.String(), nil
}

// NewSnapshot checks an X509-SVID chain against its key and parses it
// (spec 8.7.4, 8.8.3). received is when the chain was received or loaded.
func NewSnapshot(chainPEM []byte, key crypto.Signer, received time.Time) (*Snapshot, error) {
	chain, err := ParseCertificates(chainPEM)
	if err != nil {
		return nil, err
	}
	leaf := chain[0]
	id, err := SpiffeIDOf(leaf)
	if err != nil {
		return nil, err
	}
	if !publicKeysEqual(leaf.PublicKey, key.Public()) {
		return nil, errors.New("secinfra: identity: the certificate's public key is not the private key's")
	}
	issued := leaf.NotBefore.Add(NotBeforeBackdating)
	if received.Before(issued) {
		issued = received
	}
	raw := make([][]byte, len(chain))
	var buf bytes.Buffer
	for i, c := range chain {
		raw[i] = c.Raw
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return &Snapshot{
		SpiffeID:  id,
		Serial:    strings.ToLower(leaf.SerialNumber.Text(16)),
		NotBefore: leaf.NotBefore,
		NotAfter:  leaf.NotAfter,
		IssuedAt:  issued,
		Chain:     chain,
		chainPEM:  buf.Bytes(),
		key:       key,
		tlsCert:   &tls.Certificate{Certificate: raw, PrivateKey: key, Leaf: leaf},
	}, nil
}

// verify checks that the chain leads to a CA of b, for client auth.
func (s *Snapshot) verify(b *Bundle, now time.Time) error {
	inter := x509.NewCertPool()
	for _, c := range s.Chain[1:] {
		inter.AddCert(c)
	}
	_, err := s.Chain[0].Verify(x509.VerifyOptions{Roots: b.Pool(), Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err
}

// LoadSnapshot parses a PEM chain and a PEM private key (PKCS #8, SEC 1 or
// PKCS #1), e.g. the admin identity's files.
func LoadSnapshot(chainPEM, keyPEM []byte, now time.Time) (*Snapshot, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("secinfra: identity: no PEM private key")
	}
	var key any
	var err error
	switch block.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("secinfra: identity: cannot parse the private key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, errors.New("secinfra: identity: the private key cannot sign")
	}
	return NewSnapshot(chainPEM, signer, now)
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// ServerID is spiffe://<trustDomain>/secinfra/server.
func ServerID(trustDomain string) string {
	return "spiffe://" + trustDomain + "/secinfra/server"
}

// TrustDomainOf returns the trust domain of a spiffe:// ID.
func TrustDomainOf(id string) (string, error) {
	u, err := url.Parse(id)
	if err != nil || u.Scheme != "spiffe" || u.Host == "" {
		return "", fmt.Errorf("secinfra: identity: %q is not a spiffe:// ID", id)
	}
	return u.Host, nil
}
