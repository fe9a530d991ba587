package server

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	secinfra "github.com/secinfra/secinfra/sdk-go"
	"github.com/secinfra/secinfra/sdk-go/gen/secinfrav1"
	"github.com/secinfra/secinfra/sdk-go/rpc"
)

// revocations is the server's CRL as a set of revoked serials (lowercase
// hex, as the SDK's snapshots spell them), refreshed on a timer. The
// server lists in it every revoked serial and every unexpired certificate
// of a revoked SPIFFE ID, so this set covers both kinds of revocation.
type revocations struct {
	client  *secinfra.Client
	every   time.Duration
	log     *slog.Logger
	current atomic.Pointer[revokedSet]
}

type revokedSet struct {
	serials map[string]struct{}
	fetched time.Time
}

func newRevocations(client *secinfra.Client, every time.Duration, log *slog.Logger) *revocations {
	return &revocations{client: client, every: every, log: log}
}

// revoked reports whether serial is on the last CRL fetched.
func (r *revocations) revoked(serial string) bool {
	set := r.current.Load()
	if set == nil {
		return false
	}
	_, ok := set.serials[serial]
	return ok
}

// loaded reports whether a CRL was fetched at least once.
func (r *revocations) loaded() bool { return r.current.Load() != nil }

// age is how long ago the last CRL was fetched.
func (r *revocations) age(now time.Time) time.Duration {
	set := r.current.Load()
	if set == nil {
		return -1
	}
	return now.Sub(set.fetched)
}

// run fetches the CRL now and then every r.every until ctx ends. A failed
// fetch keeps the last set (revocations are never forgotten for a
// network error) and is logged.
func (r *revocations) run(ctx context.Context) {
	ticker := time.NewTicker(r.every)
	defer ticker.Stop()
	for {
		if err := r.refresh(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("crl refresh failed; keeping the last revocation list", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// refresh fetches, verifies and installs the CRL.
func (r *revocations) refresh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.every)
	defer cancel()
	resp, err := r.client.Identity.GetCrl(ctx, &secinfrav1.GetCrlRequest{}, rpc.WithUseCache(false))
	if err != nil {
		return err
	}
	serials, err := parseCRLs([]byte(resp.CRLPEM), r.client.Source().Bundle().CAs)
	if err != nil {
		return err
	}
	r.current.Store(&revokedSet{serials: serials, fetched: time.Now()})
	return nil
}

// parseCRLs reads concatenated PEM CRLs, each of which must be signed by
// one of cas, and returns every serial they list.
func parseCRLs(data []byte, cas []*x509.Certificate) (map[string]struct{}, error) {
	serials := map[string]struct{}{}
	found := 0
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "X509 CRL" {
			continue
		}
		crl, err := x509.ParseRevocationList(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("secinfra-proxy: crl: %w", err)
		}
		if !signedByOneOf(crl, cas) {
			return nil, errors.New("secinfra-proxy: crl: a CRL is not signed by a CA of the trust bundle; ignoring the whole list")
		}
		for _, entry := range crl.RevokedCertificateEntries {
			serials[strings.ToLower(entry.SerialNumber.Text(16))] = struct{}{}
		}
		found++
	}
	if found == 0 {
		return nil, errors.New("secinfra-proxy: crl: the server sent no CRL")
	}
	return serials, nil
}

func signedByOneOf(crl *x509.RevocationList, cas []*x509.Certificate) bool {
	for _, ca := range cas {
		if crl.CheckSignatureFrom(ca) == nil {
			return true
		}
	}
	return false
}
