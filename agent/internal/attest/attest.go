// Package attest tells who is calling on the Workload API socket: the
// kernel's peer credentials of the connection (SO_PEERCRED: pid, uid, gid,
// taken when the caller connected) and, from /proc, the caller's binary and
// its SHA-256. The result is the caller's selectors, in the form entries use
// (type "unix", value "uid:1000").
package attest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"

	"google.golang.org/grpc/credentials"
)

// Selector is one observed property of a caller.
type Selector struct{ Type, Value string }

func (s Selector) String() string { return s.Type + ":" + s.Value }

// Caller is the peer of one connection.
type Caller struct {
	PID      int32
	UID, GID uint32
}

// AuthInfo carries the caller into gRPC handlers (peer.FromContext).
type AuthInfo struct {
	credentials.CommonAuthInfo
	Caller Caller
}

// AuthType names this kind of authentication.
func (AuthInfo) AuthType() string { return "unix-peercred" }

// PeerCredentials is a gRPC TransportCredentials for a Unix socket: no
// encryption (the socket is local), the kernel's credentials of the peer.
type PeerCredentials struct{}

var _ credentials.TransportCredentials = PeerCredentials{}

// ServerHandshake reads SO_PEERCRED of the accepted connection.
func (PeerCredentials) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	unix, ok := conn.(*net.UnixConn)
	if !ok {
		return nil, nil, errors.New("secinfra-agent: attest: the Workload API serves Unix sockets only")
	}
	raw, err := unix.SyscallConn()
	if err != nil {
		return nil, nil, err
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return nil, nil, err
	}
	if credErr != nil {
		return nil, nil, fmt.Errorf("secinfra-agent: attest: SO_PEERCRED: %w", credErr)
	}
	info := AuthInfo{
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity},
		Caller:         Caller{PID: cred.Pid, UID: cred.Uid, GID: cred.Gid},
	}
	return conn, info, nil
}

// ClientHandshake is not used: the agent only serves.
func (PeerCredentials) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("secinfra-agent: attest: client side not supported")
}

// Info describes the credentials.
func (PeerCredentials) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "unix-peercred"}
}

// Clone returns the same (stateless) credentials.
func (c PeerCredentials) Clone() credentials.TransportCredentials { return c }

// OverrideServerName is deprecated in gRPC and a no-op here.
func (PeerCredentials) OverrideServerName(string) error { return nil }

// Selectors are the caller's selectors: uid and gid always; path and sha256
// of its binary when /proc shows it (a caller that exited, or a binary the
// agent may not read, gives none of those two, so entries that need them do
// not match). procRoot is "/proc" outside tests.
func Selectors(c Caller, procRoot string) []Selector {
	out := []Selector{
		{"unix", "uid:" + strconv.FormatUint(uint64(c.UID), 10)},
		{"unix", "gid:" + strconv.FormatUint(uint64(c.GID), 10)},
	}
	exe := fmt.Sprintf("%s/%d/exe", procRoot, c.PID)
	path, err := os.Readlink(exe)
	if err != nil {
		return out
	}
	out = append(out, Selector{"unix", "path:" + path})
	if sum, err := fileSHA256(exe); err == nil {
		out = append(out, Selector{"unix", "sha256:" + sum})
	}
	return out
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
