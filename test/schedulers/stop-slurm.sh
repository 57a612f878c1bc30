#!/usr/bin/env bash
# Stops the Slurm daemons and munged that start-slurm.sh started, by their pid files. Idempotent.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/lib.sh"
stop_pidfile /run/slurm/slurmd.pid slurmd 20
stop_pidfile /run/slurm/slurmctld.pid slurmctld 20
stop_pidfile /run/munge/munged.pid munged 10
