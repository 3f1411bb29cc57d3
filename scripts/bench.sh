#!/usr/bin/env bash
# airlock against skopeo on loopback Distribution registries (issue 8). Not part of the tests.
#   npm run bench [-- --rounds N] [-- --big] [-- --profile] [-- --small N] [-- --keep]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-built.sh
npx tsc -p tsconfig.bench.json
node .build/scripts/bench.js "$@"
