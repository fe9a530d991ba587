package identity

import (
	"context"

	"github.com/secinfra/secinfra/sdk-go/rpc"
)

// Source is where the transport gets identity and trust: it asks on every
// new connection (spec 8.1). StaticSource and Rotating implement it.
type Source interface {
	// ServerID is the SPIFFE ID the server must present.
	ServerID() string
	// Snapshot is the current identity, or nil before enrolment.
	Snapshot() *Snapshot
	// Bundle is the current trust bundle.
	Bundle() *Bundle
	// Current returns a currently valid identity, re-enrolling if the
	// source can, else an rpc.Error of kind KindIdentityExpired. It waits
	// for a re-enrolment only until ctx ends, and then returns an error
	// that wraps ctx.Err() (spec 5.1.2).
	Current(ctx context.Context) (*Snapshot, error)
	// RefreshBundle fetches the bundle now (after a verification failure)
	// and reports whether a newer one was installed.
	RefreshBundle(ctx context.Context) (bool, error)
	// Subscribe registers fn for every rotation event.
	Subscribe(fn func(Event))
}

// expiredError is the identity_expired error Current returns (spec 9.7.3).
func expiredError(msg string, cause error) *rpc.Error {
	return &rpc.Error{Kind: rpc.KindIdentityExpired, Code: rpc.CodeIdentityExpired, Message: msg, Cause: cause}
}
