#!/usr/bin/env bash
# Installs, in one apt-get run, every Debian package the real-scheduler tests need: OpenSSH
# server, Grid Engine (master, exec host, client) and Slurm with munge. Idempotent: installs only
# what is missing. Needs root. The start-*.sh scripts call the same install for their own part.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/lib.sh"
HOST="$(hostname)"
if [ "$(id -u)" -eq 0 ]; then
  # Grid Engine asks three questions at install; answer them for a one-host cell named default.
  debconf-set-selections <<DEB
gridengine-common shared/gridengineconfig boolean true
gridengine-common shared/gridenginecell string default
gridengine-common shared/gridenginemaster string $HOST
DEB
fi
ensure_packages openssh-server openssh-client gridengine-master gridengine-exec gridengine-client \
  slurmctld slurmd slurm-client munge
