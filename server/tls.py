"""The server's TLS context with client-certificate authentication (R1.1, R1.7).

``CERT_OPTIONAL`` so a request without a certificate reaches the application and gets a
401 with a reason. Python's ssl has no verify callback, so a certificate that does not chain
to the anchors ends the handshake (the client sees a TLS alert, not a 403); behind nginx
with ``ssl_verify_client optional_no_ca`` every refusal gets its reason instead.
``X509_V_FLAG_NO_CHECK_TIME`` lets an expired certificate through the handshake so the
application refuses it as ``expired``; the application checks every date itself.
``VERIFY_X509_PARTIAL_CHAIN`` lets an issuing CA listed as an anchor (as trusted lists do,
ETSI TS 119 612) be a trust anchor without its root.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from .settings import Settings
from .trust.validation import load_certificates

X509_V_FLAG_NO_CHECK_TIME = 0x200000


def server_context(settings: Settings) -> ssl.SSLContext:
    cert, key = settings.effective_tls_cert, settings.effective_tls_key
    if cert is None or key is None:
        raise ValueError("TLS is on but no server certificate is configured")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    context.verify_mode = ssl.CERT_OPTIONAL
    context.verify_flags = (
        ssl.VERIFY_DEFAULT | ssl.VERIFY_X509_PARTIAL_CHAIN | X509_V_FLAG_NO_CHECK_TIME
    )
    for anchor in load_certificates(settings.anchor_paths):
        context.load_verify_locations(cadata=anchor.dump())
    for intermediate in load_certificates(settings.intermediate_paths):
        context.load_verify_locations(cadata=intermediate.dump())
    return context


def client_context(root: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """A client context for tools and tests: trust ``root``, present ``cert`` when given."""
    context = ssl.create_default_context(cafile=str(root))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key) if key else None)
    return context
