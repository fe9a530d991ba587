#!/usr/bin/env bash
# Makes sure Ruby, rake and minitest are present for the Ruby SDK (sdk-ruby/).
#
# Idempotent and fast when they are: it only checks `ruby`, `rake` and
# `require "minitest"`. When any is missing it installs Debian's packages with
# apt-get (needs root, or sudo without a password). The versions are pinned to
# Debian 12 (bookworm); override with RUBY_PKG_VERSION / MINITEST_PKG_VERSION /
# RAKE_PKG_VERSION (empty = the distribution's candidate) on another release.
set -euo pipefail

RUBY_PKG_VERSION="${RUBY_PKG_VERSION-1:3.1}"
MINITEST_PKG_VERSION="${MINITEST_PKG_VERSION-5.17.0-1}"
RAKE_PKG_VERSION="${RAKE_PKG_VERSION-13.0.6-3}"

have_ruby() {
  command -v ruby >/dev/null 2>&1 \
    && command -v rake >/dev/null 2>&1 \
    && ruby -e 'require "minitest"' >/dev/null 2>&1
}

if have_ruby; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-ruby: ruby, rake or minitest is missing and apt-get is not available;" >&2
  echo "ensure-ruby: install Ruby >= 3.1, rake and minitest yourself" >&2
  exit 1
fi

SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    echo "ensure-ruby: installing Ruby needs root (or passwordless sudo)" >&2
    exit 1
  fi
fi

pkg() { # name, version -> name or name=version
  if [[ -n "$2" ]]; then printf '%s=%s' "$1" "$2"; else printf '%s' "$1"; fi
}

echo "ensure-ruby: installing Debian's ruby, ruby-minitest and rake" >&2
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq >/dev/null
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends \
  "$(pkg ruby "$RUBY_PKG_VERSION")" \
  "$(pkg ruby-minitest "$MINITEST_PKG_VERSION")" \
  "$(pkg rake "$RAKE_PKG_VERSION")" >/dev/null

if ! have_ruby; then
  echo "ensure-ruby: ruby, rake or minitest still missing after apt-get install" >&2
  exit 1
fi
echo "ensure-ruby: $(ruby --version)" >&2
