#!/usr/bin/env bash
# Makes a private CA and the certificates a Colony NATS cluster uses, into OUT_DIR:
#
#   ca.pem                           the CA certificate: clients trust it (COLONY_NATS_CA)
#   ca-key.pem                       the CA key: keep it off the servers
#   server.pem     server-key.pem    for the client port and the routes of every NATS node
#                                    (serverAuth + clientAuth: a route dials out with it too)
#   client.pem     client-key.pem    an optional client certificate (for `verify: true`;
#                                    COLONY_NATS_CERT and COLONY_NATS_KEY)
#
# SANs: localhost, 127.0.0.1, nats-1..3 (compose), nats and *.nats (Kubernetes headless service),
# plus whatever EXTRA_SANS adds ("DNS:nats.example.org,IP:10.0.0.5").
#
# Idempotent: existing files are kept, so servers keep their certificates across runs. A server
# certificate that no longer verifies against the CA, or lacks a requested SAN, is remade.
# FORCE=1 remakes everything. Private keys are written with mode 0600 and never belong in git.
#
# usage: deploy/certs/gen-certs.sh OUT_DIR [DAYS]
set -euo pipefail

out=${1:?usage: gen-certs.sh OUT_DIR [DAYS]}
days=${2:-825}
sans="DNS:localhost,IP:127.0.0.1,DNS:nats-1,DNS:nats-2,DNS:nats-3,DNS:nats,DNS:*.nats"
[ -n "${EXTRA_SANS:-}" ] && sans="$sans,$EXTRA_SANS"

command -v openssl >/dev/null || { echo "gen-certs: openssl is required (apt-get install -y openssl)" >&2; exit 1; }
mkdir -p "$out"
cd "$out"
umask 077
[ "${FORCE:-0}" = 1 ] && rm -f ca.pem ca-key.pem server.pem server-key.pem client.pem client-key.pem

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; chmod 600 "$1"; }

if [ ! -s ca.pem ] || [ ! -s ca-key.pem ]; then
  newkey ca-key.pem
  openssl req -x509 -new -key ca-key.pem -sha256 -days "$((days + 365))" -subj "/O=Colony/CN=Colony NATS CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.pem
  rm -f server.pem client.pem   # signed by a CA that is gone
  echo "gen-certs: made CA $out/ca.pem"
fi

# sign NAME CN EXTENDED_KEY_USAGE SUBJECT_ALT_NAMES
sign() {
  local name=$1 cn=$2 eku=$3 alt=$4 ext
  ext=$(mktemp)
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [ -n "$alt" ] && echo "subjectAltName=$alt"
  } >"$ext"
  [ -s "$name-key.pem" ] || newkey "$name-key.pem"
  openssl req -new -key "$name-key.pem" -subj "/O=Colony/CN=$cn" -out "$name.csr"
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -sha256 -days "$days" \
    -extfile "$ext" -out "$name.pem" 2>/dev/null
  rm -f "$name.csr" "$ext"
  chmod 644 "$name.pem"
  echo "gen-certs: made $out/$name.pem"
}

# Whether NAME.pem exists, verifies against the CA and carries every SAN asked for.
current() {
  local name=$1 alt=$2 have want
  [ -s "$name.pem" ] && [ -s "$name-key.pem" ] || return 1
  openssl verify -CAfile ca.pem "$name.pem" >/dev/null 2>&1 || return 1
  [ -z "$alt" ] && return 0
  have=$(openssl x509 -in "$name.pem" -noout -ext subjectAltName 2>/dev/null | tail -n +2 | tr -d ' ')
  have=${have//IPAddress/IP}
  IFS=, read -ra want <<<"$alt"
  for s in "${want[@]}"; do
    [[ ",$have," == *",$s,"* ]] || return 1
  done
}

current server "$sans" || sign server "nats" "serverAuth,clientAuth" "$sans"
current client "" || sign client "colony-client" "clientAuth" ""
rm -f ca.srl
chmod 644 ca.pem
openssl verify -CAfile ca.pem server.pem client.pem >/dev/null
