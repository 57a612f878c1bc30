# Shared helpers of the scheduler scripts in this folder (sourced, not run).
#
# Every start script is idempotent: it installs what is missing, starts what is not running and
# leaves alone what already runs. Daemons are found and stopped by their pid files; a zombie
# counts as dead (kill -0 alone would say it lives).

# The Debian packages are installed as root with apt-get; `apt-get update` runs at most once per
# script run, and only when something is missing.
_colony_apt_updated=0
ensure_packages() {
  local missing=()
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "colony: missing packages ${missing[*]}; run as root or: sudo apt-get install -y ${missing[*]}" >&2
    return 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if [ "$_colony_apt_updated" -eq 0 ]; then
    apt-get update -qq
    _colony_apt_updated=1
  fi
  echo "colony: installing ${missing[*]}" >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# pid_alive PID: the process exists and is not a zombie.
pid_alive() {
  local pid="$1"
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
  local state
  state=$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
  [ "$state" != Z ] && [ "$state" != X ]
}

pid_dead() { ! pid_alive "$1"; }

# pidfile_alive FILE: the pid in FILE is alive.
pidfile_alive() {
  [ -r "$1" ] && pid_alive "$(tr -dc 0-9 <"$1")"
}

# wait_until SECONDS DESCRIPTION COMMAND...: runs COMMAND every 0.1 s until it succeeds.
wait_until() {
  local limit="$1" what="$2"
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "colony: timed out after ${limit} s waiting for ${what}" >&2
      return 1
    fi
    sleep 0.1
  done
}

# stop_pidfile FILE NAME [SECONDS]: SIGTERM, wait, then SIGKILL; removes the pid file.
stop_pidfile() {
  local file="$1" name="$2" limit="${3:-20}"
  if ! pidfile_alive "$file"; then
    rm -f "$file"
    return 0
  fi
  local pid
  pid=$(tr -dc 0-9 <"$file")
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_until "$limit" "$name (pid $pid) to exit" pid_dead "$pid"; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

# Grid Engine asks three questions at install; answer them for a one-host cell named default.
preseed_gridengine() {
  [ "$(id -u)" -eq 0 ] || return 0
  debconf-set-selections <<DEB
gridengine-common shared/gridengineconfig boolean true
gridengine-common shared/gridenginecell string default
gridengine-common shared/gridenginemaster string $(hostname)
DEB
}
