#!/usr/bin/env bash
# Entry point of a worker container (deploy/compose.yaml): installs the dependencies when the
# lock file changed since the last install (so a restart takes a second, not a minute), then runs
# `colony worker` with the arguments it was given.
set -euo pipefail
stamp=node_modules/.colony-lock-sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  npm ci --omit=dev --no-audit --no-fund
  echo "$want" >"$stamp"
fi
exec node runtime/cli/colony.mjs worker "$@"
