"""R8.5: the signed archive for the successor provider (``vep admin export``) and its check
(``vep admin verify-export``)."""

from .archive import MANIFEST, SEAL, ExportResult, ProviderSeal, export_archive
from .verify import VerifyResult, verify_archive

__all__ = [
    "MANIFEST",
    "SEAL",
    "ExportResult",
    "ProviderSeal",
    "VerifyResult",
    "export_archive",
    "verify_archive",
]
