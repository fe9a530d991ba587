#!/usr/bin/env bash
# Sets up and runs the whole test suite from a fresh clone (README's test
# command; .ci/run calls it). Installs everything it needs.
set -euo pipefail
source "$(dirname "$0")/_bootstrap.sh"
cd "$REPO_ROOT"
nox -s codegen -- --check
nox "$@"
