#!/usr/bin/env bash
# The one command that runs every test on a fresh machine:
#   bash scripts/test.sh            (or: npm test, once node_modules exists)
# It installs what the tests need (Debian's docker-registry and skopeo, the npm
# dependencies), builds, and runs the whole vitest suite. Extra arguments go to vitest.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v htpasswd >/dev/null 2>&1 || need+=(apache2-utils)   # bcrypt htpasswd for Distribution's basic auth
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages: ${need[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "error: the tests need Debian packages: ${need[*]}; install them with: sudo apt-get install ${need[*]}" >&2
    exit 2
  fi
fi

. scripts/ensure-built.sh
# Strict type-check of everything, tests included: a type error is a defect like a failing test.
npm run typecheck --silent
npx vitest run "$@"
