#!/usr/bin/env bash
# Prints the path of the Dex OpenID provider the login tests start (the last
# line of output): $SECINFRA_DEX when set, else .cache/dex/<version>/dex, built
# on first use from the Go module proxy with the versions interop/dex/go.mod and
# go.sum pin (Dex's own go.mod has a replace directive, so `go install
# dex@version` refuses it; building from our module resolves the same code).
# CGO off: the tests use Dex's in-memory storage, and the build is faster.
set -euo pipefail
DEX_VERSION="v2.45.1"
if [[ -n "${SECINFRA_DEX:-}" ]]; then
  echo "$SECINFRA_DEX"
  exit 0
fi
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$REPO_ROOT/.cache/dex/$DEX_VERSION/dex"
mkdir -p "$(dirname "$out")"
# One build at a time: scripts/test.sh starts one in the background at the
# start of the run, and the server tests' call waits here for it to finish.
exec 9>"$out.lock"
flock 9
if [[ ! -x "$out" ]]; then
  echo "building Dex $DEX_VERSION into $out (once)" >&2
  (
    cd "$REPO_ROOT/interop/dex"
    CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath \
      -ldflags "-X main.version=$DEX_VERSION" \
      -o "$out.tmp" github.com/dexidp/dex/cmd/dex
  )
  mv "$out.tmp" "$out"
fi
echo "$out"
