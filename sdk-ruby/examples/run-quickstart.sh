#!/usr/bin/env bash
# Runs the Ruby quickstart program (docs/quickstart.md) from the repository
# root: makes sure Debian's ruby is installed (scripts/ensure-ruby.sh), then
# runs sdk-ruby/examples/quickstart/quickstart.rb against the SDK in
# sdk-ruby/lib (standard library only: nothing else to install), with:
#   SECINFRA_URL, SECINFRA_JOIN_TOKEN, SECINFRA_BUNDLE_FILE
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/ensure-ruby.sh
exec ruby -I sdk-ruby/lib sdk-ruby/examples/quickstart/quickstart.rb
