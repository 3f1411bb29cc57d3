# Sourced by the repository's scripts: install the npm dependencies when they are
# missing or older than the lock file, then build dist/.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run build --silent
