#!/usr/bin/env bash
# Makes sure Graphviz's `dot` is present for the docs build (the architecture
# page draws its pictures with sphinx.ext.graphviz). Idempotent and fast when
# it is; otherwise installs Debian's graphviz with apt-get, pinned to Debian 12
# (bookworm). Override with GRAPHVIZ_PKG_VERSION (empty = the candidate).
set -euo pipefail
GRAPHVIZ_PKG_VERSION="${GRAPHVIZ_PKG_VERSION-2.42.2-7+deb12u1}"

if command -v dot >/dev/null 2>&1; then
  exit 0
fi
source "$(dirname "$0")/_apt.sh"
apt_install ensure-graphviz "graphviz=$GRAPHVIZ_PKG_VERSION"
if ! command -v dot >/dev/null 2>&1; then
  echo "ensure-graphviz: dot still missing after apt-get install" >&2
  exit 1
fi
echo "ensure-graphviz: $(dot -V 2>&1)" >&2
