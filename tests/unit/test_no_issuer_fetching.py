"""R1.1: a certificate nobody trusts yet makes the server fetch nothing.

Found in review: path building followed a certificate's AIA caIssuers URL, so any
self-signed certificate presented at login made the server GET an address of the
presenter's choosing — an internal one too (blind SSRF) — before it was refused. The
anchors and the configured intermediates are the whole PKI a login may chain to. The
"internal service" here is a real HTTP server on 127.0.0.1 that counts what it is asked.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.serialization import Encoding

from server.errors import CertificateRefused
from server.trust.validation import CertificateChecker
from tests.conftest import free_port
from tests.unit.test_anchor_limits import Issued, serving


async def test_r1_1_an_untrusted_certificates_urls_are_not_fetched() -> None:
    root = Issued("Root", None, ca=True)
    intermediate = Issued("Intermediate nobody configured", root, ca=True)
    port = free_port()
    asked: list[str] = []

    async def internal(request: web.Request) -> web.Response:
        asked.append(request.path)
        der = intermediate.cert.public_bytes(Encoding.DER)
        return web.Response(body=der, content_type="application/pkix-cert")

    stranger = Issued(
        "Stranger", None, ca=False, ca_issuers_url=f"http://127.0.0.1:{port}/internal-admin"
    )
    # issued under the root by an intermediate the server was not given: it could be fetched
    leaf = Issued("Leaf", intermediate, ca=False, ca_issuers_url=f"http://127.0.0.1:{port}/ca")
    async with (
        serving(port, "GET", "/{path:.*}", internal),
        aiohttp.ClientSession() as session,
    ):
        checker = CertificateChecker([root.asn1], [], "soft-fail", session)
        for presented in (stranger, leaf):
            try:
                await checker.check(presented.der)
            except CertificateRefused as refused:
                assert refused.reason == "untrusted"
            else:
                raise AssertionError("a certificate with no configured path was accepted")
        # configured, the intermediate makes the same leaf's path
        configured = CertificateChecker([root.asn1], [intermediate.asn1], "soft-fail", session)
        assert (await configured.check(leaf.der)).anchor
    assert asked == []
