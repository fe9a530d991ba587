// Package mtls builds the TLS configurations a service uses to serve and
// call other services over mutual TLS with its secinfra identity, as
// go-spiffe's tlsconfig does for the SPIFFE Workload API:
//
//	conf, err := mtls.ServerConfig(client.Source(), mtls.AuthorizeID("spiffe://secinfra.local/billing"))
//
// Both configurations ask the identity.Source on every handshake: the
// certificate presented is the source's current snapshot (chain and key
// together), and the peer's chain is verified against the source's current
// trust bundle, so a renewal or a CA rotation takes effect on the next
// handshake without a restart. Host names are never what is verified; the
// peer must present an X509-SVID of the source's trust domain (verify.go
// lists the rules), and its SPIFFE ID must pass an Authorizer. There is no
// default authorizer: AuthorizeAny says so when any member will do.
//
// One subject per file:
//
//   - config.go: ServerConfig and ClientConfig, and their options;
//   - authorizer.go: Authorizer and the authorizers (AuthorizeAny,
//     AuthorizeID, AuthorizeOneOf, AuthorizeMemberOf, AuthorizePathPrefix,
//     AuthorizerFunc);
//   - verify.go: the X509-SVID rules a peer's certificate passes, and
//     PeerError, the refusal that names the rule that failed;
//   - spiffeid.go: the SPIFFE ID syntax;
//   - http.go: an http.Server, http.Transport and http.Client built on the
//     configurations;
//   - peer.go: PeerID, the verified peer's SPIFFE ID inside a handler.
package mtls
