"""``vep admin content-rekey``: every live delivery's data key wrapped under the current
master key, and messages kept in clear from before they were sealed, sealed (R5.5).

Why: a master key is rotated when it may have leaked, and for crypto-erasure beyond the
database — backups and WAL keep old rows, whose wrapped keys open for as long as the key
that wrapped them exists. The rotation is: a new key file with the next version as
``content_key_file``/``content_key_version``, the old one listed in
``content_retired_keys`` (every node still reads every row), this command, then the old
key file destroyed and its entry removed. The data keys themselves do not change, so no
content file is rewritten. A row that does not open is left as it is and reported.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from ..clock import Clock
from ..content.keys import KeyUnwrapError, WrappedKey
from ..content.message import is_sealed, seal_message
from ..content.store import ContentStore
from ..store.rekey import KeyedRow, RekeyStore

log = logging.getLogger(__name__)
BATCH = 200


@dataclass(frozen=True)
class RekeyReport:
    seen: int
    rewrapped: int
    messages_sealed: int
    #: Deliveries left under another key: their key opens with no key of this node, or a
    #: node not yet on the new key wrote them during the run ("id: why").
    unreadable: tuple[str, ...]


class ContentRekeyService:
    def __init__(self, clock: Clock, store: RekeyStore, content: ContentStore) -> None:
        self._clock = clock
        self._store = store
        self._content = content

    async def run(self, operator: str) -> RekeyReport:
        seen = rewrapped = sealed = 0
        left: dict[str, str] = {}  # delivery id → why it is still under another key

        def change(rows: Sequence[KeyedRow]) -> list[KeyedRow]:
            nonlocal rewrapped, sealed
            out = []
            for row in rows:
                ident = str(row.delivery_id)
                wrapped = WrappedKey(row.key_version, bytes(row.wrapped_key))
                try:
                    key = self._content.data_key(wrapped, ident)
                except KeyUnwrapError as exc:
                    log.error("delivery key does not unwrap", extra={"delivery_id": ident})
                    left[ident] = str(exc)
                    continue
                again = self._content.rewrapped(wrapped, key)
                message = row.message
                if message and not is_sealed(message):
                    message = seal_message(key, message)
                    sealed += 1
                if again is None and message == row.message:
                    continue
                if again is not None:
                    wrapped, rewrapped = again, rewrapped + 1
                out.append(KeyedRow(row.delivery_id, wrapped.version, wrapped.blob, message))
            return out

        after = None
        while True:
            batch = await self._store.batch(
                after, BATCH, change, self._clock.now(), f"operator:{operator}"
            )
            seen += batch.seen
            if batch.last is None:
                break
            after = batch.last
        # Whatever is still under another key is reported, whether it did not open or a
        # node still on the old key wrote it during the run: the old key must stay.
        version = self._content.key_version
        for behind in await self._store.not_under(version):
            left.setdefault(str(behind), "still under another master key version")
        report = RekeyReport(
            seen, rewrapped, sealed, tuple(f"{ident}: {why}" for ident, why in left.items())
        )
        await self._store.finished(
            self._clock.now(),
            f"operator:{operator}",
            {
                "key_version": version,
                "seen": seen,
                "rewrapped": rewrapped,
                "messages_sealed": sealed,
                "left": list(left),
            },
        )
        return report
