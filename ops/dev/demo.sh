#!/usr/bin/env bash
# The mailbox walk-through against a `make run` server (issue 3 "done when"):
# Ana registers Primer d.o.o.'s mailbox, signs the contract with her qualified certificate
# (vep sign-contract), adds Dejan as a delegate with the admin password; both see the
# mailbox, and Dejan finds the business in the directory.
#   ops/dev/demo.sh            (needs `make run` in another terminal)
set -euo pipefail
DATA=${DATA:-.data}
BIN=${BIN:-.venv/bin}
URL=${URL:-https://127.0.0.1:8443}
PKI="$DATA/pki"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
local_part="primer-$(date +%s)"
password="demo admin password 1"

as() {  # as IDENTITY METHOD PATH [curl args...]
  local who=$1 method=$2 path=$3
  shift 3
  curl -sS --fail-with-body --cacert "$PKI/root-ca.pem" --cert-type P12 \
    --cert "$PKI/$who.p12:vep" -X "$method" "$URL$path" "$@"
}
field() { "$BIN/python" -c "import json,sys; print(json.load(sys.stdin)$1)"; }

echo "1. Ana (qualified-qscd) registers $local_part@vep.si for Primer d.o.o."
cat > "$work/registration.json" <<JSON
{"kind": "legal", "local_part": "$local_part", "registration_number": "2345676",
 "tax_number": "23456787", "name": "Primer d.o.o.", "iban": "SI56 1910 0000 0123 438",
 "vat_payer": true, "email": "info@primer.si",
 "postal_address": {"street": "Dunajska cesta 1", "postcode": "1000", "city": "Ljubljana"},
 "accept_terms": true, "accept_price_list": true, "admin_password": "$password"}
JSON
as qualified-qscd POST /api/v1/registrations -H 'Content-Type: application/json' \
  --data-binary @"$work/registration.json" > "$work/started.json"
contract=$(field '["contract"]' < "$work/started.json")
sign_at=$(field '["sign_at"]' < "$work/started.json")
as qualified-qscd GET "$contract" -o "$work/contract.pdf"

echo "2. She signs the contract PDF (PAdES) with her key and returns it"
"$BIN/vep" sign-contract --p12 "$PKI/qualified-qscd.p12" --pades \
  "$work/contract.pdf" "$work/signed.pdf"
as qualified-qscd PUT "$sign_at" -H 'Content-Type: application/pdf' \
  --data-binary @"$work/signed.pdf"
echo

echo "3. She adds Dejan (delegate.p12) with the admin password"
"$BIN/python" - "$PKI/delegate.pem" "$password" > "$work/delegate.json" <<'PY'
import json, sys
print(json.dumps({"certificate": open(sys.argv[1]).read(), "permissions": ["read", "send"],
                  "admin_password": sys.argv[2]}))
PY
as qualified-qscd POST "/api/v1/mailboxes/$local_part@vep.si/delegates" \
  -H 'Content-Type: application/json' --data-binary @"$work/delegate.json"
echo

echo "4. Both see the mailbox"
for who in qualified-qscd delegate; do
  as "$who" GET /api/v1/mailboxes | "$BIN/python" -c "
import json, sys
rows = [m for m in json.load(sys.stdin)['mailboxes'] if m['address'] == '$local_part@vep.si']
assert rows, 'not listed'
print('   $who:', rows[0]['role'], rows[0]['permissions'])"
done

echo "5. Dejan finds the business in the directory"
as delegate GET "/api/v1/directory?q=Primer" | "$BIN/python" -c "
import json, sys
results = json.load(sys.stdin)['results']
assert any(r['address'] == '$local_part@vep.si' for r in results), results
print('   found', len(results), 'result(s), including $local_part@vep.si')"
echo "demo: ok"
