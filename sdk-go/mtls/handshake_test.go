package mtls_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"
)

// handshakeTimeout bounds every step of a test handshake.
const handshakeTimeout = 10 * time.Second

// result is what each side of one test connection saw.
type result struct {
	serverErr, clientErr error
	// serverSaw and clientSaw are the peer certificates each side got.
	serverSaw, clientSaw tls.ConnectionState
}

// handshake makes one TLS connection over loopback between a server and a
// client configuration. The server writes a byte once its handshake
// succeeded and the client reads it, so that a client certificate the
// server refuses after a TLS 1.3 client finished shows on the client too.
func handshake(t *testing.T, server, client *tls.Config) result {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type served struct {
		err   error
		state tls.ConnectionState
	}
	done := make(chan served, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- served{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
		tc := tls.Server(c, server)
		err = tc.Handshake()
		if err == nil {
			_, err = tc.Write([]byte{1})
		}
		done <- served{err: err, state: tc.ConnectionState()}
	}()
	var r result
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	d := tls.Dialer{Config: client}
	c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err == nil {
		_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
		_, err = io.ReadFull(c, make([]byte, 1))
		r.clientSaw = c.(*tls.Conn).ConnectionState()
		c.Close()
	}
	r.clientErr = err
	s := <-done
	r.serverErr, r.serverSaw = s.err, s.state
	return r
}
