#!/usr/bin/env bash
# Brings up a one-node Slurm 22.05 (munged, slurmctld, slurmd) with one partition, `main`, on this
# machine. Idempotent: installs the Debian packages when missing, (re)writes slurm.conf when it
# differs, starts the daemons that are not running. Needs root. No cgroups, no accounting.
#
#   bash test/schedulers/start-slurm.sh      then: sbatch --parsable --wrap true
#   bash test/schedulers/stop-slurm.sh
#
# See ../shared/reference/schedulers.md for why each setting is here.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/lib.sh"

HOST="$(hostname)"
PARTITION="${COLONY_SLURM_PARTITION:-main}"
CONF=/etc/slurm/slurm.conf
RUN=/run/slurm
MUNGE_PID=/run/munge/munged.pid

ensure_packages slurmctld slurmd slurm-client munge

install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge /etc/munge
[ -s /etc/munge/munge.key ] || runuser -u munge -- mungekey -c -k /etc/munge/munge.key
install -d -o slurm -g slurm -m 0755 "$RUN" /var/spool/slurmctld /var/log/slurm
install -d -m 0755 /var/spool/slurmd

# The node line is exactly what `slurmd -C` prints (less its UpTime line).
node_line="$(slurmd -C | grep '^NodeName=') State=UNKNOWN"
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
cat >"$tmp" <<CONF
# Written by test/schedulers/start-slurm.sh: a one-node test cluster.
ClusterName=colony
SlurmctldHost=$HOST
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# Without batch_sched_delay=0, submit to start jumps between 0 and 3 s.
SchedulerParameters=batch_sched_delay=0
MpiDefault=none
ReturnToService=2
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
$node_line
# OverSubscribe: test workers mostly wait, and concurrent test runs share the node (2 cores).
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8
CONF
changed=0
if ! cmp -s "$tmp" "$CONF"; then
  install -m 0644 "$tmp" "$CONF"
  changed=1
fi

if ! pidfile_alive "$MUNGE_PID"; then
  rm -f "$MUNGE_PID"
  runuser -u munge -- /usr/sbin/munged --force
fi
wait_until 20 "munged to answer" bash -c 'munge -n </dev/null | unmunge >/dev/null'

if [ "$changed" -eq 1 ]; then
  # A new slurm.conf: restart whatever runs with the old one.
  stop_pidfile "$RUN/slurmd.pid" slurmd 20
  stop_pidfile "$RUN/slurmctld.pid" slurmctld 20
fi
if ! pidfile_alive "$RUN/slurmctld.pid"; then
  rm -f "$RUN/slurmctld.pid"
  /usr/sbin/slurmctld
fi
wait_until 30 "slurmctld to answer (scontrol ping)" bash -c 'scontrol ping | grep -q "is UP"'
if ! pidfile_alive "$RUN/slurmd.pid"; then
  rm -f "$RUN/slurmd.pid"
  /usr/sbin/slurmd
fi

node_ready() {
  local state
  state=$(sinfo -h -n "$HOST" -o '%T' 2>/dev/null | head -n1)
  case "$state" in
    idle | mixed | allocated | completing) return 0 ;;
    down* | drain* | fail*) scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true; return 1 ;;
    *) return 1 ;;
  esac
}
wait_until 60 "node $HOST to become idle (sinfo)" node_ready
echo "colony: Slurm is up (partition $PARTITION on $HOST)" >&2
