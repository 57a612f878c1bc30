#!/usr/bin/env bash
# Runs a private OpenSSH server on 127.0.0.1 for the SSHManager tests. Idempotent. Everything it
# needs (host key, client key, authorized_keys, known_hosts, sshd_config, ssh_config) lives in one
# directory; ~/.ssh and /etc/ssh are never touched.
#
#   bash test/schedulers/start-sshd.sh          prints nothing on success
#   ssh -F /tmp/colony-sshd/ssh_config colony-sshd true
#   bash test/schedulers/stop-sshd.sh
#
# COLONY_SSHD_DIR (default /tmp/colony-sshd) and COLONY_SSHD_PORT (default 2222) move it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/lib.sh"

DIR="${COLONY_SSHD_DIR:-/tmp/colony-sshd}"
PORT="${COLONY_SSHD_PORT:-2222}"
USER_NAME="$(id -un)"

if ! [ -x /usr/sbin/sshd ] || ! command -v ssh >/dev/null 2>&1 || ! command -v ssh-keygen >/dev/null 2>&1; then
  ensure_packages openssh-server openssh-client
fi

install -d -m 0700 "$DIR"
# sshd refuses to start without its privilege-separation directory.
[ "$(id -u)" -eq 0 ] && install -d -m 0755 /run/sshd
[ -s "$DIR/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C colony-sshd-host -f "$DIR/host_ed25519"
[ -s "$DIR/client_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C colony-sshd-client -f "$DIR/client_ed25519"
cp "$DIR/client_ed25519.pub" "$DIR/authorized_keys"
chmod 0600 "$DIR/authorized_keys"
echo "[127.0.0.1]:$PORT $(cut -d' ' -f1-2 "$DIR/host_ed25519.pub")" >"$DIR/known_hosts"
echo "$PORT" >"$DIR/port"

cat >"$DIR/sshd_config.new" <<CONF
# Written by test/schedulers/start-sshd.sh
ListenAddress 127.0.0.1
Port $PORT
HostKey $DIR/host_ed25519
PidFile $DIR/sshd.pid
AuthorizedKeysFile $DIR/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
# The directory may be under /tmp, which StrictModes rejects.
StrictModes no
UsePAM no
X11Forwarding no
AllowTcpForwarding no
PrintMotd no
MaxStartups 100:30:200
MaxSessions 100
LogLevel ERROR
CONF

cat >"$DIR/ssh_config" <<CONF
# Written by test/schedulers/start-sshd.sh: use with ssh -F $DIR/ssh_config
Host colony-sshd 127.0.0.1 localhost
  HostName 127.0.0.1
  Port $PORT
  User $USER_NAME
  IdentityFile $DIR/client_ed25519
  IdentitiesOnly yes
  BatchMode yes
  UserKnownHostsFile $DIR/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  HostKeyAlias [127.0.0.1]:$PORT
  LogLevel ERROR
CONF

# A changed config (another port, say) needs a restart of a running sshd.
if ! cmp -s "$DIR/sshd_config.new" "$DIR/sshd_config" 2>/dev/null; then
  mv "$DIR/sshd_config.new" "$DIR/sshd_config"
  pidfile_alive "$DIR/sshd.pid" && stop_pidfile "$DIR/sshd.pid" sshd 10
else
  rm -f "$DIR/sshd_config.new"
fi
if ! pidfile_alive "$DIR/sshd.pid"; then
  rm -f "$DIR/sshd.pid"
  /usr/sbin/sshd -f "$DIR/sshd_config" -E "$DIR/sshd.log"
fi
wait_until 20 "sshd on 127.0.0.1:$PORT to accept a login" ssh -F "$DIR/ssh_config" colony-sshd true
echo "colony: sshd is up on 127.0.0.1:$PORT (ssh -F $DIR/ssh_config colony-sshd)" >&2
