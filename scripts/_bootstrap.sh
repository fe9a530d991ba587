# Sourced by the scripts in this folder: puts pinned nox and uv on PATH.
# Creates .venv-tools on first use; needs only python3 (3.11) on the machine.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_VENV="$REPO_ROOT/.venv-tools"
if [[ ! -x "$TOOLS_VENV/bin/nox" ]]; then
  python3 -m venv "$TOOLS_VENV"
  "$TOOLS_VENV/bin/pip" install --quiet --disable-pip-version-check \
    -c "$REPO_ROOT/constraints.txt" nox uv
fi
export PATH="$TOOLS_VENV/bin:$PATH"
