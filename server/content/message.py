"""The message text of a delivery, encrypted at rest like its parts (R5.5).

It is content: hidden before acceptance (R5.3), gone with the content (R8.1). Found in
review: it was kept in clear in ``deliveries.message`` while every part was encrypted. It is
sealed under a key derived from the delivery's data key (HKDF-SHA256, its own ``info``), so
crypto-erasure — clearing the wrapped key — makes it unreadable too. The sealed form is text
(``vep-sealed:1:`` + base64 of nonce and ciphertext), so the column and the submission
statement stay as they are; a row written before keeps its clear text and is shown as is,
until ``vep admin content-rekey`` seals it.
"""

from __future__ import annotations

import base64
import binascii
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .keys import DataKey

PREFIX = "vep-sealed:1:"
_NONCE = 12


class MessageUnreadable(Exception):
    """The sealed message does not open with this delivery's key."""


def _aead(data_key: DataKey) -> tuple[AESGCM, bytes]:
    ident = data_key.delivery_id.encode("utf-8")
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"vep/content/message/v1\0" + ident
    ).derive(data_key.secret)
    return AESGCM(key), b"vep/message/v1\0" + ident


def seal_message(data_key: DataKey, text: str) -> str:
    aead, aad = _aead(data_key)
    nonce = secrets.token_bytes(_NONCE)
    sealed = nonce + aead.encrypt(nonce, text.encode("utf-8"), aad)
    return PREFIX + base64.b64encode(sealed).decode("ascii")


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)


def open_message(data_key: DataKey, stored: str) -> str:
    aead, aad = _aead(data_key)
    try:
        sealed = base64.b64decode(stored[len(PREFIX) :], validate=True)
        return aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], aad).decode("utf-8")
    except (binascii.Error, InvalidTag, ValueError):
        raise MessageUnreadable from None


__all__ = ["PREFIX", "MessageUnreadable", "is_sealed", "open_message", "seal_message"]
