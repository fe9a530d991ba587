package rpc

// Idempotency says how safely a call may be repeated (the descriptor's
// secinfra.v1.Idempotency).
type Idempotency int

const (
	// ReadOnly calls change nothing; they carry no Idempotency-Key.
	ReadOnly Idempotency = iota + 1
	// Idempotent calls have the same effect however often they are made.
	Idempotent
	// NonIdempotent calls change state each time; the Idempotency-Key makes
	// their retries safe.
	NonIdempotent
)

// String returns the wire spelling: read_only, idempotent, non_idempotent.
func (i Idempotency) String() string {
	switch i {
	case ReadOnly:
		return "read_only"
	case Idempotent:
		return "idempotent"
	case NonIdempotent:
		return "non_idempotent"
	}
	return "unspecified"
}

// SafeToRepeat reports whether the call is ReadOnly or Idempotent.
func (i Idempotency) SafeToRepeat() bool { return i == ReadOnly || i == Idempotent }

// Auth says how the caller proves who it is.
type Auth int

const (
	// AuthMTLS calls present the client's current X509-SVID.
	AuthMTLS Auth = iota + 1
	// AuthNone calls present no client certificate (enrolment, bundle, CRL).
	AuthNone
)

// String returns "mtls" or "none".
func (a Auth) String() string {
	if a == AuthNone {
		return "none"
	}
	return "mtls"
}

// CachePolicy marks a cacheable read: its resource family and key field.
type CachePolicy struct {
	// Resource is the family ("secret", "authz", "bundle").
	Resource string
	// KeyField is the request field naming one resource; empty for none.
	KeyField string
}

// Invalidation names the cache entries a successful write drops.
type Invalidation struct {
	// Resource is the family.
	Resource string
	// KeyField is the request field naming the resource written; empty
	// means the whole family.
	KeyField string
}

// Descriptor is what the API definition says about one RPC.
type Descriptor struct {
	// Service is the proto service's full name (secinfra.v1.SecretsService).
	Service string
	// Name is the RPC's name (GetSecret).
	Name string
	// HTTPMethod is GET, POST, PUT, PATCH or DELETE.
	HTTPMethod string
	// Path is the path template, e.g. /v1/secrets/{name=**}.
	Path string
	// PathParams, QueryParams and BodyFields list the request's JSON fields
	// by where they travel, in proto order.
	PathParams, QueryParams, BodyFields []string
	// Idempotency decides retries and the Idempotency-Key.
	Idempotency Idempotency
	// Auth says whether the call presents a client certificate.
	Auth Auth
	// Cache is set for cacheable reads.
	Cache *CachePolicy
	// Invalidates is set for writes that drop cached entries.
	Invalidates *Invalidation
	// Admin documents that the caller needs the admin relation.
	Admin bool
}

// FullName is "<service>/<rpc>", e.g. secinfra.v1.SecretsService/GetSecret.
func (d *Descriptor) FullName() string { return d.Service + "/" + d.Name }
