package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"time"

	"github.com/secinfra/secinfra/sdk-go/identity"
	"github.com/secinfra/secinfra/sdk-go/mtls"
)

// setup is one way to get the server's and the client's TLS configuration.
type setup struct {
	name           string
	server, client *tls.Config
	// peerID reads the client's SPIFFE ID in the server's handler.
	peerID func(*http.Request) string
}

// plainSetup is what a Go service does without the SDK: certificates and
// a CA pool loaded once from static files, Go's own verification (the
// client checks the server's address SAN).
func plainSetup(server, client identityFiles) (*setup, error) {
	pool, err := loadPool(server.bundle)
	if err != nil {
		return nil, err
	}
	serverCert, err := tls.LoadX509KeyPair(server.cert, server.key)
	if err != nil {
		return nil, err
	}
	clientCert, err := tls.LoadX509KeyPair(client.cert, client.key)
	if err != nil {
		return nil, err
	}
	return &setup{
		name: "plain",
		server: &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{serverCert},
			ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert},
		client: &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{clientCert},
			RootCAs: pool, ServerName: "127.0.0.1"},
		peerID: func(r *http.Request) string { return r.TLS.PeerCertificates[0].URIs[0].String() },
	}, nil
}

// sdkSetup is the SDK's: the same files as static identity sources, and
// mtls configurations that authorize one SPIFFE ID on each side.
func sdkSetup(server, client identityFiles, trustDomain string) (*setup, error) {
	serverSource, err := staticSource(server)
	if err != nil {
		return nil, err
	}
	clientSource, err := staticSource(client)
	if err != nil {
		return nil, err
	}
	serverConf, err := mtls.ServerConfig(serverSource, mtls.AuthorizeID("spiffe://"+trustDomain+"/bench/client"))
	if err != nil {
		return nil, err
	}
	clientConf, err := mtls.ClientConfig(clientSource, mtls.AuthorizeID("spiffe://"+trustDomain+"/bench/server"))
	if err != nil {
		return nil, err
	}
	return &setup{
		name: "sdk", server: serverConf, client: clientConf,
		peerID: func(r *http.Request) string { id, _ := mtls.PeerID(r); return id },
	}, nil
}

func staticSource(f identityFiles) (*identity.StaticSource, error) {
	chain, err := os.ReadFile(f.cert)
	if err != nil {
		return nil, err
	}
	key, err := os.ReadFile(f.key)
	if err != nil {
		return nil, err
	}
	bundlePEM, err := os.ReadFile(f.bundle)
	if err != nil {
		return nil, err
	}
	snapshot, err := identity.LoadSnapshot(chain, key, time.Now())
	if err != nil {
		return nil, err
	}
	bundle, err := identity.ParseBundle(bundlePEM)
	if err != nil {
		return nil, err
	}
	return identity.NewStaticSource(snapshot, bundle, "")
}

func loadPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, errors.New("no CA certificate in " + path)
	}
	return pool, nil
}
