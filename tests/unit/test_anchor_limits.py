"""R1.1: a trust anchor is held to its own validity period and path-length limit.

Found in review: given to pyhanko-certvalidator as bare certificates, anchors were trusted
without limits. An issuing CA listed as an anchor (the trusted list names issuing CAs)
went on vouching for logins after it expired, and one with ``pathLenConstraint`` 0 for a
sub-CA it must never have made. Each case is refused the same way under the CA's root.
The certificates are made here; none names a revocation service, so under ``soft-fail``
only the path decides.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import aiohttp
import pyhanko.sign.ades.qualified_asn1 as qualified_asn1
import pytest
from aiohttp import web
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID, ObjectIdentifier

from server.errors import CertificateRefused
from server.trust.validation import CertificateChecker

NOW = datetime.now(UTC)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
QC_STATEMENTS = ObjectIdentifier("1.3.6.1.5.5.7.1.3")


class Issued:
    def __init__(
        self,
        name: str,
        issuer: Issued | None,
        *,
        ca: bool,
        path_length: int | None = None,
        not_after: datetime = NOW + timedelta(days=365),
        ocsp_url: str | None = None,
        crl_url: str | None = None,
        ca_issuers_url: str | None = None,
    ) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(issuer.name if issuer else self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(days=3000))
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
            .add_extension(
                x509.KeyUsage(not ca, ca, False, False, False, ca, ca, False, False),
                critical=True,
            )
        )
        if not ca:  # a qualified certificate for electronic signatures (EN 319 412-5)
            statements = qualified_asn1.QcStatements(
                [
                    {"statement_id": "qc_compliance"},
                    {"statement_id": "qc_type", "statement_info": ["qct_esign"]},
                ]
            ).dump()
            builder = builder.add_extension(
                x509.UnrecognizedExtension(QC_STATEMENTS, statements), critical=False
            )
        accesses = [
            x509.AccessDescription(method, x509.UniformResourceIdentifier(url))
            for method, url in (
                (AuthorityInformationAccessOID.OCSP, ocsp_url),
                (AuthorityInformationAccessOID.CA_ISSUERS, ca_issuers_url),
            )
            if url is not None
        ]
        if accesses:
            builder = builder.add_extension(
                x509.AuthorityInformationAccess(accesses), critical=False
            )
        if crl_url is not None:
            point = x509.DistributionPoint(
                [x509.UniformResourceIdentifier(crl_url)], None, None, None
            )
            builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
        signer = issuer.key if issuer else self.key
        self.cert = builder.sign(signer, hashes.SHA256())

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(Encoding.DER)

    @property
    def asn1(self) -> asn1_x509.Certificate:
        return asn1_x509.Certificate.load(self.der)


@asynccontextmanager
async def serving(port: int, method: str, path: str, handler: Handler) -> AsyncIterator[None]:
    """A real HTTP server on 127.0.0.1:``port`` for the test's OCSP, CRL or issuer URLs."""
    app = web.Application()
    app.router.add_route(method, path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield
    finally:
        await runner.cleanup()


async def check(leaf: Issued, anchor: Issued, *others: Issued) -> str | None:
    """The refusal's reason, or None when the leaf is accepted."""
    async with aiohttp.ClientSession() as session:
        checker = CertificateChecker([anchor.asn1], [o.asn1 for o in others], "soft-fail", session)
        try:
            await checker.check(leaf.der)
        except CertificateRefused as refused:
            return refused.reason
    return None


@pytest.fixture
def root() -> Issued:
    return Issued("Root", None, ca=True)


async def test_r1_1_an_expired_issuing_ca_listed_as_anchor_vouches_for_nobody(
    root: Issued,
) -> None:
    valid = Issued("Issuing CA", root, ca=True, path_length=0)
    expired = Issued("Issuing CA", root, ca=True, path_length=0, not_after=NOW - timedelta(1))
    assert await check(Issued("Leaf", valid, ca=False), valid) is None
    leaf = Issued("Leaf", expired, ca=False)
    assert await check(leaf, root, expired) == "expired"  # under its root
    assert await check(leaf, expired) == "expired"  # and as an anchor itself


async def test_r1_1_an_anchors_path_length_limit_holds(root: Issued) -> None:
    issuing = Issued("Issuing CA", root, ca=True, path_length=0)
    sub = Issued("Sub-CA it may not make", issuing, ca=True)
    leaf = Issued("Leaf", sub, ca=False)
    assert await check(Issued("Direct leaf", issuing, ca=False), issuing) is None
    assert await check(leaf, root, issuing, sub) == "untrusted"  # under its root
    assert await check(leaf, issuing, sub) == "untrusted"  # and as an anchor itself
