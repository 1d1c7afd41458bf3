"""The content store a node runs with, from its settings (R5.5).

One place for it: the server and the CLI's jobs (the content sweep, retention) must open
the same directory with the same master key and the same inline limit, or a job would
read a part the server wrote as missing.
"""

from __future__ import annotations

from ..settings import Settings, SettingsError
from .keys import MasterKeyRing, ensure_dev_master_key, load_master_key
from .store import FileContentStore


def content_store_from_settings(
    settings: Settings, create_dev_key: bool = False
) -> FileContentStore:
    """The file store under ``data_dir/content``. ``create_dev_key`` makes the master key
    on first start of a development node (``dev_pki``); elsewhere a missing key stops the
    start (:func:`.keys.load_master_key` names it). Retired keys join the ring: they
    unwrap rows made before a rotation (R5.5)."""
    key_file = settings.effective_content_key_file
    if create_dev_key and settings.dev_pki and not key_file.exists():
        ensure_dev_master_key(key_file)  # development set-up only
    current = load_master_key(key_file, settings.content_key_version)
    retired = [load_master_key(path, version) for version, path in settings.content_retired_keys]
    try:
        ring = MasterKeyRing(current, retired)
    except ValueError as exc:  # a key listed twice (the settings refuse repeated versions)
        raise SettingsError("content_retired_keys", str(exc)) from None
    return FileContentStore(
        settings.data_dir / "content", ring, inline_max=settings.content_inline_max_bytes
    )
