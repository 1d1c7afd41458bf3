#!/usr/bin/env bash
# Debian packages the project needs beside its Python dependencies, installed when missing
# and we are root (a fresh machine); otherwise it only says what is missing.
#   fonts-dejavu-core  the contract PDF's font with č, š, ž (R2.1)
#   curl               used by make run and by the CLI tests
#   xmlsec1            the independent XAdES verifier the evidence tests use (R6.4)
#   softhsm2           the PKCS#11 stand-in for the seal key's HSM (R6.5)
# PostgreSQL itself is installed by ops/dev/pg.sh when missing.
set -euo pipefail
missing=()
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
command -v xmlsec1 >/dev/null 2>&1 || missing+=(xmlsec1)
command -v softhsm2-util >/dev/null 2>&1 || missing+=(softhsm2)
command -v curl >/dev/null 2>&1 || missing+=(curl)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: installing ${missing[*]}" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
else
  echo "system-deps: please install: ${missing[*]}" >&2
fi
