// Command secinfra-proxy is an authorizing mTLS reverse proxy for services
// that carry no secinfra SDK (docs/proxy/):
//
//	secinfra-proxy -config /etc/secinfra-proxy/proxy.yaml
//	secinfra-proxy -config proxy.yaml -check   # validate the file and exit
//
// SIGHUP reloads the routes and upstreams; SIGTERM drains and stops.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/secinfra/secinfra/proxy/config"
	"github.com/secinfra/secinfra/proxy/internal/server"
)

func main() {
	path := flag.String("config", "/etc/secinfra-proxy/proxy.yaml", "the configuration file (YAML or JSON)")
	check := flag.Bool("check", false, "validate the configuration file and exit")
	flag.Parse()
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
