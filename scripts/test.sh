#!/usr/bin/env bash
# The test command: sets up what is missing, type-checks, lints, then runs every test (unit,
# namespace integration, vblade, the real Linux initiator). Extra arguments go to vitest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npx tsc -p tsconfig.json --noEmit
npx biome check src test bench support
export LI_CACHE_DIR="${LI_CACHE_DIR:-/var/cache/aoegw-li}"
exec npx vitest run "$@"
