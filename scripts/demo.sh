#!/usr/bin/env bash
# The main job end to end on the embedded default registry (no outside registry needed):
#   bash scripts/demo.sh   (or: npm run demo)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-built.sh
# The demo seeds the source with the test fixtures (TypeScript under test/support): compile them beside it.
npx tsc -p tsconfig.demo.json
ln -sfn ../fixtures .build/fixtures   # the fixtures read their test keys relative to their own files
node .build/scripts/demo.js "$@"
