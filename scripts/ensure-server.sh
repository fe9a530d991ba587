#!/usr/bin/env bash
# Prints the path of a secinfra-server executable (the last line of output):
# $SECINFRA_REFERENCE_SERVER when set, else the repo's .venv-server, installed from
# server/ pinned by constraints.txt on first use (and again when those change). The Go, Java and Ruby SDK
# tests use it: SECINFRA_REFERENCE_SERVER=$(bash scripts/ensure-server.sh | tail -1).
set -euo pipefail
if [[ -n "${SECINFRA_REFERENCE_SERVER:-}" ]]; then
  echo "$SECINFRA_REFERENCE_SERVER"
  exit 0
fi
source "$(dirname "$0")/_bootstrap.sh"
cd "$REPO_ROOT"
# Installed again when the server's dependencies or their pins change, so a
# checkout that gained a dependency does not run a server that lacks it.
stamp="$(cat server/pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
if [[ ! -x .venv-server/bin/secinfra-server || "$(cat .venv-server/.deps 2>/dev/null)" != "$stamp" ]]; then
  [[ -x .venv-server/bin/python ]] || uv venv --quiet --python python3 .venv-server >&2
  uv pip install --quiet --python .venv-server/bin/python -c constraints.txt -e server >&2
  echo "$stamp" > .venv-server/.deps
fi
echo "$REPO_ROOT/.venv-server/bin/secinfra-server"
