"""``POST /api/v1/validate``: the validation tool over HTTP (R6.4).

The body is the file itself (any media type), or ``multipart/form-data`` with a ``file``
part and an optional ``content`` part (the detached data a signature or timestamp
covers). The answer is the :class:`~server.validate.report.ValidationReport` as JSON with
200 — also when something is not intact: the report says so. 413 ``too_large`` past
:data:`MAX_PART_BYTES` per part; 422 ``unsupported_format`` when the input is none of
PDF, XML signature, CMS signature or RFC 3161 timestamp; 400 ``empty_body`` /
``missing_file``.

Trust anchors are the application's (``VEP_TRUST_ANCHORS`` and the dev PKI root), loaded
once per process. Validation is CPU-bound, so it runs in a worker thread, leaving the
event loop to other requests.
"""

from __future__ import annotations

import asyncio

from aiohttp import BodyPartReader, web
from asn1crypto import x509

from ...errors import BadRequest, PayloadTooLarge, SignatureRefused
from ...validate import validate as validate_input
from ...validate.anchors import load_anchors, settings_anchor_paths
from ...validate.common import MAX_INPUT_BYTES
from ...validate.report import ValidationReport
from ..context import services
from .common import MALFORMED, malformed_multipart, read_body

MAX_PART_BYTES = MAX_INPUT_BYTES
#: a multipart body carries two parts and their headers
_MAX_MULTIPART_BYTES = 2 * MAX_PART_BYTES + 64 * 1024


async def _read_part(part: BodyPartReader) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(64 * 1024):
        size += len(chunk)
        if size > MAX_PART_BYTES:
            raise PayloadTooLarge(MAX_PART_BYTES)
        chunks.append(chunk)
    return b"".join(chunks)


async def _read(request: web.Request) -> tuple[bytes, bytes | None]:
    """The file and the optional detached content."""
    if not request.content_type.startswith("multipart/"):
        return await read_body(request, MAX_PART_BYTES), None
    if request.content_length is not None and request.content_length > _MAX_MULTIPART_BYTES:
        raise PayloadTooLarge(_MAX_MULTIPART_BYTES)
    parts: dict[str, bytes] = {}
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise BadRequest("Nested multipart bodies are not accepted.", "bad_multipart")
            if part.name in ("file", "content") and part.name not in parts:
                parts[part.name] = await _read_part(part)
            else:
                await part.release()
    except MALFORMED:
        raise malformed_multipart() from None
    if "file" not in parts:
        raise BadRequest("Send the file to validate in a part named 'file'.", "missing_file")
    return parts["file"], parts.get("content")


def _anchors(request: web.Request) -> list[x509.Certificate]:
    return load_anchors(settings_anchor_paths(services(request).settings))


def _validate_in_thread(
    data: bytes, content: bytes | None, anchors: list[x509.Certificate]
) -> ValidationReport:
    return asyncio.run(validate_input(data, content, anchors))


async def validate(request: web.Request) -> web.Response:
    data, content = await _read(request)
    if not data:
        raise BadRequest("Send the signed document, evidence or timestamp.", "empty_body")
    report = await asyncio.to_thread(_validate_in_thread, data, content, _anchors(request))
    if report.input_kind == "unknown":
        raise SignatureRefused(
            "unsupported_format",
            "The input is not a signed PDF, an XML signature, a CMS signature or an "
            "RFC 3161 timestamp.",
            input_sha256=report.input_sha256,
        )
    return web.json_response(report.as_json())
