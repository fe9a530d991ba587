// Command mtls-go measures the Go SDK's mTLS configurations (package mtls)
// against Go's plain TLS setup with static files, in one run, as JSON:
//
//		go -C benchmarks/mtls-go run . [--handshakes N] [--requests M] [--rounds R] [--out FILE]
//
//	  - full_handshakes_per_second: new connections one after another, each
//	    a full mutual handshake with verification on both sides;
//	  - keepalive_requests_per_second: GETs over one kept-alive connection,
//	    the handler reading the client's SPIFFE ID.
//
// Both setups load the same certificate, key and bundle files (an ECDSA
// P-256 CA and X509-SVIDs made for the run). Each metric is given per
// wall-clock second and per CPU second of this process (client and server
// both run in it): on a shared machine the first moves with other work,
// the second much less. Rounds alternate which setup goes first, each
// figure is the median over rounds, and ratio is sdk / plain (the target
// is >= 0.9).
// Bounded: R rounds of N handshakes and M requests per setup.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
)

// targetRatio is issue 16's bar: the SDK at least 90 % of plain TLS.
const targetRatio = 0.9

const trustDomain = "bench.secinfra.local"

// comparison is one metric for both setups.
type comparison struct {
	PerSecond    rates  `json:"per_second"`
	PerCPUSecond rates  `json:"per_cpu_second"`
	Protocol     string `json:"protocol,omitempty"`
	wall, cpu    map[string][]float64
}

// rates are the medians for both setups and their ratio, with every round's.
type rates struct {
	Plain  float64              `json:"plain"`
	SDK    float64              `json:"sdk"`
	Ratio  float64              `json:"ratio"`
	Rounds map[string][]float64 `json:"rounds"`
}

func newComparison() *comparison {
	return &comparison{wall: map[string][]float64{}, cpu: map[string][]float64{}}
}

func (c *comparison) add(setup string, r rate) {
	c.wall[setup] = append(c.wall[setup], float64(int64(r.wall)))
	c.cpu[setup] = append(c.cpu[setup], float64(int64(r.cpu)))
}

func (c *comparison) summarize() {
	c.PerSecond, c.PerCPUSecond = summary(c.wall), summary(c.cpu)
}

func summary(rounds map[string][]float64) rates {
	r := rates{Plain: median(rounds["plain"]), SDK: median(rounds["sdk"]), Rounds: rounds}
	r.Ratio = float64(int64(r.SDK/r.Plain*1000)) / 1000
	return r
}

func main() {
	handshakes := flag.Int("handshakes", 1000, "full handshakes per setup and round")
	requests := flag.Int("requests", 10000, "kept-alive requests per setup and round")
	rounds := flag.Int("rounds", 7, "rounds; each figure is the median")
	out := flag.String("out", "", "also write the JSON here")
	flag.Parse()
	if err := run(*handshakes, *requests, *rounds, *out); err != nil {
		fmt.Fprintln(os.Stderr, "mtls-go:", err)
		os.Exit(1)
	}
}

func run(handshakeCount, requestCount, rounds int, out string) error {
	if handshakeCount < 1 || requestCount < 1 || rounds < 1 {
		return fmt.Errorf("--handshakes, --requests and --rounds must be at least 1")
	}
	dir, err := os.MkdirTemp("", "mtls-go-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	serverFiles, clientFiles, err := writeIdentities(dir, trustDomain)
	if err != nil {
		return err
	}
	plain, err := plainSetup(serverFiles, clientFiles)
	if err != nil {
		return err
	}
	sdk, err := sdkSetup(serverFiles, clientFiles, trustDomain)
	if err != nil {
		return err
	}
	handshakes, keepalive := newComparison(), newComparison()
	for r := 0; r < rounds; r++ {
		order := []*setup{plain, sdk}
		if r%2 == 1 {
			order = []*setup{sdk, plain}
		}
		for _, s := range order {
			rate, err := handshakesPerSecond(s, handshakeCount)
			if err != nil {
				return err
			}
			handshakes.add(s.name, rate)
			rate, proto, err := requestsPerSecond(s, requestCount)
			if err != nil {
				return err
			}
			keepalive.add(s.name, rate)
			keepalive.Protocol = proto
		}
	}
	handshakes.summarize()
	keepalive.summarize()
	report := map[string]any{
		"benchmark":                     "mtls_go",
		"go":                            runtime.Version(),
		"machine":                       runtime.GOARCH,
		"cpus":                          runtime.NumCPU(),
		"rounds":                        rounds,
		"handshakes_per_round":          handshakeCount,
		"requests_per_round":            requestCount,
		"target_ratio":                  targetRatio,
		"full_handshakes_per_second":    handshakes,
		"keepalive_requests_per_second": keepalive,
	}
	text, err := json.MarshalIndent(report, "", "  ")
	if err != nil {
		return err
	}
	fmt.Println(string(text))
	if out != "" {
		return os.WriteFile(out, append(text, '\n'), 0o644)
	}
	return nil
}

// median of the per-round rates.
func median(rates []float64) float64 {
	s := slices.Clone(rates)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
