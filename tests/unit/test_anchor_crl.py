"""R1.1: revocation by CRL works when the anchor is the issuing CA itself.

Found in review: with an issuing CA as the anchor (as the trusted list names them), every
CRL was refused — pyhanko-certvalidator found no path for a CRL issuer that is the anchor —
so a certificate without OCSP could never log in. The CRL here is a real one, signed by
the issuing CA and served on 127.0.0.1.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from server.errors import CertificateRefused
from server.trust.validation import CertificateChecker
from tests.conftest import free_port
from tests.unit.test_anchor_limits import Issued, serving


def crl(issuer: Issued, revoked: list[Issued]) -> bytes:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.name)
        .last_update(now - timedelta(minutes=1))
        .next_update(now + timedelta(days=1))
    )
    for cert in revoked:
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(cert.cert.serial_number)
            .revocation_date(now - timedelta(minutes=1))
            .build()
        )
        builder = builder.add_revoked_certificate(entry)
    return builder.sign(issuer.key, hashes.SHA256()).public_bytes(Encoding.DER)


async def test_r1_1_a_crl_signed_by_the_issuing_ca_anchor_is_believed() -> None:
    issuing = Issued("Issuing CA", Issued("Root", None, ca=True), ca=True, path_length=0)
    port = free_port()
    url = f"http://127.0.0.1:{port}/ca.crl"
    good = Issued("Good", issuing, ca=False, crl_url=url)
    revoked = Issued("Revoked", issuing, ca=False, crl_url=url)

    async def serve(_request: web.Request) -> web.Response:
        return web.Response(body=crl(issuing, [revoked]), content_type="application/pkix-crl")

    async with serving(port, "GET", "/ca.crl", serve), aiohttp.ClientSession() as session:
        for policy in ("require", "soft-fail"):
            checker = CertificateChecker([issuing.asn1], [], policy, session)  # type: ignore[arg-type]
            check = await checker.check(good.der)
            assert check.revocation_source == "crl", policy
            try:
                await checker.check(revoked.der)
            except CertificateRefused as refused:
                assert refused.reason == "revoked", policy
            else:
                raise AssertionError(f"a revoked certificate was accepted ({policy})")
