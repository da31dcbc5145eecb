#!/usr/bin/env bash
# The test command: sets up what is missing, then runs every test (unit, namespace integration,
# vblade and the real Linux initiator). Extra arguments go to vitest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export LI_CACHE_DIR="${LI_CACHE_DIR:-/var/cache/aoegw-li}"
exec npx vitest run "$@"
