"""Human-readable PDF receipts for evidence, sealed PAdES-B-T by the provider (R6.3, R6.6).

:mod:`.data` reads what a receipt states out of the sealed evidence XML, :mod:`.render`
sets it as a bilingual PDF (fpdf2), :mod:`.sign` seals it with the evidence seal key and a
signature time-stamp (pyHanko), and :mod:`.issuer` puts the three together for the app.
"""

from .data import ReceiptData, ReceiptDataError, receipt_data_from_evidence
from .issuer import ReceiptIssuer, receipt_issuer_from_settings
from .render import render_receipt, title_for
from .sign import PdfSealer, ReceiptTimeStamper, SealKeyPdfSigner, seal_pdf

__all__ = [
    "PdfSealer",
    "ReceiptData",
    "ReceiptDataError",
    "ReceiptIssuer",
    "ReceiptTimeStamper",
    "SealKeyPdfSigner",
    "receipt_data_from_evidence",
    "receipt_issuer_from_settings",
    "render_receipt",
    "seal_pdf",
    "title_for",
]
