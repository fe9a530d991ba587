package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// stepTimeout bounds each handshake and request, so the benchmark always ends.
const stepTimeout = 10 * time.Second

// handshakesPerSecond makes n new connections one after another, each a
// full handshake (the client keeps no session cache), and counts one done
// when the client has read the byte the server writes after its own side
// of the handshake, client-certificate verification included.
func handshakesPerSecond(s *setup, n int) (rate, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return rate{}, err
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(stepTimeout))
				tc := tls.Server(c, s.server)
				if tc.Handshake() == nil {
					_, _ = tc.Write([]byte{1})
				}
			}()
		}
	}()
	dialer := &tls.Dialer{Config: s.client}
	one := make([]byte, 1)
	return measure(n, func() error {
		for i := 0; i < n; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
			c, err := dialer.DialContext(ctx, "tcp", ln.Addr().String())
			cancel()
			if err != nil {
				return fmt.Errorf("%s handshake: %w", s.name, err)
			}
			_ = c.SetDeadline(time.Now().Add(stepTimeout))
			_, err = io.ReadFull(c, one)
			c.Close()
			if err != nil {
				return fmt.Errorf("%s handshake: %w", s.name, err)
			}
		}
		return nil
	})
}

// requestsPerSecond sends n GETs one after another over one kept-alive
// connection (after one request that makes it) to a handler that answers
// the client's SPIFFE ID, and returns the rate and the HTTP protocol used.
func requestsPerSecond(s *setup, n int) (rate, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return rate{}, "", err
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, s.peerID(r)) }),
		TLSConfig:         s.server,
		ReadHeaderTimeout: stepTimeout,
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	defer srv.Close()
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = s.client
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: stepTimeout}
	url := "https://" + ln.Addr().String() + "/"
	get := func() (string, error) {
		resp, err := client.Get(url)
		if err != nil {
			return "", fmt.Errorf("%s request: %w", s.name, err)
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return "", fmt.Errorf("%s request: %w", s.name, err)
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("%s request: HTTP %d", s.name, resp.StatusCode)
		}
		return resp.Proto, nil
	}
	proto, err := get()
	if err != nil {
		return rate{}, "", err
	}
	r, err := measure(n, func() error {
		for i := 0; i < n; i++ {
			if _, err := get(); err != nil {
				return err
			}
		}
		return nil
	})
	return r, proto, err
}
