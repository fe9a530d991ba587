// Package workload serves the SPIFFE Workload API on the agent's Unix socket.
//
// Every call must carry the metadata header workload.spiffe.io: true
// (else InvalidArgument). The caller is attested from the connection's peer
// credentials and /proc (package attest) and matched to the node's entries;
// a caller no entry matches gets PermissionDenied. FetchX509SVID and
// FetchX509Bundles are streams: the first answer comes when the caller's
// SVIDs are there, and a new one whenever they or the bundle change. The
// JWT methods are not implemented yet (Unimplemented, with a message).
package workload

import (
	"bytes"
	"context"
	"log/slog"

	workloadpb "github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/secinfra/secinfra/agent/internal/attest"
	"github.com/secinfra/secinfra/agent/internal/metrics"
	"github.com/secinfra/secinfra/agent/internal/svids"
)

// HeaderKey and HeaderValue: the security header the specification requires.
const (
	HeaderKey   = "workload.spiffe.io"
	HeaderValue = "true"
)

// Source is where the server reads what it serves (svids.Manager).
type Source interface {
	Current() (*svids.State, <-chan struct{})
}

// Server implements workloadpb.SpiffeWorkloadAPIServer.
type Server struct {
	workloadpb.UnimplementedSpiffeWorkloadAPIServer
	Source   Source
	ProcRoot string
	Log      *slog.Logger
	Metrics  *metrics.Agent
}

// Register adds the Workload API to g.
func (s *Server) Register(g *grpc.Server) { workloadpb.RegisterSpiffeWorkloadAPIServer(g, s) }

// caller checks the header and attests the caller.
func (s *Server) caller(ctx context.Context) (attest.Caller, []attest.Selector, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(HeaderKey); len(v) != 1 || v[0] != HeaderValue {
		s.Metrics.CallsInvalid.Add(1)
		return attest.Caller{}, nil, status.Error(codes.InvalidArgument, "security header missing from request: set metadata workload.spiffe.io: true")
	}
	p, ok := peer.FromContext(ctx)
	info, isPeer := attest.AuthInfo{}, false
	if ok {
		info, isPeer = p.AuthInfo.(attest.AuthInfo)
	}
	if !isPeer {
		return attest.Caller{}, nil, status.Error(codes.Internal, "secinfra-agent: no peer credentials for this connection")
	}
	return info.Caller, attest.Selectors(info.Caller, s.ProcRoot), nil
}

func (s *Server) denied(c attest.Caller, sel []attest.Selector, method string) error {
	s.Metrics.CallsDenied.Add(1)
	s.Log.Info("workload denied: no entry matches", "method", method, "pid", c.PID, "uid", c.UID, "gid", c.GID, "selectors", selectorText(sel))
	return status.Error(codes.PermissionDenied, "no identity issued: no registration entry of this node matches the caller")
}

func selectorText(sel []attest.Selector) []string {
	out := make([]string, 0, len(sel))
	for _, s := range sel {
		out = append(out, s.String())
	}
	return out
}

// FetchX509SVID streams the caller's X509-SVIDs with their keys and bundle.
func (s *Server) FetchX509SVID(_ *workloadpb.X509SVIDRequest, stream grpc.ServerStreamingServer[workloadpb.X509SVIDResponse]) error {
	ctx := stream.Context()
	c, sel, err := s.caller(ctx)
	if err != nil {
		return err
	}
	var last *workloadpb.X509SVIDResponse
	for {
		state, changed := s.Source.Current()
		matched, found := state.Match(sel)
		if state.Synced && !matched {
			return s.denied(c, sel, "FetchX509SVID")
		}
		if len(found) > 0 {
			resp := x509Response(state, found)
			if last == nil || !sameX509(last, resp) {
				if err := stream.Send(resp); err != nil {
					return err
				}
				if last == nil {
					s.Metrics.CallsServed.Add(1)
					s.Log.Info("workload attested", "pid", c.PID, "uid", c.UID, "svids", len(found), "spiffe_id", found[0].SpiffeID)
				}
				last = resp
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

func x509Response(state *svids.State, found []*svids.SVID) *workloadpb.X509SVIDResponse {
	bundle := state.BundleDER()
	resp := &workloadpb.X509SVIDResponse{}
	for _, f := range found {
		resp.Svids = append(resp.Svids, &workloadpb.X509SVID{
			SpiffeId:    f.SpiffeID,
			X509Svid:    f.ChainDER,
			X509SvidKey: f.KeyDER,
			Bundle:      bundle,
		})
	}
	return resp
}

func sameX509(a, b *workloadpb.X509SVIDResponse) bool {
	if len(a.Svids) != len(b.Svids) {
		return false
	}
	for i := range a.Svids {
		x, y := a.Svids[i], b.Svids[i]
		if x.SpiffeId != y.SpiffeId || !bytes.Equal(x.X509Svid, y.X509Svid) || !bytes.Equal(x.Bundle, y.Bundle) {
			return false
		}
	}
	return true
}

// FetchX509Bundles streams the trust bundle, keyed by trust domain, to a
// caller that some entry matches.
func (s *Server) FetchX509Bundles(_ *workloadpb.X509BundlesRequest, stream grpc.ServerStreamingServer[workloadpb.X509BundlesResponse]) error {
	ctx := stream.Context()
	c, sel, err := s.caller(ctx)
	if err != nil {
		return err
	}
	var last []byte
	for {
		state, changed := s.Source.Current()
		matched, _ := state.Match(sel)
		if state.Synced && !matched {
			return s.denied(c, sel, "FetchX509Bundles")
		}
		if der := state.BundleDER(); matched && len(der) > 0 && !bytes.Equal(der, last) {
			resp := &workloadpb.X509BundlesResponse{Bundles: map[string][]byte{state.TrustDomain: der}}
			if err := stream.Send(resp); err != nil {
				return err
			}
			last = der
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

const jwtLater = "secinfra-agent: JWT-SVIDs are not implemented yet (X.509 only in this version); use FetchX509SVID"

// FetchJWTSVID is not implemented yet.
func (s *Server) FetchJWTSVID(ctx context.Context, _ *workloadpb.JWTSVIDRequest) (*workloadpb.JWTSVIDResponse, error) {
	if _, _, err := s.caller(ctx); err != nil {
		return nil, err
	}
	return nil, status.Error(codes.Unimplemented, jwtLater)
}

// FetchJWTBundles is not implemented yet.
func (s *Server) FetchJWTBundles(_ *workloadpb.JWTBundlesRequest, stream grpc.ServerStreamingServer[workloadpb.JWTBundlesResponse]) error {
	if _, _, err := s.caller(stream.Context()); err != nil {
		return err
	}
	return status.Error(codes.Unimplemented, jwtLater)
}

// ValidateJWTSVID is not implemented yet.
func (s *Server) ValidateJWTSVID(ctx context.Context, _ *workloadpb.ValidateJWTSVIDRequest) (*workloadpb.ValidateJWTSVIDResponse, error) {
	if _, _, err := s.caller(ctx); err != nil {
		return nil, err
	}
	return nil, status.Error(codes.Unimplemented, jwtLater)
}
