// Package config reads and validates secinfra-proxy's one configuration
// file (YAML; JSON is YAML too). Load refuses unknown keys, malformed
// SPIFFE IDs, object templates that name a path parameter the route's path
// does not have, and upstream addresses that cannot be dialled, and says
// where: every error starts with the file and the key path
// ("routes[2].authz.object: ...").
package config

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/secinfra/secinfra/sdk-go/identity"
	"github.com/secinfra/secinfra/sdk-go/mtls"
	"go.yaml.in/yaml/v3"
)

// Defaults of every optional setting.
const (
	DefaultReadHeaderTimeout     = 10 * time.Second
	DefaultIdleTimeout           = 120 * time.Second
	DefaultUpstreamHeaderTimeout = 30 * time.Second
	DefaultDialTimeout           = 5 * time.Second
	DefaultAuthzTimeout          = 2 * time.Second
	DefaultMaxBodyBytes          = 10 << 20
	DefaultRevocationRefresh     = 30 * time.Second
	DefaultShutdownGrace         = 20 * time.Second
)

// The values of a route's on_authz_error.
const (
	OnAuthzErrorDeny  = "deny"
	OnAuthzErrorAllow = "allow"
)

// The values of an upstream's protocol.
const (
	ProtocolHTTP1 = "http1"
	ProtocolH2C   = "h2c"
)

// Config is the whole file.
type Config struct {
	// Server is the secinfra server's URL (https://host:port).
	Server string `yaml:"server"`
	// TrustBundleFile is the PEM trust bundle to start from (the server's
	// bundle.pem); the proxy then follows the server's bundle.
	TrustBundleFile string `yaml:"trust_bundle_file"`
	// Identity says how the proxy enrols for its own SVID.
	Identity Identity `yaml:"identity"`
	// Listen is the mTLS listener's address (host:port).
	Listen string `yaml:"listen"`
	// AdminListen serves /healthz, /readyz and /metrics over plain HTTP;
	// it must be a loopback address.
	AdminListen string `yaml:"admin_listen"`
	// Timeouts of the listener and the upstreams.
	Timeouts Timeouts `yaml:"timeouts"`
	// AuthzTimeout bounds one authorization check, retries included.
	AuthzTimeout Duration `yaml:"authz_timeout"`
	// RevocationRefresh is how often the CRL is fetched.
	RevocationRefresh Duration `yaml:"revocation_refresh"`
	// Upstreams by name.
	Upstreams map[string]*Upstream `yaml:"upstreams"`
	// Routes, matched by host, method and path.
	Routes []*Route `yaml:"routes"`

	// TrustDomain is the trust domain of identity.spiffe_id: the one
	// whose members may connect.
	TrustDomain string `yaml:"-"`
}

// Identity is how the proxy gets its SVID: a one-time join token, or a
// JWT attestation re-read from a file at every enrolment (a Kubernetes
// projected service-account token).
type Identity struct {
	// SpiffeID is the ID the proxy is enrolled as; it names the trust domain.
	SpiffeID string `yaml:"spiffe_id"`
	// JoinTokenFile holds a one-time join token.
	JoinTokenFile string `yaml:"join_token_file"`
	// JWTFile holds a JWT, read again on every (re-)enrolment.
	JWTFile string `yaml:"jwt_file"`
}

// Timeouts of the listener and the upstreams.
type Timeouts struct {
	ReadHeader     Duration `yaml:"read_header"`
	Idle           Duration `yaml:"idle"`
	UpstreamHeader Duration `yaml:"upstream_header"`
	Dial           Duration `yaml:"dial"`
	ShutdownGrace  Duration `yaml:"shutdown_grace"`
}

// Upstream is where requests go.
type Upstream struct {
	// URL is http://host:port or unix:///absolute/path.sock.
	URL string `yaml:"url"`
	// Protocol is http1 (default; WebSockets need it) or h2c.
	Protocol string `yaml:"protocol"`

	// Network and Address are what to dial ("tcp" or "unix").
	Network string `yaml:"-"`
	Address string `yaml:"-"`
}

// Route is one rule: which requests it matches, who may make them, and
// where they go.
type Route struct {
	// Name names the route in logs, metrics and the Secinfra-Route header.
	Name string `yaml:"name"`
	// Host matches the Host header without its port ("" matches any).
	Host string `yaml:"host"`
	// Path is a path pattern: literal segments, {name} for one segment,
	// {name...} at the end for the rest (Go's http.ServeMux syntax).
	Path string `yaml:"path"`
	// Methods matched (empty: every method).
	Methods []string `yaml:"methods"`
	// Upstream is the name of an entry of upstreams.
	Upstream string `yaml:"upstream"`
	// Allow is a set of callers that may use the route without a check.
	Allow *Allow `yaml:"allow"`
	// Authz is a check that must hold for the caller.
	Authz *Authz `yaml:"authz"`
	// OnAuthzError is deny (default) or allow: what to do when the
	// authorization service cannot answer.
	OnAuthzError string `yaml:"on_authz_error"`
	// MaxBodyBytes caps the request body (default 10 MiB; 0 default).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
}

// Allow lists callers by SPIFFE ID, or by path prefix within the trust
// domain ("/user/" admits every person with a user certificate).
type Allow struct {
	SpiffeIDs    []string `yaml:"spiffe_ids"`
	PathPrefixes []string `yaml:"path_prefixes"`
}

// Authz is a relation the caller must have on an object.
type Authz struct {
	// Relation, e.g. viewer.
	Relation string `yaml:"relation"`
	// Object is type:id, where id may hold {param} from the path, e.g.
	// dashboard:{name}.
	Object string `yaml:"object"`
}

// Duration is a time.Duration written as Go writes one ("2s", "150ms").
type Duration time.Duration

// UnmarshalYAML parses a duration string.
func (d *Duration) UnmarshalYAML(node *yaml.Node) error {
	var text string
	if err := node.Decode(&text); err != nil {
		return fmt.Errorf("line %d: a duration is a string such as \"2s\" or \"150ms\"", node.Line)
	}
	v, err := time.ParseDuration(text)
	if err != nil || v <= 0 {
		return fmt.Errorf("line %d: %q is not a positive duration (such as \"2s\" or \"150ms\")", node.Line, text)
	}
	*d = Duration(v)
	return nil
}

// D is d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Load reads, strictly decodes and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("secinfra-proxy: config: %w", err)
	}
	c, err := Parse(data, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("secinfra-proxy: config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes and validates data; relative file names are taken from dir.
func Parse(data []byte, dir string) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	c := &Config{}
	if err := dec.Decode(c); err != nil {
		return nil, fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if err := c.validate(dir); err != nil {
		return nil, err
	}
	return c, nil
}

// fieldError names the key path of a bad value.
func fieldError(field, format string, args ...any) error {
	return fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...))
}

func (c *Config) validate(dir string) error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(checkServerURL(c.Server))
	if c.TrustBundleFile == "" {
		add(fieldError("trust_bundle_file", "required: the secinfra server's trust bundle (PEM)"))
	} else {
		c.TrustBundleFile = resolve(dir, c.TrustBundleFile)
	}
	add(c.Identity.validate(dir))
	c.TrustDomain, _ = identity.TrustDomainOf(c.Identity.SpiffeID)
	add(checkListen("listen", c.Listen, false))
	add(checkListen("admin_listen", c.AdminListen, true))
	c.Timeouts.defaults()
	setDefault(&c.AuthzTimeout, DefaultAuthzTimeout)
	setDefault(&c.RevocationRefresh, DefaultRevocationRefresh)
	if len(c.Upstreams) == 0 {
		add(fieldError("upstreams", "at least one upstream is required"))
	}
	for _, name := range sortedKeys(c.Upstreams) {
		add(c.Upstreams[name].validate("upstreams."+name, dir))
	}
	if len(c.Routes) == 0 {
		add(fieldError("routes", "at least one route is required; the proxy forwards nothing without one"))
	}
	names := map[string]int{}
	patterns := http.NewServeMux() // finds two routes that match the same requests
	for i, r := range c.Routes {
		field := fmt.Sprintf("routes[%d]", i)
		if r == nil {
			add(fieldError(field, "empty route"))
			continue
		}
		if j, dup := names[r.Name]; dup && r.Name != "" {
			add(fieldError(field+".name", "%q is already the name of routes[%d]", r.Name, j))
		}
		names[r.Name] = i
		if err := r.validate(field, c); err != nil {
			add(err)
			continue
		}
		add(checkConflicts(patterns, field, r))
	}
	return errors.Join(errs...)
}

func setDefault(d *Duration, v time.Duration) {
	if *d == 0 {
		*d = Duration(v)
	}
}

func (t *Timeouts) defaults() {
	setDefault(&t.ReadHeader, DefaultReadHeaderTimeout)
	setDefault(&t.Idle, DefaultIdleTimeout)
	setDefault(&t.UpstreamHeader, DefaultUpstreamHeaderTimeout)
	setDefault(&t.Dial, DefaultDialTimeout)
	setDefault(&t.ShutdownGrace, DefaultShutdownGrace)
}

func resolve(dir, name string) string {
	if filepath.IsAbs(name) || dir == "" {
		return name
	}
	return filepath.Join(dir, name)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func checkServerURL(raw string) error {
	if raw == "" {
		return fieldError("server", "required: the secinfra server's URL, https://host:port")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return fieldError("server", "%q is not an https://host:port URL", raw)
	}
	return nil
}

func checkListen(field, addr string, loopback bool) error {
	if addr == "" {
		return fieldError(field, "required: host:port to listen on")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return fieldError(field, "%q is not host:port", addr)
	}
	if loopback {
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fieldError(field, "%q is not a loopback address; the admin endpoints are unauthenticated, serve them on 127.0.0.1 or ::1", addr)
		}
	}
	return nil
}

func (id *Identity) validate(dir string) error {
	if err := mtls.CheckAuthorizer(mtls.AuthorizeID(id.SpiffeID)); err != nil {
		return fieldError("identity.spiffe_id", "%v", err)
	}
	if (id.JoinTokenFile == "") == (id.JWTFile == "") {
		return fieldError("identity", "give exactly one of join_token_file or jwt_file")
	}
	if id.JoinTokenFile != "" {
		id.JoinTokenFile = resolve(dir, id.JoinTokenFile)
	}
	if id.JWTFile != "" {
		id.JWTFile = resolve(dir, id.JWTFile)
	}
	return nil
}

func (u *Upstream) validate(field, dir string) error {
	if u == nil {
		return fieldError(field, "empty upstream; give url")
	}
	switch u.Protocol {
	case "":
		u.Protocol = ProtocolHTTP1
	case ProtocolHTTP1, ProtocolH2C:
	default:
		return fieldError(field+".protocol", "%q is not http1 or h2c", u.Protocol)
	}
	parsed, err := url.Parse(u.URL)
	if err != nil {
		return fieldError(field+".url", "%q is not a URL: http://host:port or unix:///path.sock", u.URL)
	}
	switch parsed.Scheme {
	case "http":
		host, port, err := net.SplitHostPort(parsed.Host)
		if err != nil || host == "" || port == "" || (parsed.Path != "" && parsed.Path != "/") || parsed.RawQuery != "" {
			return fieldError(field+".url", "%q is not http://host:port (no path, no query)", u.URL)
		}
		u.Network, u.Address = "tcp", parsed.Host
	case "unix":
		if parsed.Host != "" || !filepath.IsAbs(parsed.Path) {
			return fieldError(field+".url", "%q is not unix:///absolute/path.sock", u.URL)
		}
		u.Network, u.Address = "unix", parsed.Path
	default:
		return fieldError(field+".url", "%q: the scheme must be http or unix (the upstream sits beside the proxy; TLS to it is not needed)", u.URL)
	}
	return nil
}

var (
	paramPattern  = regexp.MustCompile(`\{([^{}]*)\}`)
	paramName     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	objectType    = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)
	relationName  = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	methodToken   = regexp.MustCompile(`^[A-Z]+$`)
	hostPattern   = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$`)
	routeNameText = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
)

// Patterns are the http.ServeMux patterns of r: one per method.
func (r *Route) Patterns() []string {
	methods := r.Methods
	if len(methods) == 0 {
		methods = []string{""}
	}
	out := make([]string, 0, len(methods))
	for _, m := range methods {
		out = append(out, strings.TrimSpace(m+" "+r.Host+r.Path))
	}
	return out
}

// checkConflicts registers r's patterns in mux, turning ServeMux's panic
// on two patterns that match the same requests into an error.
func checkConflicts(mux *http.ServeMux, field string, r *Route) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%s.path: %v", field, v)
		}
	}()
	for _, p := range r.Patterns() {
		mux.Handle(p, http.NotFoundHandler())
	}
	return nil
}

// PathParams lists the parameters of a path pattern in order, and checks
// its syntax.
func PathParams(path string) ([]string, error) {
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("%q does not start with '/'", path)
	}
	var params []string
	segs := strings.Split(path[1:], "/")
	for i, seg := range segs {
		if !strings.ContainsAny(seg, "{}") {
			continue
		}
		if seg[0] != '{' || seg[len(seg)-1] != '}' || strings.Count(seg, "{") != 1 || strings.Count(seg, "}") != 1 {
			return nil, fmt.Errorf("%q: a parameter is a whole segment, {name} or {name...}", path)
		}
		name := seg[1 : len(seg)-1]
		if rest, ok := strings.CutSuffix(name, "..."); ok {
			if i != len(segs)-1 {
				return nil, fmt.Errorf("%q: {%s} must be the last segment", path, name)
			}
			name = rest
		}
		if !paramName.MatchString(name) {
			return nil, fmt.Errorf("%q: %q is not a parameter name (letters, digits, '_')", path, name)
		}
		if slices.Contains(params, name) {
			return nil, fmt.Errorf("%q: the parameter %q appears twice", path, name)
		}
		params = append(params, name)
	}
	return params, nil
}

// TemplateParams lists the {param} names an object template uses.
func TemplateParams(object string) []string {
	var names []string
	for _, m := range paramPattern.FindAllStringSubmatch(object, -1) {
		names = append(names, m[1])
	}
	return names
}

func (r *Route) validate(field string, c *Config) error {
	var errs []error
	add := func(sub, format string, args ...any) {
		errs = append(errs, fieldError(field+sub, format, args...))
	}
	if !routeNameText.MatchString(r.Name) {
		add(".name", "%q: a route needs a name of lowercase letters, digits, '.', '_' and '-'", r.Name)
	}
	if r.Host != "" && !hostPattern.MatchString(r.Host) {
		add(".host", "%q is not a lowercase host name without port", r.Host)
	}
	params, err := PathParams(r.Path)
	if err != nil {
		add(".path", "%v", err)
	}
	for i, m := range r.Methods {
		if !methodToken.MatchString(m) {
			add(fmt.Sprintf(".methods[%d]", i), "%q is not an uppercase HTTP method", m)
		}
	}
	if _, ok := c.Upstreams[r.Upstream]; !ok {
		add(".upstream", "%q is not a name under upstreams (have: %s)", r.Upstream, strings.Join(sortedKeys(c.Upstreams), ", "))
	}
	if (r.Allow == nil) == (r.Authz == nil) {
		add("", "give exactly one of allow (a set of callers) or authz (a check)")
	}
	if r.Allow != nil {
		errs = append(errs, r.Allow.validate(field+".allow", c.TrustDomain))
	}
	if r.Authz != nil {
		errs = append(errs, r.Authz.validate(field+".authz", params, err == nil))
	}
	switch r.OnAuthzError {
	case "":
		r.OnAuthzError = OnAuthzErrorDeny
	case OnAuthzErrorDeny, OnAuthzErrorAllow:
		if r.Authz == nil && r.OnAuthzError == OnAuthzErrorAllow {
			add(".on_authz_error", "allow only applies to a route with authz")
		}
	default:
		add(".on_authz_error", "%q is not deny or allow", r.OnAuthzError)
	}
	switch {
	case r.MaxBodyBytes == 0:
		r.MaxBodyBytes = DefaultMaxBodyBytes
	case r.MaxBodyBytes < 0:
		add(".max_body_bytes", "must not be negative, got %d", r.MaxBodyBytes)
	}
	return errors.Join(errs...)
}

func (a *Allow) validate(field, trustDomain string) error {
	if len(a.SpiffeIDs) == 0 && len(a.PathPrefixes) == 0 {
		return fieldError(field, "give spiffe_ids or path_prefixes (an empty allow admits no one)")
	}
	var errs []error
	for i, id := range a.SpiffeIDs {
		sub := fmt.Sprintf("%s.spiffe_ids[%d]", field, i)
		if err := mtls.CheckAuthorizer(mtls.AuthorizeID(id)); err != nil {
			errs = append(errs, fieldError(sub, "%v", err))
		} else if td, _ := identity.TrustDomainOf(id); trustDomain != "" && td != trustDomain {
			errs = append(errs, fieldError(sub, "%q is not of the trust domain %s; only its members can connect", id, trustDomain))
		}
	}
	for i, p := range a.PathPrefixes {
		if err := mtls.CheckAuthorizer(mtls.AuthorizePathPrefix(trustDomain, strings.TrimSuffix(p, "/"))); err != nil {
			errs = append(errs, fieldError(fmt.Sprintf("%s.path_prefixes[%d]", field, i),
				"%q is not a SPIFFE ID path such as /user/ or /team/payments/: %v", p, err))
		}
	}
	return errors.Join(errs...)
}

// Authorizer is the set of callers a as an mtls.Authorizer: one of the
// SPIFFE IDs, or any ID under one of the path prefixes.
func (a *Allow) Authorizer(trustDomain string) mtls.Authorizer {
	var rules []mtls.Authorizer
	if len(a.SpiffeIDs) > 0 {
		rules = append(rules, mtls.AuthorizeOneOf(a.SpiffeIDs...))
	}
	for _, p := range a.PathPrefixes {
		rules = append(rules, mtls.AuthorizePathPrefix(trustDomain, strings.TrimSuffix(p, "/")))
	}
	return mtls.AuthorizerFunc(func(id string, chains [][]*x509.Certificate) error {
		for _, one := range rules {
			if one.Authorize(id, chains) == nil {
				return nil
			}
		}
		return fmt.Errorf("%s is not among the route's allowed callers", id)
	})
}

func (a *Authz) validate(field string, params []string, pathOK bool) error {
	var errs []error
	if !relationName.MatchString(a.Relation) {
		errs = append(errs, fieldError(field+".relation", "%q is not a relation name (lowercase letters, digits, '_')", a.Relation))
	}
	typ, id, ok := strings.Cut(a.Object, ":")
	if !ok || !objectType.MatchString(typ) || id == "" {
		errs = append(errs, fieldError(field+".object", "%q is not type:id, e.g. dashboard:{name}", a.Object))
	}
	if strings.Count(a.Object, "{") != len(TemplateParams(a.Object)) || strings.Count(a.Object, "}") != len(TemplateParams(a.Object)) {
		errs = append(errs, fieldError(field+".object", "%q has an unmatched '{' or '}'", a.Object))
	}
	for _, name := range TemplateParams(a.Object) {
		if pathOK && !slices.Contains(params, name) {
			errs = append(errs, fieldError(field+".object", "{%s} is not a parameter of the route's path (it has: %s)",
				name, strings.Join(params, ", ")))
		}
	}
	return errors.Join(errs...)
}
