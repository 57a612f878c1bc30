#!/usr/bin/env bash
# Brings up a one-host Grid Engine 8.1 (sge_qmaster + sge_execd) with one queue, all.q, on this
# machine. Idempotent: installs the Debian packages when missing, configures what is not yet
# configured, starts the daemons that are not running. Needs root.
#
#   bash test/schedulers/start-sge.sh      then: qsub -terse -S /bin/bash -b y true
#   bash test/schedulers/stop-sge.sh
#
# See ../shared/reference/schedulers.md for why each setting is here.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/lib.sh"

HOST="$(hostname)"
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
COMMON="$SGE_ROOT/$SGE_CELL/common"
QMASTER_PID=/var/spool/gridengine/qmaster/qmaster.pid
# execd spools under the name it resolves for itself (localhost here, through host_aliases).
execd_pidfile() {
  local f
  for f in /var/spool/gridengine/execd/*/execd.pid; do
    if pidfile_alive "$f"; then echo "$f"; return 0; fi
  done
  return 1
}
QUEUE="${COLONY_SGE_QUEUE:-all.q}"
# More slots than cores: test workers mostly wait, and concurrent test runs share the queue.
SLOTS="${COLONY_SGE_SLOTS:-8}"
[ "$SLOTS" -lt 2 ] && SLOTS=2

if ! [ -x /usr/sbin/sge_qmaster ] || ! command -v qsub >/dev/null 2>&1; then
  preseed_gridengine
  ensure_packages gridengine-master gridengine-exec gridengine-client
fi

# The host name resolves to 127.0.0.1, whose reverse name is localhost: without the alias commlib
# refuses every client ("client IP resolved to host name localhost").
alias_line="$HOST localhost"
if ! grep -qxF "$alias_line" "$COMMON/host_aliases" 2>/dev/null; then
  echo "$alias_line" >"$COMMON/host_aliases"
fi
[ "$(cat "$COMMON/act_qmaster" 2>/dev/null)" = "$HOST" ] || echo "$HOST" >"$COMMON/act_qmaster"

qmaster_up() { qconf -sh >/dev/null 2>&1; }

if ! pidfile_alive "$QMASTER_PID"; then
  rm -f "$QMASTER_PID"
  /usr/sbin/sge_qmaster
fi
wait_until 60 "sge_qmaster to answer (qconf -sh)" qmaster_up

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Global configuration: let root (uid/gid 0) run jobs; Debian ships min_uid/min_gid 1000.
if qconf -sconf global | grep -Eq '^min_(uid|gid) +[1-9]'; then
  cat >"$tmp/editor" <<'ED'
#!/bin/sh
sed -i -E 's/^(min_uid|min_gid)( +).*/\1\20/' "$1"
ED
  chmod +x "$tmp/editor"
  EDITOR="$tmp/editor" qconf -mconf global >/dev/null
fi

# The scheduler runs every second and dispatches at once on submit and finish: qsub to job start
# takes 0.2 to 0.3 s.
qconf -ssconf >"$tmp/sconf"
if ! grep -Eq '^schedule_interval +0:0:1$' "$tmp/sconf" || ! grep -Eq '^flush_submit_sec +1$' "$tmp/sconf" \
  || ! grep -Eq '^flush_finish_sec +1$' "$tmp/sconf"; then
  sed -i -E -e 's/^(schedule_interval +).*/\10:0:1/' -e 's/^(flush_submit_sec +).*/\11/' \
    -e 's/^(flush_finish_sec +).*/\11/' "$tmp/sconf"
  qconf -Msconf "$tmp/sconf" >/dev/null
fi

qconf -ss 2>/dev/null | grep -qxF "$HOST" || qconf -as "$HOST" >/dev/null

if ! qconf -sel 2>/dev/null | grep -qxF "$HOST"; then
  cat >"$tmp/exechost" <<EH
hostname              $HOST
load_scaling          NONE
complex_values        NONE
user_lists            NONE
xuser_lists           NONE
projects              NONE
xprojects             NONE
usage_scaling         NONE
report_variables      NONE
EH
  qconf -Ae "$tmp/exechost" >/dev/null
fi

# Debian's queue template names parallel environments that do not exist and has a load threshold
# that a busy 2-core machine trips; posix_compliant mode ignores the script's #! line (qsub -S).
cat >"$tmp/queue" <<Q
qname                 $QUEUE
hostlist              $HOST
seq_no                0
load_thresholds       NONE
suspend_thresholds    NONE
nsuspend              1
suspend_interval      00:05:00
priority              0
min_cpu_interval      00:05:00
processors            UNDEFINED
qtype                 BATCH INTERACTIVE
ckpt_list             NONE
pe_list               NONE
rerun                 FALSE
slots                 $SLOTS
tmpdir                /tmp
shell                 /bin/bash
prolog                NONE
epilog                NONE
shell_start_mode      posix_compliant
starter_method        NONE
suspend_method        NONE
resume_method         NONE
terminate_method      NONE
notify                00:00:60
owner_list            NONE
user_lists            NONE
xuser_lists           NONE
subordinate_list      NONE
complex_values        NONE
projects              NONE
xprojects             NONE
calendar              NONE
initial_state         default
s_rt                  INFINITY
h_rt                  INFINITY
s_cpu                 INFINITY
h_cpu                 INFINITY
s_fsize               INFINITY
h_fsize               INFINITY
s_data                INFINITY
h_data                INFINITY
s_stack               INFINITY
h_stack               INFINITY
s_core                INFINITY
h_core                INFINITY
s_rss                 INFINITY
h_rss                 INFINITY
s_vmem                INFINITY
h_vmem                INFINITY
Q
if ! qconf -sql 2>/dev/null | grep -qxF "$QUEUE"; then
  qconf -Aq "$tmp/queue" >/dev/null
else
  qconf -sq "$QUEUE" | awk '{print $1, $2}' >"$tmp/have"
  awk '{print $1, $2}' "$tmp/queue" >"$tmp/want"
  cmp -s "$tmp/have" "$tmp/want" || qconf -Mq "$tmp/queue" >/dev/null
fi

if ! execd_pidfile >/dev/null; then
  rm -f /var/spool/gridengine/execd/*/execd.pid
  /usr/sbin/sge_execd
fi

# Ready when the queue instance on this host is neither unknown (u) nor in error (E): the execd
# has reported its load.
queue_ready() {
  local states
  states=$(qstat -f -q "$QUEUE@$HOST" 2>/dev/null | awk -v q="$QUEUE@$HOST" '$1 == q { print $6 }')
  qstat -f -q "$QUEUE@$HOST" 2>/dev/null | grep -q "^$QUEUE@$HOST" && ! [[ "$states" =~ [uEdD] ]]
}
if ! queue_ready && qstat -f -q "$QUEUE@$HOST" 2>/dev/null | awk -v q="$QUEUE@$HOST" '$1 == q { print $6 }' | grep -q E; then
  qmod -cq "$QUEUE@$HOST" >/dev/null 2>&1 || true
fi
wait_until 60 "queue $QUEUE@$HOST to come up (qstat -f)" queue_ready
echo "colony: Grid Engine is up (queue $QUEUE@$HOST, $SLOTS slots)" >&2
