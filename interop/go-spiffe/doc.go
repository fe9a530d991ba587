// Package interop holds the tests that the Go SDK's mTLS configurations
// (package mtls) work with go-spiffe v2's spiffetls/tlsconfig, the
// standard Go SPIFFE library, in both directions. It is a module of its
// own so that the SDK stays standard-library only: go-spiffe and its
// dependencies are this module's, pinned in its go.mod.
package interop
