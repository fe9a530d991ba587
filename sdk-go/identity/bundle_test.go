package identity_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/secinfra/secinfra/sdk-go/identity"
)

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
