#!/usr/bin/env bash
# Sets up and starts the reference server in dev mode (README's run command):
# installs it into .venv-server, inits .dev/data when needed, serves on
# https://127.0.0.1:8443 and prints the admin identity and a join token.
set -euo pipefail
source "$(dirname "$0")/_bootstrap.sh"
cd "$REPO_ROOT"
if [[ ! -x .venv-server/bin/secinfra-server ]]; then
  uv venv --quiet --python python3 .venv-server
  uv pip install --quiet --python .venv-server/bin/python -c constraints.txt -e server
fi
exec .venv-server/bin/secinfra-server serve --dev "$@"
