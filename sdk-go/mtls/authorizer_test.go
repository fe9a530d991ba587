package mtls_test

import (
	"crypto/x509"
	"errors"
	"strings"
	"testing"

	"github.com/secinfra/secinfra/sdk-go/mtls"
)

func TestAuthorizers(t *testing.T) {
	custom := mtls.AuthorizerFunc(func(id string, _ [][]*x509.Certificate) error {
		if !strings.HasSuffix(id, "/batch") {
			return errors.New("only batch jobs")
		}
		return nil
	})
	tests := []struct {
		name       string
		authorizer mtls.Authorizer
		peer       string
		wantErr    string
	}{
		{"any", mtls.AuthorizeAny(), "spiffe://example.org/anything", ""},
		{"id, same", mtls.AuthorizeID("spiffe://example.org/billing"), "spiffe://example.org/billing", ""},
		{"id, other", mtls.AuthorizeID("spiffe://example.org/billing"), "spiffe://example.org/billing2",
			"it is not spiffe://example.org/billing"},
		{"one of, member", mtls.AuthorizeOneOf("spiffe://example.org/a", "spiffe://example.org/b"), "spiffe://example.org/b", ""},
		{"one of, other", mtls.AuthorizeOneOf("spiffe://example.org/b", "spiffe://example.org/a"), "spiffe://example.org/c",
			"it is not one of spiffe://example.org/a, spiffe://example.org/b"},
		{"member of, member", mtls.AuthorizeMemberOf("example.org"), "spiffe://example.org/x/y", ""},
		{"member of, the trust domain itself", mtls.AuthorizeMemberOf("example.org"), "spiffe://example.org", ""},
		{"member of, other", mtls.AuthorizeMemberOf("example.org"), "spiffe://example.com/x",
			"it is not a member of the trust domain example.org"},
		{"path prefix, the prefix", mtls.AuthorizePathPrefix("example.org", "/payments"), "spiffe://example.org/payments", ""},
		{"path prefix, under it", mtls.AuthorizePathPrefix("example.org", "/payments"), "spiffe://example.org/payments/api", ""},
		{"path prefix, a longer segment", mtls.AuthorizePathPrefix("example.org", "/payments"), "spiffe://example.org/payments-legacy",
			"it is not spiffe://example.org/payments or under it"},
		{"path prefix, another trust domain", mtls.AuthorizePathPrefix("example.org", "/payments"), "spiffe://example.com/payments",
			"it is not spiffe://example.org/payments or under it"},
		{"func, accepted", custom, "spiffe://example.org/nightly/batch", ""},
		{"func, refused", custom, "spiffe://example.org/web", "only batch jobs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.authorizer.Authorize(tt.peer, nil)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// A configuration is never built without an authorizer, nor with one made
// from a malformed argument: the mistake shows at start-up.
func TestConfigsRefuseAMissingOrInvalidAuthorizer(t *testing.T) {
	source := newTestCA(t, trustDomain).source(selfID)
	var nilFunc mtls.AuthorizerFunc
	tests := []struct {
		name       string
		authorizer mtls.Authorizer
		wantErr    string
	}{
		{"none", nil, "secinfra: mtls: an authorizer is required; no default accepts every peer (AuthorizeAny says so when any member of the trust domain will do)"},
		{"nil func", nilFunc, "secinfra: mtls: the AuthorizerFunc is nil"},
		{"id with a trailing slash", mtls.AuthorizeID("spiffe://example.org/billing/"),
			`secinfra: mtls: invalid authorizer: AuthorizeID: "spiffe://example.org/billing/" is not a SPIFFE ID: the path "/billing/" has an empty segment or a trailing '/'`},
		{"id with an upper-case trust domain", mtls.AuthorizeID("spiffe://Example.org/billing"),
			`secinfra: mtls: invalid authorizer: AuthorizeID: "spiffe://Example.org/billing" is not a SPIFFE ID: the trust domain "Example.org" holds 'E' (only lowercase letters, digits, '.', '-' and '_')`},
		{"one of nothing", mtls.AuthorizeOneOf(),
			"secinfra: mtls: invalid authorizer: AuthorizeOneOf: no SPIFFE ID given (AuthorizeAny accepts any peer)"},
		{"one of, an https URL", mtls.AuthorizeOneOf("spiffe://example.org/a", "https://example.org/b"),
			`secinfra: mtls: invalid authorizer: AuthorizeOneOf: "https://example.org/b" is not a SPIFFE ID: it does not start with spiffe://`},
		{"member of an empty trust domain", mtls.AuthorizeMemberOf(""),
			"secinfra: mtls: invalid authorizer: AuthorizeMemberOf: the trust domain is empty"},
		{"path prefix without a slash", mtls.AuthorizePathPrefix("example.org", "payments"),
			`secinfra: mtls: invalid authorizer: AuthorizePathPrefix: the path "payments" does not start with '/'`},
		{"path prefix with a dot-dot", mtls.AuthorizePathPrefix("example.org", "/payments/.."),
			`secinfra: mtls: invalid authorizer: AuthorizePathPrefix: the path "/payments/.." has a ".." segment`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := mtls.ServerConfig(source, tt.authorizer); err == nil || err.Error() != tt.wantErr {
				t.Fatalf("ServerConfig: err = %v, want %q", err, tt.wantErr)
			}
			if _, err := mtls.ClientConfig(source, tt.authorizer); err == nil || err.Error() != tt.wantErr {
				t.Fatalf("ClientConfig: err = %v, want %q", err, tt.wantErr)
			}
		})
	}
	if _, err := mtls.ServerConfig(nil, mtls.AuthorizeAny()); err == nil || err.Error() != "secinfra: mtls: an identity source is required" {
		t.Fatalf("nil source: err = %v", err)
	}
	if _, err := mtls.ClientConfig(source, mtls.AuthorizeAny(), mtls.WithClock(nil)); err == nil {
		t.Fatal("a nil clock was accepted")
	}
}

// CheckAuthorizer refuses what ServerConfig would refuse, when a program
// builds its authorizers, before it has a source.
func TestCheckAuthorizer(t *testing.T) {
	tests := []struct {
		name       string
		authorizer mtls.Authorizer
		wantErr    string
	}{
		{"id", mtls.AuthorizeID("spiffe://example.org/billing"), ""},
		{"path prefix", mtls.AuthorizePathPrefix("example.org", "/user"), ""},
		{"any", mtls.AuthorizeAny(), ""},
		{"nil", nil, "an authorizer is required"},
		{"nil func", mtls.AuthorizerFunc(nil), "the AuthorizerFunc is nil"},
		{"malformed id", mtls.AuthorizeID("spiffe://example.org/a//b"), `invalid authorizer: AuthorizeID: "spiffe://example.org/a//b" is not a SPIFFE ID`},
		{"malformed prefix", mtls.AuthorizePathPrefix("example.org", "user"), `invalid authorizer: AuthorizePathPrefix: the path "user" does not start with '/'`},
		{"no ids", mtls.AuthorizeOneOf(), "AuthorizeOneOf: no SPIFFE ID given"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := mtls.CheckAuthorizer(tt.authorizer)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
