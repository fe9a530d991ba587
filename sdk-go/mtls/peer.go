package mtls

import (
	"crypto/tls"
	"net/http"
)

// PeerID is the SPIFFE ID of the client that sent r, for a handler served
// with ServerConfig (or NewServer), whose handshake refused every client
// that did not pass verification and the authorizer. ok is false for a
// request that did not come over TLS with a client certificate.
//
// It reads the certificate the connection was verified with; a server
// whose TLS configuration does not come from this package has verified
// nothing of the kind, and must not rely on it.
func PeerID(r *http.Request) (id string, ok bool) {
	if r.TLS == nil {
		return "", false
	}
	return PeerIDFromConnectionState(*r.TLS)
}

// PeerIDFromConnectionState is the SPIFFE ID of the peer of a connection
// made with ServerConfig or ClientConfig (tls.Conn.ConnectionState, or
// http.Response.TLS on the client side).
func PeerIDFromConnectionState(cs tls.ConnectionState) (id string, ok bool) {
	if !cs.HandshakeComplete || len(cs.PeerCertificates) == 0 || len(cs.PeerCertificates[0].URIs) != 1 {
		return "", false
	}
	return cs.PeerCertificates[0].URIs[0].String(), true
}
