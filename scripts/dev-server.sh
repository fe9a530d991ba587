#!/usr/bin/env bash
# README's run command: installs the reference server (pinned) into
# .venv-server on first use and serves it in dev mode on 127.0.0.1:8443.
set -euo pipefail
server="$(bash "$(dirname "$0")/ensure-server.sh" | tail -1)"
cd "$(dirname "$0")/.."
exec "$server" serve --dev "$@"
