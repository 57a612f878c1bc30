#!/usr/bin/env bash
# Makes everything secret a deployment needs, into DIR (default: deploy/secrets, git-ignored):
#
#   certs/                 CA, server and client certificates (certs/gen-certs.sh)
#   nats.env               COLONY_DRIVER_PASSWORD, COLONY_WORKER_PASSWORD, COLONY_OBSERVER_PASSWORD:
#                          the NATS servers read them (compose env_file, a Kubernetes Secret)
#   driver.json, worker.json, observer.json
#                          { "user", "password" } per role, for `--creds` and your driver
#
# Idempotent: existing passwords and certificates are kept. Passwords are a letter and 32 hex
# digits, because nats-server parses the value of an environment variable as config.
#
# usage: deploy/gen-secrets.sh [DIR]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=${1:-$here/secrets}
mkdir -p "$dir"
chmod 700 "$dir"
umask 077

bash "$here/certs/gen-certs.sh" "$dir/certs"

env_file="$dir/nats.env"
touch "$env_file"
for role in driver worker observer; do
  var="COLONY_$(echo "$role" | tr '[:lower:]' '[:upper:]')_PASSWORD"
  pw=$(sed -n "s/^$var=//p" "$env_file")
  if [ -z "$pw" ]; then
    pw="p$(openssl rand -hex 16)"
    echo "$var=$pw" >>"$env_file"
    echo "gen-secrets: made a password for $role"
  fi
  printf '{"user":"%s","password":"%s"}\n' "$role" "$pw" >"$dir/$role.json"
done
chmod 600 "$env_file" "$dir"/*.json
echo "gen-secrets: $dir ready (keep it out of git and off shared disks)"
