package rpc

import "context"

// Invoker makes one call: it encodes req (a pointer to a generated request
// struct), sends it as d says, and decodes the answer into resp. The SDK
// runtime implements it; generated clients only call it, so that they
// depend on this package alone and never on the runtime behind it.
type Invoker interface {
	Invoke(ctx context.Context, d *Descriptor, req, resp any, opts ...CallOption) error
}
