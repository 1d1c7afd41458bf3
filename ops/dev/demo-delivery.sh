#!/usr/bin/env bash
# A formal delivery end to end against a `make run` server (issue 4 "done when"):
# a public body (Bojan's law firm, flagged by the operator) sends a return-receipt delivery
# with a PDF to Ana's mailbox; Ana (qualified-qscd, on a QSCD) signs the vročilnica,
# downloads the PDF; both download the evidence, which xmlsec1 and openssl ts accept.
#   ops/dev/demo-delivery.sh        (needs `make run` in another terminal)
set -euo pipefail
DATA=${DATA:-.data}
BIN=${BIN:-.venv/bin}
URL=${URL:-https://127.0.0.1:8443}
PKI="$DATA/pki"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
n=$(date +%s)
court="kranjc-$n"
person="ana-$n"

as() {  # as IDENTITY METHOD PATH [curl args...]
  local who=$1 method=$2 path=$3
  shift 3
  curl -sS --fail-with-body --cacert "$PKI/root-ca.pem" --cert-type P12 \
    --cert "$PKI/$who.p12:vep" -X "$method" "$URL$path" "$@"
}
field() { "$BIN/python" -c "import json,sys; print(json.load(sys.stdin)$1)"; }

register() {  # register IDENTITY JSON
  local who=$1 body=$2
  echo "$body" > "$work/reg.json"
  as "$who" POST /api/v1/registrations -H 'Content-Type: application/json' \
    --data-binary @"$work/reg.json" > "$work/started.json"
  as "$who" GET "$(field '["contract"]' < "$work/started.json")" -o "$work/contract.pdf"
  "$BIN/vep" sign-contract --p12 "$PKI/$who.p12" --pades "$work/contract.pdf" \
    "$work/signed.pdf" > /dev/null
  as "$who" PUT "$(field '["sign_at"]' < "$work/started.json")" \
    -H 'Content-Type: application/pdf' --data-binary @"$work/signed.pdf" > /dev/null
}

address='{"street": "Slovenska cesta 10", "postcode": "1000", "city": "Ljubljana"}'
echo "1. Bojan registers the law firm $court@vep.si; Ana registers $person@vep.si"
register qualified "{\"kind\": \"legal\", \"local_part\": \"$court\", \"registration_number\": \"3456781\",
 \"tax_number\": \"34567895\", \"iban\": \"SI56 1910 0000 0123 438\", \"vat_payer\": true,
 \"email\": \"pisarna@kranjc.si\", \"postal_address\": $address, \"accept_terms\": true,
 \"accept_price_list\": true, \"admin_password\": \"demo admin password 2\"}"
register qualified-qscd "{\"kind\": \"natural\", \"local_part\": \"$person\", \"tax_number\": \"10000003\",
 \"email\": \"ana@example.si\", \"birth_date\": \"1990-05-17\", \"postal_address\": $address,
 \"accept_terms\": true, \"accept_price_list\": true, \"admin_password\": \"demo admin password 3\"}"

echo "2. The operator flags $court@vep.si as a public body (vep admin, audited)"
VEP_DATABASE_URL=${VEP_DATABASE_URL:-$(ops/dev/pg.sh url "$DATA")} VEP_DATA_DIR="$DATA" \
  "$BIN/vep" admin public-body "$court@vep.si" on --operator demo

echo "3. The firm sends a return-receipt delivery with a PDF"
printf '%%PDF-1.4\n%% vabilo na narok / summons\n%%%%EOF\n' > "$work/vabilo.pdf"
as qualified POST "/api/v1/mailboxes/$court@vep.si/deliveries" \
  -F "metadata={\"to\": [\"$person@vep.si\"], \"subject\": \"Vabilo na narok\", \"message\": \"Glej prilogo.\", \"kind\": \"return_receipt\"};type=application/json" \
  -F "file=@$work/vabilo.pdf;type=application/pdf" > "$work/sent.json"
did=$(field '["delivery_id"]' < "$work/sent.json")
echo "   delivery $did"

echo "4. Ana fetches the vročilnica, signs it (detached CAdES) and returns it"
as qualified-qscd GET "/api/v1/deliveries/$did/receipt" -D "$work/headers" -o "$work/vrocilnica.xml"
rid=$(grep -i '^x-receipt-id:' "$work/headers" | tr -d '\r' | awk '{print $2}')
"$BIN/vep" sign-contract --p12 "$PKI/qualified-qscd.p12" --cades \
  "$work/vrocilnica.xml" "$work/vrocilnica.p7s" > /dev/null
as qualified-qscd POST "/api/v1/deliveries/$did/receipt?receipt_id=$rid" \
  -H 'Content-Type: application/pkcs7-signature' --data-binary @"$work/vrocilnica.p7s"
echo

echo "5. Ana downloads the PDF"
as qualified-qscd GET "/api/v1/deliveries/$did/parts/0" -o "$work/downloaded.pdf"
cmp "$work/vabilo.pdf" "$work/downloaded.pdf" && echo "   identical to what was sent"

echo "6. Both download the evidence; xmlsec1 and openssl ts verify each one"
for who in qualified qualified-qscd; do
  as "$who" GET "/api/v1/deliveries/$did/evidence" > "$work/evidence.json"
  "$BIN/python" -c "
import json, sys
for e in json.load(open('$work/evidence.json'))['evidence']:
    print(e['event'], e['href'])" | while read -r event href; do
    as "$who" GET "$href" -o "$work/ev.xml"
    xmlsec1 --verify --trusted-pem "$PKI/root-ca.pem" --untrusted-pem "$PKI/qualified-ca.pem" \
      --id-attr:Id "http://uri.etsi.org/01903/v1.3.2#:SignedProperties" "$work/ev.xml" \
      > /dev/null 2>&1 || { echo "xmlsec1 FAILED on $event"; exit 1; }
    "$BIN/python" - "$work/ev.xml" "$work/tok.der" > "$work/digest" <<'PY'
import base64, hashlib, sys
from lxml import etree
root = etree.parse(sys.argv[1]).getroot()
ns = {"ds": "http://www.w3.org/2000/09/xmldsig#", "x": "http://uri.etsi.org/01903/v1.3.2#"}
value = root.find(".//ds:SignatureValue", ns)
token = root.find(".//x:SignatureTimeStamp/x:EncapsulatedTimeStamp", ns)
open(sys.argv[2], "wb").write(base64.b64decode(token.text))
print(hashlib.sha256(etree.tostring(value, method="c14n", exclusive=True)).hexdigest())
PY
    openssl ts -verify -digest "$(cat "$work/digest")" -token_in -in "$work/tok.der" \
      -CAfile "$PKI/root-ca.pem" > /dev/null 2>&1 || { echo "openssl ts FAILED on $event"; exit 1; }
    echo "   $who: $event — xmlsec1 OK, openssl ts OK"
  done
done
echo "demo-delivery: ok"
