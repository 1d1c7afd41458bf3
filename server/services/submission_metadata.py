"""The metadata part of a submission (R5.1, R5.6): read, parsed, checked.

It is read before the sender is authorised, so that the one statement that authorises the
sender (:meth:`.mailboxes.MailboxService.authorize` with ``naming``) also finds the
recipients — one round trip instead of one more per recipient (issue 4 benchmark). The
order of the answers is kept: a refusal of the sender comes before any complaint about
the body (:meth:`.submission.SubmissionService.submit`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ..errors import BadRequest, InvalidFields
from . import fields as f
from .json_body import parse_object, storable
from .mailboxes import Access

if TYPE_CHECKING:
    from .submission import IncomingPart

MAX_METADATA = 64 * 1024
MAX_RECIPIENTS = 50
MAX_SUBJECT = 200
MAX_MESSAGE = 20_000


async def read_all(chunks: AsyncIterator[bytes], limit: int, what: str) -> bytes:
    data = bytearray()
    async for chunk in chunks:
        data += chunk
        if len(data) > limit:
            raise BadRequest(f"The {what} part is larger than {limit} bytes.", "too_large")
    return bytes(data)


async def read_metadata(first: IncomingPart | None) -> dict[str, Any]:
    """The JSON object of the body's first part (None: there was none)."""
    if first is None:
        raise BadRequest("Send a multipart body with metadata and files.", "empty_body")
    if first.field != "metadata":
        raise BadRequest("The first part must be `metadata` (JSON).", "metadata_first")
    return parse_object(await read_all(first.chunks, MAX_METADATA, "metadata"), "metadata part")


def _to_refused(to: Any) -> str | None:
    """Why ``to`` is refused as a whole (not a list of strings, empty, too many), or None."""
    if not isinstance(to, list) or not to or not all(isinstance(a, str) for a in to):
        return "required"
    if len(to) > MAX_RECIPIENTS:
        return "too_many"
    return None


def recipient_addresses(to: Any) -> list[str]:
    """The recipients ``to`` names, normalised and without repeats; none for a value that
    is refused anyway: no lookups for those."""
    if _to_refused(to) is not None:
        return []
    return list(dict.fromkeys(f.mailbox_address(a) for a in to))


def checked_metadata(access: Access, body: dict[str, Any]) -> dict[str, Any]:
    """The metadata's values, or :class:`InvalidFields` naming every bad one. Recipients
    are judged by what was read with the authorisation (``access.addressees``)."""
    c = f.Collector()
    kind = c.check("kind", f.choice("registered", "return_receipt"), body.get("kind", "registered"))
    subject = c.check("subject", f.text, body.get("subject"))
    message = body.get("message", "")
    if not isinstance(message, str) or len(message) > MAX_MESSAGE:
        c.fail("message", "type" if not isinstance(message, str) else "too_long")
    reference = body.get("reference")
    if reference is not None and (not isinstance(reference, str) or len(reference) > 100):
        c.fail("reference", "type")
    to = body.get("to")
    refused = _to_refused(to)
    if refused is not None:
        c.fail("to", refused)
    recipients = recipient_addresses(to)
    names: dict[str, str] = {}
    for i, address in enumerate(recipients):
        mailbox = access.addressees.get(address)
        if mailbox is None:
            c.fail(f"to[{i}]", "unknown_recipient")
            continue
        names[address] = mailbox.display_name
        if mailbox.state != "active":
            c.fail(f"to[{i}]", "recipient_not_active")  # R5.6
        elif address == access.mailbox.address:
            c.fail(f"to[{i}]", "own_mailbox")
    if c.errors:
        raise InvalidFields(c.errors)
    if subject is not None and len(subject) > MAX_SUBJECT:
        raise InvalidFields([{"field": "subject", "reason": "too_long"}])
    return {
        "kind": kind,
        "subject": subject,
        "message": message,
        "reference": reference,
        "to": recipients,
        "names": names,  # display names, for the evidence
    }


#: Controls, invisible formatting (bidi overrides and isolates, zero-width space, soft
#: hyphen, BOM …) and line/paragraph separators: a name holding one is not shown as it is
#: (found in review: "racun\u202efdp.exe" printed as "racunexe.pdf" in a browser and as
#: "racunfdp.exe" on the PDF receipt).
_UNSEEN = frozenset({"Cc", "Cf", "Zl", "Zp"})
#: Zero-width (non-)joiners shape Indic and Arabic script and emoji; they stay.
_JOINERS = frozenset({"\u200c", "\u200d"})


def file_name_refused(name: str) -> bool:
    """Whether a part's file name cannot be kept as it was sent: a control character
    (CR/LF broke the download's header, and XML cannot carry most of them, so sealing the
    evidence failed), an invisible formatting character that makes it read as another name
    (:data:`_UNSEEN`), a noncharacter XML refuses, or text that cannot be stored. Refused
    rather than changed: the evidence names the file as the sender named it."""
    if not storable(name) or "\ufffe" in name or "\uffff" in name:
        return True
    return any(unicodedata.category(c) in _UNSEEN and c not in _JOINERS for c in name)


__all__ = [
    "MAX_METADATA",
    "checked_metadata",
    "file_name_refused",
    "read_all",
    "read_metadata",
    "recipient_addresses",
]
