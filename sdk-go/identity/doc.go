// Package identity holds what a client proves itself with and whom it
// trusts, one subject per file:
//
//   - source.go: Source, the interface the transport asks on every TLS
//     handshake for the current snapshot, bundle and server ID;
//   - snapshot.go: Snapshot, an X509-SVID chain and its private key, always
//     together;
//   - static.go: StaticSource, an identity loaded once (files), never renewed;
//   - rotating.go: Rotating, enrolment, renewal, re-enrolment and bundle
//     refresh, scheduled by the client's rotation settings; attestation.go
//     holds what it enrols with, check.go what a new certificate must pass
//     before it is installed (CertificateError);
//   - bundle.go: Bundle, the SPIFFE trust bundle, and the server's verification;
//   - keys.go: the private key made in this process, and its CSR;
//   - events.go: rotation events and their in-order delivery to subscribers;
//   - filesink.go: FileSink, certificate, key and bundle written atomically
//     for software that reads files.
package identity
