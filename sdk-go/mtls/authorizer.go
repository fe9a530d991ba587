package mtls

import (
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Authorizer decides whether a peer whose X509-SVID passed every rule of
// verify.go may talk to this service. peerID is the peer's SPIFFE ID;
// verifiedChains are the chains from its leaf to a CA of the trust bundle.
// A nil error accepts the peer; an error refuses the handshake, and the
// PeerError that carries it names the peer.
type Authorizer interface {
	Authorize(peerID string, verifiedChains [][]*x509.Certificate) error
}

// AuthorizerFunc makes a function an Authorizer, for a rule of the
// application's own (a custom predicate).
type AuthorizerFunc func(peerID string, verifiedChains [][]*x509.Certificate) error

// Authorize calls f.
func (f AuthorizerFunc) Authorize(peerID string, verifiedChains [][]*x509.Certificate) error {
	return f(peerID, verifiedChains)
}

// invalidAuthorizer is an authorizer built from an argument that is not
// valid (a malformed SPIFFE ID): ServerConfig and ClientConfig return its
// error, so a typo fails at start-up instead of refusing every peer.
type invalidAuthorizer struct{ err error }

// Authorize refuses every peer; a configuration never holds one.
func (a invalidAuthorizer) Authorize(string, [][]*x509.Certificate) error { return a.err }

// CheckAuthorizer reports whether a is an authorizer a configuration
// accepts: not nil, and not built from an invalid argument (a malformed
// SPIFFE ID, trust domain or path). ServerConfig and ClientConfig return
// the same error; CheckAuthorizer lets a program that builds authorizers
// from its own configuration file refuse a typo when it loads the file.
func CheckAuthorizer(a Authorizer) error {
	switch a := a.(type) {
	case nil:
		return errors.New("secinfra: mtls: an authorizer is required; no default accepts every peer (AuthorizeAny says so when any member of the trust domain will do)")
	case AuthorizerFunc:
		if a == nil {
			return errors.New("secinfra: mtls: the AuthorizerFunc is nil")
		}
	case invalidAuthorizer:
		return fmt.Errorf("secinfra: mtls: invalid authorizer: %w", a.err)
	}
	return nil
}

// AuthorizeAny accepts every peer with a valid X509-SVID of the source's
// trust domain. It is never a default: a service that means it says so.
func AuthorizeAny() Authorizer {
	return AuthorizerFunc(func(string, [][]*x509.Certificate) error { return nil })
}

// AuthorizeID accepts only the peer whose SPIFFE ID is id.
func AuthorizeID(id string) Authorizer {
	if _, _, err := parseID(id); err != nil {
		return invalidAuthorizer{fmt.Errorf("AuthorizeID: %w", err)}
	}
	return AuthorizerFunc(func(peerID string, _ [][]*x509.Certificate) error {
		if peerID != id {
			return fmt.Errorf("it is not %s", id)
		}
		return nil
	})
}

// AuthorizeOneOf accepts a peer whose SPIFFE ID is one of ids (at least one).
func AuthorizeOneOf(ids ...string) Authorizer {
	if len(ids) == 0 {
		return invalidAuthorizer{errors.New("AuthorizeOneOf: no SPIFFE ID given (AuthorizeAny accepts any peer)")}
	}
	set := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		if _, _, err := parseID(id); err != nil {
			return invalidAuthorizer{fmt.Errorf("AuthorizeOneOf: %w", err)}
		}
		set[id] = struct{}{}
	}
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	return AuthorizerFunc(func(peerID string, _ [][]*x509.Certificate) error {
		if _, ok := set[peerID]; !ok {
			return fmt.Errorf("it is not one of %s", strings.Join(sorted, ", "))
		}
		return nil
	})
}

// AuthorizeMemberOf accepts any peer of trustDomain (e.g. "secinfra.local").
// The peer's chain is verified against the source's bundle, which is for
// the source's own trust domain, so another trust domain here accepts no one.
func AuthorizeMemberOf(trustDomain string) Authorizer {
	if err := checkTrustDomain(trustDomain); err != nil {
		return invalidAuthorizer{fmt.Errorf("AuthorizeMemberOf: %w", err)}
	}
	return AuthorizerFunc(func(peerID string, _ [][]*x509.Certificate) error {
		td, _, err := parseID(peerID)
		if err != nil {
			return err
		}
		if td != trustDomain {
			return fmt.Errorf("it is not a member of the trust domain %s", trustDomain)
		}
		return nil
	})
}

// AuthorizePathPrefix accepts a peer of trustDomain whose path is prefix or
// lies under it, segment by segment: the prefix "/payments" accepts
// spiffe://<td>/payments and spiffe://<td>/payments/api, not
// spiffe://<td>/payments-legacy.
func AuthorizePathPrefix(trustDomain, prefix string) Authorizer {
	if err := checkTrustDomain(trustDomain); err != nil {
		return invalidAuthorizer{fmt.Errorf("AuthorizePathPrefix: %w", err)}
	}
	if err := checkPath(prefix); err != nil {
		return invalidAuthorizer{fmt.Errorf("AuthorizePathPrefix: %w", err)}
	}
	return AuthorizerFunc(func(peerID string, _ [][]*x509.Certificate) error {
		td, path, err := parseID(peerID)
		if err != nil {
			return err
		}
		if td != trustDomain || (path != prefix && !strings.HasPrefix(path, prefix+"/")) {
			return fmt.Errorf("it is not spiffe://%s%s or under it", trustDomain, prefix)
		}
		return nil
	})
}
