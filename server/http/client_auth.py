"""Where the client certificate comes from (R1.1, R1.7).

Direct TLS: the certificate of the handshake (``CERT_OPTIONAL``: no certificate is allowed
through the handshake so that the application can answer 401 with a reason).
Behind a proxy: the ``X-SSL-Client-Cert`` header that nginx fills with
``$ssl_client_escaped_cert`` (URL-encoded PEM) — honoured only when the TCP peer is in
``VEP_TRUSTED_PROXIES``; from any other address the header is ignored.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Sequence
from urllib.parse import unquote

from aiohttp import web

from ..errors import CertificateRefused
from ..settings import IPNetwork
from ..trust.certs import load_der

HEADER = "X-SSL-Client-Cert"


def peer_address(request: web.Request) -> str | None:
    peername = request.transport.get_extra_info("peername") if request.transport else None
    if not peername:
        return None
    return str(peername[0])


def is_trusted_proxy(address: str | None, proxies: Sequence[IPNetwork]) -> bool:
    if address is None or not proxies:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    # a dual-stack listener on "::" sees an IPv4 proxy as ::ffff:a.b.c.d (found in review:
    # every request through nginx was then refused for want of a certificate)
    forms: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        forms.append(ip.ipv4_mapped)  # and as configured in either form
    return any(form in net for form in forms for net in proxies)


def client_certificate(request: web.Request, proxies: Sequence[IPNetwork]) -> bytes | None:
    """DER of the client certificate, or None when the client presented none."""
    if is_trusted_proxy(peer_address(request), proxies):
        header = request.headers.get(HEADER, "").strip()
        if not header:
            return None
        pem_text = unquote(header)
        if "BEGIN CERTIFICATE" not in pem_text:
            raise CertificateRefused("malformed", f"{HEADER} does not hold a PEM certificate.")
        return load_der(pem_text.encode("ascii", "replace"))
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    if not isinstance(ssl_object, ssl.SSLObject):
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return der if der else None
