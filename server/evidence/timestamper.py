"""RFC 3161 time-stamps for evidence (XAdES-T, ETSI EN 319 132-1 §5.3; R6.2, R6.5).

:class:`HttpTimeStamper` sends a TimeStampReq with a fresh nonce and ``certReq`` over HTTP
(RFC 3161 §3.4) and accepts the answer only after the checks of RFC 3161 §2.4.2: status
granted, the same nonce, the same messageImprint, and a TSA signature that verifies
(:mod:`server.evidence.rfc3161`). Whether the TSA is *trusted* (its chain) is a verifier's
question; whether it is *qualified* is the sealer's (R6.6).

In development and tests the TSA is the dev PKI's (certomancer serves it at
``<url_prefix>/vep-dev/tsa/tsa``); production names an external TSA with ``VEP_TSA_URL``.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import aiohttp
from asn1crypto import core, tsp

from ..settings import Settings
from . import rfc3161
from .errors import TimestampError
from .rfc3161 import TokenInfo

#: certomancer's route ``/{arch}/tsa/{label}`` for the dev PKI's time-stamping service.
DEV_TSA_PATH = "/vep-dev/tsa/tsa"
_GRANTED = ("granted", "granted_with_mods")


@dataclass(frozen=True)
class Stamp:
    """An issued token and the facts of it the sealer needs (R6.2, R6.6)."""

    der: bytes  # the TimeStampToken: ContentInfo of SignedData
    gen_time: datetime
    hash_name: str
    imprint: bytes
    qualified: bool  # EN 319 422 qtstStatement, or a QcCompliance TSA certificate

    @classmethod
    def of(cls, info: TokenInfo) -> Stamp:
        return cls(info.der, info.gen_time, info.hash_name, info.imprint, info.qualified)


class TimeStamper(Protocol):
    async def stamp(self, digest: bytes, hash_name: str = "sha256") -> Stamp:
        """A TimeStampToken over ``digest`` (``.der``: ContentInfo of SignedData) with its
        facts: read from the answer of an external TSA after the checks of RFC 3161 §2.4.2
        (status, nonce, imprint, the TSA's signature), known without parsing for a token
        made here."""
        ...

    async def stamp_all(self, digests: Sequence[bytes], hash_name: str = "sha256") -> list[Stamp]:
        """A token over each of ``digests``, in their order, as :meth:`stamp` makes them; an
        external TSA is asked for them all at once (its round trips overlap)."""
        ...


class HttpTimeStamper:
    """An RFC 3161 client over HTTP on a shared aiohttp session."""

    def __init__(self, url: str, session: aiohttp.ClientSession, timeout: float = 10.0) -> None:
        self.url = url
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def stamp(self, digest: bytes, hash_name: str = "sha256") -> Stamp:
        return Stamp.of(await self.timestamp_info(digest, hash_name))

    async def stamp_all(self, digests: Sequence[bytes], hash_name: str = "sha256") -> list[Stamp]:
        return list(await asyncio.gather(*(self.stamp(d, hash_name) for d in digests)))

    async def timestamp_info(self, digest: bytes, hash_name: str = "sha256") -> TokenInfo:
        """The token, parsed and checked per RFC 3161 §2.4.2."""
        if len(digest) != len(rfc3161.digest(b"", hash_name)):
            raise TimestampError(f"a {hash_name} digest has another length")
        nonce = secrets.randbits(63) | 1  # positive and non-zero
        request = tsp.TimeStampReq(
            {
                "version": 1,
                "message_imprint": {
                    "hash_algorithm": {"algorithm": hash_name},
                    "hashed_message": digest,
                },
                "nonce": nonce,
                "cert_req": True,
            }
        )
        try:
            async with self._session.post(
                self.url,
                data=request.dump(),
                headers={"Content-Type": "application/timestamp-query"},
                timeout=self._timeout,
            ) as response:
                if response.status != 200:
                    raise TimestampError(f"the TSA answered HTTP {response.status}")
                body = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TimestampError(f"the TSA is unreachable: {type(exc).__name__}") from None
        return check_response(body, digest, hash_name, nonce)


def check_response(body: bytes, digest: bytes, hash_name: str, nonce: int) -> TokenInfo:
    """RFC 3161 §2.4.2: status granted, our nonce, our imprint, a valid TSA signature."""
    try:
        response = tsp.TimeStampResp.load(body)
        status = response["status"]["status"].native
        token = response["time_stamp_token"]
    except (ValueError, TypeError, KeyError) as exc:
        raise TimestampError(f"malformed TSA response: {exc}") from None
    if status not in _GRANTED:
        text = response["status"]["status_string"].native
        raise TimestampError(f"the TSA refused: {status} {text or ''}".strip())
    # (not ``token.native``: converting a whole token to Python objects costs ~20 ms)
    if isinstance(token, core.Void) or not token.contents:
        raise TimestampError("the TSA granted but sent no token")
    info = rfc3161.parse(token.dump())
    if info.nonce != nonce:
        raise TimestampError("the TSA's token carries another nonce (replayed or mixed up)")
    if info.hash_name != hash_name or info.imprint != digest:
        raise TimestampError("the TSA's token is over another messageImprint")
    rfc3161.verify_signature(info)
    return info


def tsa_url_for(settings: Settings) -> str:
    """``VEP_TSA_URL``, or the dev PKI's TSA (R6.5: local TSA in development and tests)."""
    if settings.tsa_url is not None:
        return settings.tsa_url
    # Imported here: the dev PKI needs certomancer, a development-only dependency.
    from ..devpki import generate as devpki

    pki = devpki.load(settings.pki_dir)
    if pki is None:
        raise TimestampError(
            f"no VEP_TSA_URL and no development PKI in {settings.pki_dir} to take its TSA from"
        )
    return pki.url_prefix.rstrip("/") + DEV_TSA_PATH


__all__ = [
    "DEV_TSA_PATH",
    "HttpTimeStamper",
    "Stamp",
    "TimeStamper",
    "check_response",
    "tsa_url_for",
]
