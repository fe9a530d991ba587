package mtls

import (
	"net/http"
	"time"

	"github.com/secinfra/secinfra/sdk-go/identity"
)

// DefaultReadHeaderTimeout bounds how long NewServer's server waits for a
// request's headers, so that a slow client cannot hold a connection open.
const DefaultReadHeaderTimeout = 10 * time.Second

// NewServer is an http.Server for addr and handler whose TLS configuration
// is ServerConfig(source, authorizer, opts...). Serve it with
// ListenAndServeTLS("", "") or ServeTLS(listener, "", ""): the certificate
// comes from the source, not from files. Handlers read the client's SPIFFE
// ID with PeerID.
func NewServer(addr string, handler http.Handler, source identity.Source, authorizer Authorizer, opts ...Option) (*http.Server, error) {
	conf, err := ServerConfig(source, authorizer, opts...)
	if err != nil {
		return nil, err
	}
	return &http.Server{Addr: addr, Handler: handler, TLSConfig: conf, ReadHeaderTimeout: DefaultReadHeaderTimeout}, nil
}

// NewTransport is http.DefaultTransport's settings with the TLS
// configuration ClientConfig(source, authorizer, opts...). Pooled
// connections keep the identities of their handshake; a renewal or a new
// bundle applies to the connections made after it (CloseIdleConnections
// makes every next request use a new one).
func NewTransport(source identity.Source, authorizer Authorizer, opts ...Option) (*http.Transport, error) {
	conf, err := ClientConfig(source, authorizer, opts...)
	if err != nil {
		return nil, err
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = conf
	return t, nil
}

// NewClient is an http.Client over NewTransport(source, authorizer, opts...),
// for https:// URLs of services whose SPIFFE ID authorizer accepts.
func NewClient(source identity.Source, authorizer Authorizer, opts ...Option) (*http.Client, error) {
	t, err := NewTransport(source, authorizer, opts...)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: t}, nil
}
