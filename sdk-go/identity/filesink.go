package identity

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// File names of the sink's layout (spec 9.9.5).
const (
	CertFileName   = "cert.pem"
	KeyFileName    = "key.pem"
	BundleFileName = "bundle.pem"
	CurrentLink    = "current"
	snapshotPrefix = ".snapshot-"
)

// FileSink keeps a source's identity and bundle in a directory for software
// that reads PEM files (spec 9.9). Each change is written in full to a new,
// synced snapshot directory, then published by one rename of the "current"
// symlink; cert.pem, key.pem and bundle.pem are symlinks through "current",
// so a reader always finds a matching certificate and key. The key file is
// 0600 from its creation. It is off unless the application creates one.
type FileSink struct {
	dir    string
	source Source
	mu     sync.Mutex
	seq    int
}

// NewFileSink returns a sink writing source's snapshots into dir (created
// 0700 when missing). Call Sync once, then subscribe Handle to rotation events.
func NewFileSink(dir string, source Source) (*FileSink, error) {
	if dir == "" || source == nil {
		return nil, errors.New("secinfra: identity: a file sink needs a directory and a source")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("secinfra: identity: file sink: %w", err)
	}
	return &FileSink{dir: dir, source: source}, nil
}

// Handle writes the source's current snapshot after an event; a failure is
// logged and never stops rotation (spec 9.9.7).
func (s *FileSink) Handle(e Event) {
	if e.Kind == RenewalFailed || e.Kind == Expired {
		return
	}
	if err := s.Sync(); err != nil {
		log.Printf("secinfra: identity: file sink: %v", err)
	}
}

// Sync writes the source's current snapshot and bundle (never an older one:
// it always reads the source, spec 9.9.6).
func (s *FileSink) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap, bundle := s.source.Snapshot(), s.source.Bundle()
	if snap == nil || bundle == nil {
		return errors.New("secinfra: identity: file sink: no identity yet")
	}
	key, err := snap.KeyPEM()
	if err != nil {
		return err
	}
	s.seq++
	name := fmt.Sprintf("%s%d-%d-%s", snapshotPrefix, time.Now().UnixNano(), s.seq, snap.Serial)
	snapDir := filepath.Join(s.dir, name)
	if err := os.Mkdir(snapDir, 0o700); err != nil {
		return fmt.Errorf("secinfra: identity: file sink: %w", err)
	}
	// Key first, then certificate (spec 9.9.5), each synced.
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{KeyFileName, key, 0o600}, {CertFileName, snap.ChainPEM(), 0o644}, {BundleFileName, bundle.PEM(), 0o644}} {
		if err := writeSynced(filepath.Join(snapDir, f.name), f.data, f.mode); err != nil {
			_ = os.RemoveAll(snapDir)
			return err
		}
	}
	if err := syncDir(snapDir); err != nil {
		return err
	}
	if err := replaceSymlink(s.dir, CurrentLink, name); err != nil {
		return err
	}
	for _, f := range []string{CertFileName, KeyFileName, BundleFileName} {
		target := filepath.Join(CurrentLink, f)
		if got, err := os.Readlink(filepath.Join(s.dir, f)); err == nil && got == target {
			continue
		}
		if err := replaceSymlink(s.dir, f, target); err != nil {
			return err
		}
	}
	if err := syncDir(s.dir); err != nil {
		return err
	}
	s.prune(name)
	return nil
}

// prune removes snapshot directories older than the current and the one before.
func (s *FileSink) prune(current string) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return
	}
	var snaps []string
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), snapshotPrefix) && e.Name() != current {
			snaps = append(snaps, e.Name())
		}
	}
	// Names sort by creation time; keep the newest older one for readers mid-read.
	for i := 0; i < len(snaps)-1; i++ {
		_ = os.RemoveAll(filepath.Join(s.dir, snaps[i]))
	}
}

func writeSynced(path string, data []byte, mode os.FileMode) error {
	// Created with mode (O_EXCL: never an existing file), then chmod'ed so the
	// umask cannot widen or narrow it.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("secinfra: identity: file sink: %w", err)
	}
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("secinfra: identity: file sink: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("secinfra: identity: file sink: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("secinfra: identity: file sink: %w", err)
	}
	return nil
}

// replaceSymlink points dir/name at target atomically (symlink + rename).
func replaceSymlink(dir, name, target string) error {
	tmp := filepath.Join(dir, "."+name+".tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("secinfra: identity: file sink: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("secinfra: identity: file sink: %w", err)
	}
	return nil
}
