package identity_test

import (
	"crypto/ecdsa"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/secinfra/secinfra/sdk-go/identity"
)

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
