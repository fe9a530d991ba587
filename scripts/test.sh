#!/usr/bin/env bash
# Sets up and runs the whole test suite from a fresh clone (README's test
# command; .ci/run calls it). Installs everything it needs.
set -euo pipefail
source "$(dirname "$0")/_bootstrap.sh"
cd "$REPO_ROOT"
if [[ $# -eq 0 ]]; then
  # The full run: building Dex (the login tests' OpenID provider) from a cold
  # Go module cache takes minutes, so it starts now, beside the first
  # sessions; the server tests wait for it (scripts/ensure-dex.sh builds under
  # a lock) and report its errors if it failed.
  mkdir -p .cache
  bash scripts/ensure-dex.sh > .cache/ensure-dex.log 2>&1 &
fi
nox -s codegen -- --check
nox "$@"
