package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/secinfra/secinfra/proxy/config"
)

const valid = `
server: https://secinfra.internal:8443
trust_bundle_file: bundle.pem
identity:
  spiffe_id: spiffe://secinfra.local/proxy/dash
  join_token_file: /run/secrets/token
listen: 0.0.0.0:8443
admin_listen: 127.0.0.1:9901
upstreams:
  dash:
    url: http://127.0.0.1:3000
  sock:
    url: unix:///run/app.sock
    protocol: h2c
routes:
  - name: dashboards
    host: dash.internal
    path: /d/{name}/{rest...}
    methods: [GET]
    upstream: dash
    authz: {relation: viewer, object: "dashboard:{name}"}
  - name: people
    path: /
    upstream: sock
    allow: {path_prefixes: [/user/]}
`

func TestParseValid(t *testing.T) {
	c, err := config.Parse([]byte(valid), "/etc/secinfra-proxy")
	if err != nil {
		t.Fatal(err)
	}
	if c.TrustDomain != "secinfra.local" || c.TrustBundleFile != "/etc/secinfra-proxy/bundle.pem" {
		t.Fatalf("trust domain %q, bundle %q", c.TrustDomain, c.TrustBundleFile)
	}
	if u := c.Upstreams["sock"]; u.Network != "unix" || u.Address != "/run/app.sock" {
		t.Fatalf("unix upstream: %+v", u)
	}
	if u := c.Upstreams["dash"]; u.Network != "tcp" || u.Address != "127.0.0.1:3000" || u.Protocol != config.ProtocolHTTP1 {
		t.Fatalf("tcp upstream: %+v", u)
	}
	r := c.Routes[0]
	if r.OnAuthzError != config.OnAuthzErrorDeny || r.MaxBodyBytes != config.DefaultMaxBodyBytes {
		t.Fatalf("defaults: %+v", r)
	}
	if c.AuthzTimeout.D() != config.DefaultAuthzTimeout || c.Timeouts.UpstreamHeader.D() != 30*time.Second {
		t.Fatalf("timeout defaults: %+v %+v", c.AuthzTimeout, c.Timeouts)
	}
}

// Every invalid file is refused with the key path and what to fix.
func TestParseRefuses(t *testing.T) {
	tests := []struct {
		name    string
		old     string // replaced in valid
		new     string
		wantErr string
	}{
		{"unknown key", "listen: 0.0.0.0:8443", "listen: 0.0.0.0:8443\nlisten_port: 1", "field listen_port not found"},
		{"unknown route key", "    upstream: dash\n", "    upstream: dash\n    timeout: 2s\n", "field timeout not found"},
		{"template names no path parameter", `dashboard:{name}`, `dashboard:{id}`,
			"routes[0].authz.object: {id} is not a parameter of the route's path (it has: name, rest)"},
		{"unmatched brace", `dashboard:{name}`, `dashboard:{name`, "routes[0].authz.object: \"dashboard:{name\" has an unmatched"},
		{"object without type", `dashboard:{name}`, `{name}`, "is not type:id"},
		{"bad relation", "relation: viewer", "relation: Viewer!", "routes[0].authz.relation"},
		{"partial segment parameter", "/d/{name}/{rest...}", "/d/x{name}", "a parameter is a whole segment"},
		{"rest not last", "/d/{name}/{rest...}", "/d/{rest...}/{name}", "{rest...} must be the last segment"},
		{"unknown upstream", "    upstream: dash\n", "    upstream: dahs\n", `routes[0].upstream: "dahs" is not a name under upstreams (have: dash, sock)`},
		{"upstream with a path", "http://127.0.0.1:3000", "http://127.0.0.1:3000/app", "upstreams.dash.url"},
		{"upstream without a port", "http://127.0.0.1:3000", "http://127.0.0.1", "is not http://host:port"},
		{"https upstream", "http://127.0.0.1:3000", "https://127.0.0.1:3000", "the scheme must be http or unix"},
		{"relative socket", "unix:///run/app.sock", "unix://run/app.sock", "is not unix:///absolute/path.sock"},
		{"bad protocol", "protocol: h2c", "protocol: h3", `upstreams.sock.protocol: "h3" is not http1 or h2c`},
		{"admin not on loopback", "admin_listen: 127.0.0.1:9901", "admin_listen: 0.0.0.0:9901", "is not a loopback address"},
		{"plain http server", "https://secinfra.internal:8443", "http://secinfra.internal:8443", "server:"},
		{"both allow and authz", "    allow: {path_prefixes: [/user/]}", "    allow: {path_prefixes: [/user/]}\n    authz: {relation: viewer, object: \"x:y\"}",
			"routes[1]: give exactly one of allow"},
		{"neither", "    allow: {path_prefixes: [/user/]}\n", "", "routes[1]: give exactly one of allow"},
		{"foreign allowed id", "allow: {path_prefixes: [/user/]}", "allow: {spiffe_ids: [spiffe://other.org/app]}",
			"is not of the trust domain secinfra.local"},
		{"malformed allowed id", "allow: {path_prefixes: [/user/]}", "allow: {spiffe_ids: [spiffe://secinfra.local/a//b]}",
			"routes[1].allow.spiffe_ids[0]"},
		{"bad prefix", "allow: {path_prefixes: [/user/]}", "allow: {path_prefixes: [user]}", "routes[1].allow.path_prefixes[0]"},
		{"allow on error without authz", "allow: {path_prefixes: [/user/]}", "allow: {path_prefixes: [/user/]}\n    on_authz_error: allow",
			"allow only applies to a route with authz"},
		{"bad on_authz_error", "authz: {relation: viewer", "on_authz_error: open\n    authz: {relation: viewer", `"open" is not deny or allow`},
		{"bad duration", "listen: 0.0.0.0:8443", "listen: 0.0.0.0:8443\nauthz_timeout: soon", `"soon" is not a positive duration`},
		{"duplicate route name", "name: people", "name: dashboards", `"dashboards" is already the name of routes[0]`},
		{"no identity", "  join_token_file: /run/secrets/token\n", "", "give exactly one of join_token_file or jwt_file"},
		{"two routes for the same requests", "    path: /\n", "    path: /d/{x}/{y...}\n    methods: [GET]\n    host: dash.internal\n",
			"routes[1].path: pattern \"GET dash.internal/d/{x}/{y...}\""},
		{"lowercase method", "methods: [GET]", "methods: [get]", `"get" is not an uppercase HTTP method`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(valid, tt.old) {
				t.Fatalf("the test's %q is not in the valid file", tt.old)
			}
			_, err := config.Parse([]byte(strings.Replace(valid, tt.old, tt.new, 1)), "")
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
