//go:build tools

// Package dex pins the Dex OpenID provider that the login tests start
// (scripts/ensure-dex.sh builds it into .cache/dex/<version>/dex). Dex's own
// go.mod has a replace directive, so `go install dex@version` refuses it;
// requiring it from this module resolves every dependency, api/v2 included,
// from the Go module proxy, pinned by this go.mod and go.sum.
package dex

import _ "github.com/dexidp/dex/cmd/dex"
