"""The content sweep (R5.5): files that no committed row refers to are removed.

A crash between writing a part and committing its row (or a node killed mid-upload) leaves
an orphan file; the sweep removes such files once they are older than the grace period, so
an upload still in progress is never touched.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ..clock import Clock
from ..content.store import ContentStore, SweepReport
from ..store.deliveries import DeliveryStore

#: Longer than any submission takes from the first part written to the commit.
GRACE = timedelta(hours=24)


class ContentSweeper:
    def __init__(self, clock: Clock, content: ContentStore, deliveries: DeliveryStore) -> None:
        self._clock = clock
        self._content = content
        self._deliveries = deliveries

    async def run(self, now: datetime | None = None) -> SweepReport:
        now = now or self._clock.now()
        return await self._content.sweep(self._deliveries.live_locators, now - GRACE)
