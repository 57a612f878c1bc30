#!/usr/bin/env bash
# Installs, in one apt-get run, every Debian package the real-scheduler tests need: OpenSSH
# server, Grid Engine (master, exec host, client) and Slurm with munge. Idempotent: installs only
# what is missing. Needs root. The start-*.sh scripts call the same install for their own part.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/lib.sh"
preseed_gridengine
ensure_packages openssh-server openssh-client gridengine-master gridengine-exec gridengine-client \
  slurmctld slurmd slurm-client munge
