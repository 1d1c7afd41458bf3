"""The directory of mailbox addresses (R4): for logged-in users only, capped, rate-limited.

No query returns everything: a query needs at least two characters, at most 20 results
come back, and each person may look up 60 times an hour (configurable) across all nodes,
so the directory cannot be harvested (R4.3).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import timedelta

from ..clock import Clock
from ..errors import BadRequest, RateLimited
from ..store.directory import DirectoryEntry, DirectoryStore
from ..trust.validation import CertificateCheck

#: Counts directory lookups for the person (how many), raising past the limit (R4.3): what
#: the submission and registration services are given (:meth:`DirectoryService.take_lookup`).
Lookups = Callable[[CertificateCheck, int], Awaitable[None]]

MAX_RESULTS = 20
MIN_QUERY = 2
MAX_QUERY = 100
WINDOW = timedelta(hours=1)


class DirectoryService:
    def __init__(self, store: DirectoryStore, clock: Clock, lookups_per_hour: int) -> None:
        self._store = store
        self._clock = clock
        self._limit = lookups_per_hour

    async def search(self, check: CertificateCheck, query: str | None) -> list[DirectoryEntry]:
        text = " ".join((query or "").split())
        if len(text) < MIN_QUERY:
            raise BadRequest(f"Search with at least {MIN_QUERY} characters.", "query_too_short")
        if len(text) > MAX_QUERY:
            raise BadRequest(f"Search with at most {MAX_QUERY} characters.", "query_too_long")
        await self.take_lookup(check)
        return await self._store.search(text, MAX_RESULTS)

    async def take_lookup(self, check: CertificateCheck, count: int = 1) -> None:
        """Count ``count`` lookups for the person, or raise :class:`RateLimited` past the
        limit. A submission refused for unknown recipients counts one per address it
        named, and a registration told an address is taken one: each says which addresses
        exist, so without the limit they were ways round the directory's (R4.2, R4.3)."""
        now = self._clock.now()
        blocked_until = await self._store.take_lookup(
            check.facts.person_id, now, WINDOW, self._limit, count
        )
        if blocked_until is not None:
            wait = max(1, math.ceil((blocked_until - now).total_seconds()))
            raise RateLimited(
                f"At most {self._limit} directory lookups an hour (R4.3).", retry_after=wait
            )

    async def reference_list(self) -> list[str]:
        return await self._store.reference_list()
