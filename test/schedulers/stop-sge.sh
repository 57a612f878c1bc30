#!/usr/bin/env bash
# Stops the Grid Engine daemons that start-sge.sh started, by their pid files. Idempotent.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/lib.sh"
HOST="$(hostname)"
# execd spools under the name it resolves for itself (localhost here, through host_aliases).
for f in /var/spool/gridengine/execd/*/execd.pid; do
  [ -e "$f" ] && stop_pidfile "$f" sge_execd 20
done
# qmaster takes about 9 s to exit on SIGTERM.
stop_pidfile /var/spool/gridengine/qmaster/qmaster.pid sge_qmaster 30
