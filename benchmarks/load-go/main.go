// Command load-go drives one HTTPS endpoint over mTLS keep-alive
// connections at a fixed concurrency and prints throughput and latency
// percentiles as JSON. It is the load generator of
// benchmarks/server_load.py: standard library only, bounded by a request
// count and a wall-clock limit, so it always stops by itself.
//
//	load-go -url https://127.0.0.1:8443/v1/authz:check -method POST \
//	    -bodies bodies.jsonl -cert c.pem -key k.pem -ca ca.pem \
//	    -concurrency 8 -requests 4000 -warmup 200 -max-seconds 30
//
// Each of the concurrency workers owns one connection (its own transport),
// so c workers hold exactly c kept-alive connections and no handshake is
// measured after the warm-up. Request bodies, when given, are taken in
// turn from a JSON-lines file, so a run can spread over many objects.
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

type result struct {
	Concurrency   int            `json:"concurrency"`
	Requests      int            `json:"requests"`
	Errors        int            `json:"errors"`
	Statuses      map[string]int `json:"statuses"`
	Seconds       float64        `json:"seconds"`
	ThroughputRPS float64        `json:"throughput_rps"`
	P50Ms         float64        `json:"p50_ms"`
	P99Ms         float64        `json:"p99_ms"`
	MaxMs         float64        `json:"max_ms"`
	StoppedByTime bool           `json:"stopped_by_time"`
}

type settings struct {
	url, method    string
	bodies         [][]byte
	tls            *tls.Config
	concurrency    int
	requests       int
	warmup         int
	maxDuration    time.Duration
	expectStatus   int
	requestTimeout time.Duration
}

func main() {
	var s settings
	var bodies, cert, key, ca string
	var maxSeconds float64
	flag.StringVar(&s.url, "url", "", "the endpoint")
	flag.StringVar(&s.method, "method", http.MethodGet, "HTTP method")
	flag.StringVar(&bodies, "bodies", "", "JSON-lines file of request bodies, used in turn")
	flag.StringVar(&cert, "cert", "", "client certificate (PEM)")
	flag.StringVar(&key, "key", "", "client key (PEM)")
	flag.StringVar(&ca, "ca", "", "trust bundle (PEM)")
	flag.IntVar(&s.concurrency, "concurrency", 1, "workers, one connection each")
	flag.IntVar(&s.requests, "requests", 1000, "measured requests in all")
	flag.IntVar(&s.warmup, "warmup", 100, "unmeasured requests first, spread over the workers")
	flag.Float64Var(&maxSeconds, "max-seconds", 60, "stop the measured phase after this long")
	flag.IntVar(&s.expectStatus, "expect", http.StatusOK, "the status counted as a success")
	flag.Parse()
	s.maxDuration = time.Duration(maxSeconds * float64(time.Second))
	s.requestTimeout = 30 * time.Second
	if err := s.load(bodies, cert, key, ca); err != nil {
		fmt.Fprintln(os.Stderr, "load-go:", err)
		os.Exit(2)
	}
	r, err := run(&s)
	if err != nil {
		fmt.Fprintln(os.Stderr, "load-go:", err)
		os.Exit(1)
	}
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
}

func (s *settings) load(bodies, cert, key, ca string) error {
	if s.url == "" || s.concurrency < 1 || s.requests < 1 {
		return errors.New("give -url, and -concurrency and -requests of at least 1")
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return fmt.Errorf("client identity: %w", err)
	}
	pem, err := os.ReadFile(ca)
	if err != nil {
		return fmt.Errorf("trust bundle: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return errors.New("trust bundle: no certificate in it")
	}
	// The server answers on a loopback IP with a SPIFFE certificate: the
	// chain is verified against the bundle, the host name is not.
	s.tls = &tls.Config{
		Certificates:       []tls.Certificate{pair},
		RootCAs:            roots,
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			return verifyChain(raw, roots)
		},
		MinVersion: tls.VersionTLS12,
	}
	if bodies != "" {
		f, err := os.Open(bodies)
		if err != nil {
			return err
		}
		defer f.Close()
		scan := bufio.NewScanner(f)
		scan.Buffer(make([]byte, 1<<20), 1<<20)
		for scan.Scan() {
			if line := bytes.TrimSpace(scan.Bytes()); len(line) > 0 {
				s.bodies = append(s.bodies, append([]byte(nil), line...))
			}
		}
		if err := scan.Err(); err != nil {
			return err
		}
		if len(s.bodies) == 0 {
			return errors.New("bodies: the file has no line")
		}
	}
	return nil
}

func verifyChain(raw [][]byte, roots *x509.CertPool) error {
	if len(raw) == 0 {
		return errors.New("the server sent no certificate")
	}
	leaf, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return err
	}
	inter := x509.NewCertPool()
	for _, der := range raw[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return err
		}
		inter.AddCert(c)
	}
	_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err
}

func (s *settings) client() *http.Client {
	return &http.Client{
		Timeout: s.requestTimeout,
		Transport: &http.Transport{
			TLSClientConfig:     s.tls,
			MaxConnsPerHost:     1,
			MaxIdleConnsPerHost: 1,
			IdleConnTimeout:     time.Minute,
			ForceAttemptHTTP2:   false,
		},
	}
}

// one sends request i and answers its status.
func (s *settings) one(c *http.Client, i int) (int, error) {
	var body io.Reader
	if len(s.bodies) > 0 {
		body = bytes.NewReader(s.bodies[i%len(s.bodies)])
	}
	req, err := http.NewRequest(s.method, s.url, body)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

func run(s *settings) (result, error) {
	clients := make([]*http.Client, s.concurrency)
	for w := range clients {
		clients[w] = s.client()
	}
	// Warm-up: every worker opens its connection and sends its share.
	var warm sync.WaitGroup
	warmErr := make(chan error, s.concurrency)
	for w, c := range clients {
		warm.Add(1)
		go func(w int, c *http.Client) {
			defer warm.Done()
			for i := 0; i < max(1, s.warmup/s.concurrency); i++ {
				if status, err := s.one(c, w+i*s.concurrency); err != nil || status != s.expectStatus {
					warmErr <- fmt.Errorf("warm-up: status %d, %v", status, err)
					return
				}
			}
		}(w, c)
	}
	warm.Wait()
	close(warmErr)
	if err := <-warmErr; err != nil {
		return result{}, err
	}

	var next atomic.Int64
	deadline := time.Now().Add(s.maxDuration)
	latencies := make([][]time.Duration, s.concurrency)
	statuses := make([]map[int]int, s.concurrency)
	errs := make([]int, s.concurrency)
	var stoppedByTime atomic.Bool
	var wg sync.WaitGroup
	started := time.Now()
	for w, c := range clients {
		wg.Add(1)
		statuses[w] = map[int]int{}
		go func(w int, c *http.Client) {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= s.requests {
					return
				}
				if time.Now().After(deadline) {
					stoppedByTime.Store(true)
					return
				}
				t0 := time.Now()
				status, err := s.one(c, i)
				latencies[w] = append(latencies[w], time.Since(t0))
				if err != nil {
					errs[w]++
					continue
				}
				statuses[w][status]++
			}
		}(w, c)
	}
	wg.Wait()
	elapsed := time.Since(started)
	for _, c := range clients {
		c.CloseIdleConnections()
	}

	r := result{Concurrency: s.concurrency, Statuses: map[string]int{}, Seconds: elapsed.Seconds(),
		StoppedByTime: stoppedByTime.Load()}
	var all []time.Duration
	for w := range clients {
		all = append(all, latencies[w]...)
		r.Errors += errs[w]
		for status, n := range statuses[w] {
			r.Statuses[fmt.Sprint(status)] += n
			if status != s.expectStatus {
				r.Errors += n
			}
		}
	}
	r.Requests = len(all)
	if r.Requests == 0 {
		return r, errors.New("no request was measured")
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	r.ThroughputRPS = float64(r.Requests) / elapsed.Seconds()
	r.P50Ms = ms(all[len(all)/2])
	r.P99Ms = ms(all[min(len(all)-1, len(all)*99/100)])
	r.MaxMs = ms(all[len(all)-1])
	return r, nil
}
