package identity_test

import (
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"testing"

	"github.com/secinfra/secinfra/sdk-go/identity"
)

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
