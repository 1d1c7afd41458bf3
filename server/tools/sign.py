"""``vep sign-contract``: sign the subscription contract for people without a signing tool.

R2.1 asks the subscriber to sign the issued contract with their qualified certificate. Most
people do it in Acrobat or a national signing app; this helper does the same from a
PKCS#12 file, producing what ``server.trust.signatures`` accepts:

- PAdES baseline B-B (ETSI EN 319 142-1 §6): one incremental update of the issued PDF
  with an ``ETSI.CAdES.detached`` signature in the field ``Podpis``; the claimed signing
  time is the signature dictionary's /M (PAdES forbids the signing-time attribute).
- CAdES baseline B-B (ETSI EN 319 122-1 §6), detached, DER: signed attributes
  content-type, message-digest, signing-time and signing-certificate-v2.

The ``async_`` functions are for callers that already run an event loop (the server, the
tests); the plain ones wrap them for the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path

from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.sign import fields, signers
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes

FIELD_NAME = "Podpis"
DIGEST = "sha256"


def _signer(p12: bytes, password: bytes) -> signers.SimpleSigner:
    """The key and certificates of the PKCS#12; ``ValueError`` on a bad file or password."""
    signer = signers.SimpleSigner.load_pkcs12_data(p12, other_certs=(), passphrase=password)
    assert isinstance(signer, signers.SimpleSigner)
    return signer


async def async_sign_pades(pdf: bytes, p12: bytes, password: bytes) -> bytes:
    """``pdf`` with a PAdES B-B signature appended as one incremental update."""
    writer = IncrementalPdfFileWriter(BytesIO(pdf))
    meta = signers.PdfSignatureMetadata(
        field_name=FIELD_NAME,
        md_algorithm=DIGEST,
        subfilter=fields.SigSeedSubFilter.PADES,
    )
    output = await signers.async_sign_pdf(writer, meta, signer=_signer(p12, password))
    return bytes(output.getvalue())


async def async_sign_cades_detached(data: bytes, p12: bytes, password: bytes) -> bytes:
    """A detached CAdES B-B signature (DER ``ContentInfo``/``SignedData``) over ``data``."""
    content_info = await _signer(p12, password).async_sign_general_data(
        data,
        DIGEST,
        detached=True,
        use_cades=True,
        signed_attr_settings=PdfCMSSignedAttributes(signing_time=datetime.now(UTC)),
    )
    return bytes(content_info.dump())


def sign_pades(pdf: bytes, p12: bytes, password: bytes) -> bytes:
    """Blocking :func:`async_sign_pades`; not for use inside a running event loop."""
    return asyncio.run(async_sign_pades(pdf, p12, password))


def sign_cades_detached(data: bytes, p12: bytes, password: bytes) -> bytes:
    """Blocking :func:`async_sign_cades_detached`; not inside a running event loop."""
    return asyncio.run(async_sign_cades_detached(data, p12, password))


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``sign-contract`` on the ``vep`` command's subparsers."""
    parser = subparsers.add_parser(
        "sign-contract",
        help="sign an issued contract with a PKCS#12 certificate (PAdES or detached CAdES)",
    )
    parser.add_argument("--p12", required=True, type=Path, help="PKCS#12 file (.p12/.pfx)")
    parser.add_argument("--password", default="vep", help="PKCS#12 password (default: vep)")
    form = parser.add_mutually_exclusive_group(required=True)
    form.add_argument("--pades", action="store_true", help="signed PDF (PAdES B-B)")
    form.add_argument("--cades", action="store_true", help="detached signature .p7s (CAdES)")
    parser.add_argument("input", type=Path, help="the contract PDF as issued")
    parser.add_argument("output", type=Path, help="signed PDF or .p7s to write")


def run(args: argparse.Namespace) -> int:
    """Sign ``args.input`` into ``args.output``; 0 on success, 1 with a message on failure."""
    try:
        document = Path(args.input).read_bytes()
        p12 = Path(args.p12).read_bytes()
    except OSError as exc:
        print(f"vep: {exc}", file=sys.stderr)
        return 1
    password = str(args.password).encode("utf-8")
    try:
        if args.pades:
            signed = sign_pades(document, p12, password)
        else:
            signed = sign_cades_detached(document, p12, password)
    except (ValueError, PdfError) as exc:  # a bad PKCS#12 or password, or not a PDF
        print(f"vep: cannot sign: {exc}", file=sys.stderr)
        return 1
    try:
        Path(args.output).write_bytes(signed)
    except OSError as exc:
        print(f"vep: {exc}", file=sys.stderr)
        return 1
    form = "PAdES signed PDF" if args.pades else "detached CAdES signature"
    print(f"vep: wrote {form} to {args.output}")
    return 0


__all__ = [
    "FIELD_NAME",
    "add_cli",
    "async_sign_cades_detached",
    "async_sign_pades",
    "run",
    "sign_cades_detached",
    "sign_pades",
]
