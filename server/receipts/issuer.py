"""Issue receipts: render the evidence as a PDF and seal it PAdES-B-T (R6.3, R6.6).

One :class:`ReceiptIssuer` per application, built at start-up with
:func:`receipt_issuer_from_settings` from the same seal key and TSA as the evidence sealer
(:mod:`server.evidence.factory`). Like the sealer it fails closed (R6.6): a qualified
configuration whose seal key is not qualified stops the start, and a non-qualified
time-stamp stops the receipt.

A receipt says "qualified" only when its evidence was issued in qualified mode *and* the
receipt itself is sealed in qualified mode; otherwise it says plainly that it is not.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import aiohttp

from ..evidence.hsm import Pkcs11Signer
from ..evidence.seal import qualification_problem
from ..evidence.signer import FileKeySigner, load_signer
from ..evidence.timestamper import tsa_url_for
from ..settings import Settings
from .data import ReceiptData, receipt_data_from_evidence
from .fonts import compact_fonts
from .render import render_receipt
from .sign import PdfSealer, ReceiptTimeStamper

#: Where the compact receipt fonts are kept, under the data directory.
FONT_CACHE = Path("cache") / "receipt-fonts"


class ReceiptIssuer:
    """Holds the seal key, the TSA client and the font; :meth:`receipt_for` does the rest."""

    def __init__(
        self,
        signer: FileKeySigner | Pkcs11Signer,
        timestamper: ReceiptTimeStamper,
        font: Path,
        qualified: bool,
    ) -> None:
        if qualified:
            problem = qualification_problem(signer)
            if problem is not None:
                raise problem
            if not timestamper.qualified:
                raise ValueError("a qualified receipt issuer needs a qualified-only timestamper")
        self.qualified = qualified
        self.font = font
        self._sealer = PdfSealer(signer, timestamper)

    def data_for(self, evidence_xml: bytes) -> ReceiptData:
        """What the receipt for ``evidence_xml`` states (qualified only if both are)."""
        data = receipt_data_from_evidence(evidence_xml)
        return replace(data, qualified=data.qualified and self.qualified)

    def render(self, evidence_xml: bytes) -> bytes:
        """The unsigned receipt PDF (deterministic for the same evidence)."""
        return render_receipt(self.data_for(evidence_xml), self.font)

    async def receipt_for(self, evidence_xml: bytes) -> bytes:
        """The sealed, time-stamped receipt PDF for the sealed evidence ``evidence_xml``.

        Raises :class:`~server.receipts.data.ReceiptDataError` for bytes that are not our
        evidence, and the evidence errors (``NotQualified``, ``SignerError``) or pyHanko's
        ``SigningError``/``TimestampRequestError`` when it cannot be sealed.
        """
        # Rendering is some tens of milliseconds of pure-Python CPU (fpdf2): off the loop,
        # so that other requests interleave. Each render has its own FPDF and fonts.
        pdf = await asyncio.to_thread(self.render, evidence_xml)
        return await self._sealer.seal(pdf)


def receipt_issuer_from_settings(
    settings: Settings,
    session: aiohttp.ClientSession,
    signer: FileKeySigner | Pkcs11Signer | None = None,
) -> ReceiptIssuer:
    """The issuer the settings describe: the evidence seal key (:func:`load_signer`, or
    ``signer`` to share one already loaded), the evidence TSA (:func:`tsa_url_for`), and
    ``contract_font`` cut down once into ``<data dir>/cache/receipt-fonts``.

    Raises NotQualified at once in a qualified configuration whose seal cannot be
    qualified (R6.6), and what :func:`load_signer` raises for a missing or wrong key.
    """
    timestamper = ReceiptTimeStamper(
        tsa_url_for(settings),
        session,
        qualified=settings.qualified,
        timeout=settings.fetch_timeout_seconds,
    )
    font = compact_fonts(settings.contract_font, settings.data_dir / FONT_CACHE)
    return ReceiptIssuer(signer or load_signer(settings), timestamper, font, settings.qualified)


__all__ = ["FONT_CACHE", "ReceiptIssuer", "receipt_issuer_from_settings"]
