"""R1.3: a live certificate check takes a fresh OCSP answer even when the responder's clock
runs a little ahead of ours.

Found in review: pyhanko-certvalidator refuses revocation data whose ``thisUpdate`` is
more than a second after the validation moment, which is taken before the fetch. A
responder signing on demand with its clock three seconds ahead (or a slow fetch) made
every login ``revocation_unknown``. The responder here is a real one on 127.0.0.1: it
answers RFC 6960 requests with "good", signed by the issuing CA, ``thisUpdate`` by its
own clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
from aiohttp import web
from asn1crypto import core, ocsp
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from server.errors import CertificateRefused
from server.trust.validation import CertificateChecker
from tests.conftest import free_port
from tests.unit.test_anchor_limits import Issued, serving


def ocsp_response(request: bytes, issuer: Issued, ahead: timedelta) -> bytes:
    """A "good" answer to ``request`` from a responder whose clock is ``ahead`` of ours."""
    asked = ocsp.OCSPRequest.load(request)["tbs_request"]["request_list"][0]["req_cert"]
    now = datetime.now(UTC).replace(microsecond=0) + ahead
    key_hash = issuer.asn1.public_key.sha1  # RFC 6960 ResponderID byKey
    tbs = ocsp.ResponseData(
        {
            "responder_id": ocsp.ResponderId(name="by_key", value=key_hash),
            "produced_at": now,
            "responses": [
                {
                    "cert_id": asked,
                    "cert_status": ocsp.CertStatus(name="good", value=core.Null()),
                    "this_update": now,
                    "next_update": now + timedelta(hours=1),
                }
            ],
        }
    )
    basic = ocsp.BasicOCSPResponse(
        {
            "tbs_response_data": tbs,
            "signature_algorithm": {"algorithm": "sha256_ecdsa"},
            "signature": issuer.key.sign(tbs.dump(), ec.ECDSA(hashes.SHA256())),
        }
    )
    return ocsp.OCSPResponse(
        {
            "response_status": "successful",
            "response_bytes": {"response_type": "basic_ocsp_response", "response": basic},
        }
    ).dump()


async def test_r1_3_a_responder_a_few_seconds_ahead_is_still_believed() -> None:
    root = Issued("Root", None, ca=True)
    issuing = Issued("Issuing CA", root, ca=True, path_length=0)
    port = free_port()
    leaf = Issued("Leaf", issuing, ca=False, ocsp_url=f"http://127.0.0.1:{port}/ocsp")
    ahead = {"by": timedelta(0)}

    async def answer(request: web.Request) -> web.Response:
        body = ocsp_response(await request.read(), issuing, ahead["by"])
        return web.Response(body=body, content_type="application/ocsp-response")

    async with serving(port, "POST", "/ocsp", answer), aiohttp.ClientSession() as session:
        # the issuing CA as the anchor: "require" would want revocation data for it too
        checker = CertificateChecker([issuing.asn1], [], "require", session)
        for seconds in (0, 3, 30):
            ahead["by"] = timedelta(seconds=seconds)
            check = await checker.check(leaf.der)
            assert check.revocation_source == "ocsp", seconds
            # a signature checked as of "now" (a vročilnica, a contract) too (review)
            check = await checker.check(leaf.der, datetime.now(UTC))
            assert check.revocation_source == "ocsp", seconds
        # a check at a past moment keeps the strict rule: an answer from after it does
        # not speak for it
        ahead["by"] = timedelta(0)
        try:
            await checker.check(leaf.der, datetime.now(UTC) - timedelta(minutes=5))
        except CertificateRefused as refused:
            assert refused.reason == "revocation_unknown"
        else:
            raise AssertionError("an answer from after the moment was taken for it")
