package identity_test

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secinfra/secinfra/sdk-go/identity"
)

// swappable is a Source whose snapshot a test replaces.
type swappable struct {
	*identity.StaticSource
	snap *identity.Snapshot
}

func (s *swappable) Snapshot() *identity.Snapshot { return s.snap }

func TestFileSinkWritesMatchingFilesAtomically(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	ca := newCert(t, nil, nil, true, "spiffe://example.org")
	first := newCert(t, ca, nil, false, "spiffe://example.org/app")
	second := newCert(t, ca, nil, false, "spiffe://example.org/app")
	bundle, _ := identity.ParseBundle(ca.pem)
	snap1, err := identity.NewSnapshot(first.pem, first.key, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	static, err := identity.NewStaticSource(snap1, bundle, "")
	if err != nil {
		t.Fatal(err)
	}
	src := &swappable{StaticSource: static, snap: snap1}
	dir := filepath.Join(t.TempDir(), "identity")
	sink, err := identity.NewFileSink(dir, src)
	if err != nil {
		t.Fatal(err)
	}
	check := func(want *issued) {
		t.Helper()
		pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
		if err != nil {
			t.Fatalf("certificate and key must match: %v", err)
		}
		if string(pair.Certificate[0]) != string(want.cert.Raw) {
			t.Fatal("the files hold another certificate")
		}
		info, err := os.Stat(filepath.Join(dir, "key.pem"))
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Fatalf("key.pem mode %v, want 0600", info.Mode().Perm())
		}
		b, _ := os.ReadFile(filepath.Join(dir, "bundle.pem"))
		if !strings.Contains(string(b), "BEGIN CERTIFICATE") {
			t.Fatal("bundle.pem is not PEM")
		}
		if link, _ := os.Readlink(filepath.Join(dir, "cert.pem")); link != filepath.Join("current", "cert.pem") {
			t.Fatalf("cert.pem links to %q", link)
		}
	}
	if err := sink.Sync(); err != nil {
		t.Fatal(err)
	}
	check(first)
	for range 3 {
		snap2, _ := identity.NewSnapshot(second.pem, second.key, time.Now())
		src.snap = snap2
		sink.Handle(identity.Event{Kind: identity.Renewed})
	}
	check(second)
	entries, _ := os.ReadDir(dir)
	snapshots := 0
	for _, e := range entries {
		if e.IsDir() {
			snapshots++
		}
	}
	if snapshots > 2 {
		t.Fatalf("old snapshot directories are not pruned: %d left", snapshots)
	}
}
