package main

// The mtls ops (feature mtls) on the SDK's mtls package: mtls_serve serves
// HTTPS with mtls.NewServer and answers every request with the caller's
// SPIFFE ID as mtls.PeerID reads it; mtls_call makes one GET over a new
// connection with mtls.ClientConfig. Both are built on the client's rotating
// identity source, as an application builds them (docs/mtls/go.md).

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/secinfra/secinfra/sdk-go/cmd/secinfra-conformance/protocol"
	"github.com/secinfra/secinfra/sdk-go/mtls"
)

const (
	defaultMTLSCallTimeout = 10 * time.Second
	// mtlsIdleTimeout keeps idle connections open longer than the 30 s the protocol asks for.
	mtlsIdleTimeout = 60 * time.Second
)

// mtlsRules are the SDK's refusal rules as the protocol names them.
var mtlsRules = map[string]string{
	mtls.RuleCertificate: "x509_svid",
	mtls.RuleURISAN:      "x509_svid",
	mtls.RuleLeafNotCA:   "x509_svid",
	mtls.RuleTrustDomain: "trust_domain",
	mtls.RuleValidity:    "validity",
	mtls.RuleChain:       "chain",
	mtls.RuleAuthorizer:  "authorizer",
}

// kindFields are the fields each authorizer kind takes.
var kindFields = map[string][]string{
	"id":          {"id"},
	"one_of":      {"ids"},
	"member_of":   {"trust_domain"},
	"path_prefix": {"prefix", "trust_domain"},
}

// mtlsServer is the one server mtls_serve runs.
type mtlsServer struct {
	server *http.Server
	done   chan struct{}
}

// authorizer is the SDK authorizer an MtlsAuthorizer names.
func authorizer(spec *protocol.MtlsAuthorizer) (mtls.Authorizer, error) {
	if spec == nil {
		return nil, adapterError("give an authorizer")
	}
	wanted, ok := kindFields[spec.Kind]
	if !ok {
		return nil, adapterError("unknown authorizer kind %q (known: id, one_of, member_of, path_prefix)", spec.Kind)
	}
	var given []string
	if spec.ID != nil {
		given = append(given, "id")
	}
	if len(spec.Ids) > 0 {
		given = append(given, "ids")
	}
	if spec.Prefix != nil {
		given = append(given, "prefix")
	}
	if spec.TrustDomain != nil {
		given = append(given, "trust_domain")
	}
	sort.Strings(given)
	if strings.Join(given, ",") != strings.Join(wanted, ",") {
		return nil, adapterError("authorizer kind %q takes %v, got %v", spec.Kind, wanted, given)
	}
	switch spec.Kind {
	case "id":
		return mtls.AuthorizeID(*spec.ID), nil
	case "one_of":
		return mtls.AuthorizeOneOf(spec.Ids...), nil
	case "member_of":
		return mtls.AuthorizeMemberOf(*spec.TrustDomain), nil
	}
	return mtls.AuthorizePathPrefix(*spec.TrustDomain, *spec.Prefix), nil
}

// answerPeer answers every request with the caller's verified SPIFFE ID.
func answerPeer(w http.ResponseWriter, r *http.Request) {
	id, ok := mtls.PeerID(r)
	if !ok {
		http.Error(w, "no verified peer", http.StatusInternalServerError)
		return
	}
	_, _ = io.Copy(io.Discard, r.Body)
	body, _ := json.Marshal(map[string]string{"peer_spiffe_id": id})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

func (a *adapter) mtlsServe(req *protocol.MtlsServeRequest) (*protocol.MtlsServing, error) {
	if a.client == nil {
		return nil, adapterError("configure first")
	}
	if a.serving != nil {
		return nil, adapterError("mtls_serve: already serving (mtls_stop first)")
	}
	authz, err := authorizer(req.Authorizer)
	if err != nil {
		return nil, err
	}
	server, err := mtls.NewServer("127.0.0.1:0", http.HandlerFunc(answerPeer), a.client.Source(), authz)
	if err != nil {
		return nil, adapterError("mtls.NewServer: %v", err)
	}
	server.IdleTimeout = mtlsIdleTimeout
	// Refused handshakes are logged by the server; stderr is the runner's log.
	server.ErrorLog = log.New(os.Stderr, "mtls server: ", log.LstdFlags)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, adapterError("listen: %v", err)
	}
	s := &mtlsServer{server: server, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		if err := server.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Printf("mtls server: %v", err)
		}
	}()
	a.serving = s
	return &protocol.MtlsServing{Port: int32(ln.Addr().(*net.TCPAddr).Port)}, nil
}

func (a *adapter) mtlsStop() {
	if a.serving == nil {
		return
	}
	_ = a.serving.server.Close() // the listener and every connection
	<-a.serving.done
	a.serving = nil
}

func (a *adapter) mtlsCall(req *protocol.MtlsCallRequest) (*protocol.MtlsCallResult, *protocol.Failure, error) {
	if a.client == nil {
		return nil, nil, adapterError("configure first")
	}
	target, err := url.Parse(req.URL)
	if err != nil || target.Scheme != "https" || target.Port() == "" {
		return nil, nil, adapterError("url must be https://127.0.0.1:<port>/..., got %q", req.URL)
	}
	authz, err := authorizer(req.Authorizer)
	if err != nil {
		return nil, nil, err
	}
	transport, err := mtls.NewTransport(a.client.Source(), authz)
	if err != nil {
		return nil, nil, adapterError("mtls.NewTransport: %v", err)
	}
	// One new connection per call, never a pooled one.
	transport.DisableKeepAlives = true
	defer transport.CloseIdleConnections()
	var presented struct {
		sync.Mutex
		serial string
	}
	getCert := transport.TLSClientConfig.GetClientCertificate
	transport.TLSClientConfig.GetClientCertificate = func(info *tls.CertificateRequestInfo) (*tls.Certificate, error) {
		cert, err := getCert(info)
		if err == nil && len(cert.Certificate) > 0 {
			if leaf, perr := x509.ParseCertificate(cert.Certificate[0]); perr == nil {
				presented.Lock()
				presented.serial = leaf.SerialNumber.Text(16)
				presented.Unlock()
			}
		}
		return cert, err
	}
	timeout := defaultMTLSCallTimeout
	if req.TimeoutSeconds != nil {
		timeout = seconds(*req.TimeoutSeconds)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	httpReq, err := http.NewRequestWithContext(ctx, http.MethodGet, req.URL, nil)
	if err != nil {
		return nil, nil, adapterError("request: %v", err)
	}
	resp, err := (&http.Client{Transport: transport}).Do(httpReq)
	if err != nil {
		return nil, mtlsFailure(err), nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, mtlsFailure(err), nil
	}
	peer := ""
	if resp.TLS != nil {
		peer, _ = mtls.PeerIDFromConnectionState(*resp.TLS)
	}
	presented.Lock()
	defer presented.Unlock()
	return &protocol.MtlsCallResult{
		Status: int32(resp.StatusCode), Body: string(body), PeerSpiffeID: peer, PresentedSerial: presented.serial,
	}, nil, nil
}

// mtlsFailure classifies a failed mtls_call.
func mtlsFailure(err error) *protocol.Failure {
	message := err.Error()
	var refused *mtls.PeerError
	if errors.As(err, &refused) {
		code, ok := mtlsRules[refused.Rule]
		if !ok {
			code = refused.Rule
		}
		return &protocol.Failure{Type: "PeerRefused", Code: &code, Message: message}
	}
	var netErr net.Error
	var opErr *net.OpError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return &protocol.Failure{Type: "TransportError", Message: message}
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return &protocol.Failure{Type: "TransportError", Message: message}
	}
	// An alert from the server, or the connection closed before an answer.
	return &protocol.Failure{Type: "HandshakeFailed", Message: message}
}
