package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// identityFiles are the PEM files one workload reads: its certificate,
// its key and the trust bundle. Both setups load the same files.
type identityFiles struct {
	cert, key, bundle string
}

// writeIdentities makes a CA shaped like the reference server's (ECDSA
// P-256, a spiffe://<td> URI SAN) and an X509-SVID for each of the server
// and the client, written to dir. The server's leaf also names 127.0.0.1,
// so that the plain setup can verify it the usual way, by address.
func writeIdentities(dir, trustDomain string) (server, client identityFiles, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return server, client, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		URIs: []*url.URL{{Scheme: "spiffe", Host: trustDomain}},
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return server, client, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return server, client, err
	}
	bundle := filepath.Join(dir, "bundle.pem")
	if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		return server, client, err
	}
	issue := func(name, path string, serial int64, ips []net.IP) (identityFiles, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return identityFiles{}, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
			BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			URIs:        []*url.URL{{Scheme: "spiffe", Host: trustDomain, Path: path}}, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return identityFiles{}, err
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return identityFiles{}, err
		}
		f := identityFiles{cert: filepath.Join(dir, name+"-cert.pem"), key: filepath.Join(dir, name+"-key.pem"), bundle: bundle}
		if err := os.WriteFile(f.cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
			return identityFiles{}, err
		}
		if err := os.WriteFile(f.key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
			return identityFiles{}, err
		}
		return f, nil
	}
	if server, err = issue("server", "/bench/server", 2, []net.IP{net.IPv4(127, 0, 0, 1)}); err != nil {
		return server, client, fmt.Errorf("server SVID: %w", err)
	}
	if client, err = issue("client", "/bench/client", 3, nil); err != nil {
		return server, client, fmt.Errorf("client SVID: %w", err)
	}
	return server, client, nil
}
