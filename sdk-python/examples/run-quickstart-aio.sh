#!/usr/bin/env bash
# Runs the asyncio Python quickstart program (docs/quickstart.md) from the
# repository root: installs the SDK with its aio extra (pinned by
# constraints.txt) into .venv-quickstart-python, then runs
# sdk-python/examples/quickstart-aio/quickstart_aio.py with this environment:
#   SECINFRA_URL, SECINFRA_JOIN_TOKEN, SECINFRA_BUNDLE_FILE
set -euo pipefail
source "$(dirname "$0")/../../scripts/_bootstrap.sh"
cd "$REPO_ROOT"
VENV=.venv-quickstart-python
if [[ ! -x "$VENV/bin/python" ]]; then
  uv venv --quiet --python python3 "$VENV"
fi
uv pip install --quiet --python "$VENV/bin/python" -c constraints.txt -e 'sdk-python[aio]'
exec "$VENV/bin/python" sdk-python/examples/quickstart-aio/quickstart_aio.py
