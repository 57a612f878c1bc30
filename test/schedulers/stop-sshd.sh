#!/usr/bin/env bash
# Stops the private sshd that start-sshd.sh started, by its pid file. Idempotent.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/lib.sh"
DIR="${COLONY_SSHD_DIR:-/tmp/colony-sshd}"
stop_pidfile "$DIR/sshd.pid" sshd 10
