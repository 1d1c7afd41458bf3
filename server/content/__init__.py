"""Delivery content encrypted at rest by the provider (R5.5).

``keys``: the master key and per-delivery data keys; ``stream``: the chunked AES-256-GCM
format of a part; ``store``: where parts live (:class:`FileContentStore`).
"""

from __future__ import annotations

from .files import StoredPart
from .keys import (
    DataKey,
    KeyUnwrapError,
    MasterKey,
    MasterKeyError,
    MasterKeyRing,
    WrappedKey,
    ensure_dev_master_key,
    load_master_key,
)
from .store import ContentNotFound, ContentStore, FileContentStore, SweepReport, TooLarge
from .stream import ContentCorrupted, ContentError

__all__ = [
    "ContentCorrupted",
    "ContentError",
    "ContentNotFound",
    "ContentStore",
    "DataKey",
    "FileContentStore",
    "KeyUnwrapError",
    "MasterKey",
    "MasterKeyError",
    "MasterKeyRing",
    "StoredPart",
    "SweepReport",
    "TooLarge",
    "WrappedKey",
    "ensure_dev_master_key",
    "load_master_key",
]
