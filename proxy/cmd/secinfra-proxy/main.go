// Command secinfra-proxy is an authorizing mTLS reverse proxy for services
// that carry no secinfra SDK (docs/proxy/):
//
//	secinfra-proxy -config /etc/secinfra-proxy/proxy.yaml
//	secinfra-proxy -config proxy.yaml -check   # validate the file and exit
//	secinfra-proxy -probe http://127.0.0.1:9901/readyz   # exit 0 on HTTP 200 (container probes)
//
// SIGHUP reloads the routes and upstreams; SIGTERM drains and stops.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/secinfra/secinfra/proxy/config"
	"github.com/secinfra/secinfra/proxy/internal/server"
)

func main() {
	path := flag.String("config", "/etc/secinfra-proxy/proxy.yaml", "the configuration file (YAML or JSON)")
	check := flag.Bool("check", false, "validate the configuration file and exit")
	probe := flag.String("probe", "", "GET this admin URL and exit 0 on HTTP 200, else 1 (for container probes)")
	flag.Parse()
	if *probe != "" {
		os.Exit(probeURL(*probe))
	}
	if *check {
		if _, err := config.Load(*path); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println("secinfra-proxy: config ok")
		return
	}
	if err := server.Run(context.Background(), *path, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// probeURL is a health probe for images without a shell or curl.
func probeURL(url string) int {
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "secinfra-proxy: probe:", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "secinfra-proxy: probe:", resp.Status)
		return 1
	}
	return 0
}
