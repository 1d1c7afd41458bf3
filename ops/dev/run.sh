#!/usr/bin/env bash
# `make run`: everything a newcomer needs, started in order; Ctrl-C stops what it started.
set -euo pipefail
DATA=${DATA:-.data}
PKI_PORT=${PKI_PORT:-9180}
BIN=${BIN:-.venv/bin}
started_pg=0
pki_pid=""
serve_pid=""

cleanup() {
  trap - INT TERM EXIT
  if [ -n "$serve_pid" ]; then kill -TERM "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; fi
  if [ -n "$pki_pid" ]; then kill "$pki_pid" 2>/dev/null || true; wait "$pki_pid" 2>/dev/null || true; fi
  if [ "$started_pg" = 1 ]; then ops/dev/pg.sh stop "$DATA" || true; echo "run: PostgreSQL stopped"; fi
}
trap cleanup INT TERM EXIT

if [ -z "${VEP_DATABASE_URL:-}" ]; then
  if ! ops/dev/pg.sh status "$DATA" >/dev/null 2>&1; then started_pg=1; fi
  VEP_DATABASE_URL=$(ops/dev/pg.sh start "$DATA")
  export VEP_DATABASE_URL
  echo "run: private PostgreSQL at $VEP_DATABASE_URL"
else
  echo "run: using VEP_DATABASE_URL (no cluster started)"
fi

"$BIN/vep" dev-pki init --dir "$DATA/pki" --port "$PKI_PORT"
if curl -sf "http://127.0.0.1:$PKI_PORT/_vep/healthz" >/dev/null 2>&1; then
  echo "run: dev PKI service already running on port $PKI_PORT"
else
  "$BIN/vep" dev-pki serve --dir "$DATA/pki" &
  pki_pid=$!
  for _ in $(seq 50); do
    curl -sf "http://127.0.0.1:$PKI_PORT/_vep/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
fi

export VEP_DATA_DIR=${VEP_DATA_DIR:-$DATA}
"$BIN/vep" migrate
cat <<MSG
run: demo identities (PEM + key + PKCS#12, password "vep") are in $DATA/pki/:
       qualified-qscd (LoA high), qualified (substantial), non-qualified, revoked,
       revocable, expired, key-usage, untrusted; root-ca.pem is the trust anchor.
     try: curl --cacert $DATA/pki/root-ca.pem --cert-type P12 \\
            --cert $DATA/pki/qualified-qscd.p12:vep https://127.0.0.1:8443/api/v1/session
     Ctrl-C stops everything this command started.
MSG
"$BIN/vep" serve &
serve_pid=$!
wait "$serve_pid"
