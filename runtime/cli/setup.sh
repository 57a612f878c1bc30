#!/usr/bin/env bash
# Pre-step of `npm start`, `npm test` and `npm run bench`: makes sure nats-server and
# node_modules are there. Idempotent, and silent when there is nothing to do.
set -euo pipefail

have_nats_server() {
  if [ -n "${COLONY_NATS_SERVER:-}" ] && [ -x "${COLONY_NATS_SERVER}" ]; then return 0; fi
  command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ]
}

if ! have_nats_server; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "colony: installing nats-server with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq nats-server
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    echo "colony: installing nats-server with sudo apt-get" >&2
    sudo -n env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server
  else
    echo "colony: nats-server is missing. Install it with: sudo apt-get install -y nats-server" >&2
    exit 1
  fi
fi

if [ ! -d node_modules ]; then
  npm ci
fi
