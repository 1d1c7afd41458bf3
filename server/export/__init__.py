"""R8.5: the signed archive for the successor provider (``vep admin export``) and its check
(``vep admin verify-export``)."""

from .archive import MANIFEST, SEAL, ExportResult, export_archive, provider_seal
from .verify import VerifyResult, verify_archive

__all__ = [
    "MANIFEST",
    "SEAL",
    "ExportResult",
    "VerifyResult",
    "export_archive",
    "provider_seal",
    "verify_archive",
]
