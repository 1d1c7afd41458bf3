"""Directory search (R4.1–R4.3) and the public reference list (R4.4).

Only mailboxes that are active and listed can be found: businesses unless they opted out,
natural persons only when they opted in (``directory_listed``). Results are capped and every
lookup is counted per person in PostgreSQL, so the limit holds across server nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg


@dataclass(frozen=True)
class DirectoryEntry:
    address: str
    name: str
    kind: str  # business | person
    registration_number: str | None
    city: str | None


def _like(text: str) -> str:
    """A LIKE pattern matching ``text`` literally anywhere (wildcards in input escaped)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class DirectoryStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def take_lookup(
        self, person_id: str, at: datetime, window: timedelta, limit: int, count: int = 1
    ) -> datetime | None:
        """Count ``count`` lookups; None when allowed, else when enough counted ones expire
        for them (a request for more than the whole limit: after a full window).

        Serialised per person with an advisory lock, so parallel requests cannot overrun.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", person_id)
            await conn.execute(
                "DELETE FROM directory_lookups WHERE person_id = $1 AND looked_up_at <= $2",
                person_id,
                at - window,
            )
            rows = await conn.fetch(
                """SELECT looked_up_at FROM directory_lookups
                    WHERE person_id = $1 ORDER BY looked_up_at""",
                person_id,
            )
            if count > limit:
                return at + window
            if len(rows) + count > limit:
                freed: datetime = rows[len(rows) + count - limit - 1]["looked_up_at"]
                return freed + window
            await conn.execute(
                """INSERT INTO directory_lookups (person_id, looked_up_at)
                   SELECT $1, $2 FROM generate_series(1, $3)""",
                person_id,
                at,
                count,
            )
        return None

    async def search(self, query: str, limit: int) -> list[DirectoryEntry]:
        pattern = _like(query)
        digits = query.replace(" ", "")
        rows = await self._pool.fetch(
            r"""SELECT m.address, m.display_name, s.kind, s.registration_number,
                       s.postal_address->>'city' AS city
                  FROM mailboxes m JOIN subscribers s USING (subscriber_id)
                 WHERE m.state = 'active' AND m.directory_listed
                   AND (m.display_name ILIKE $1 ESCAPE '\'
                        OR m.address ILIKE $1 ESCAPE '\'
                        OR s.registration_number = $2
                        OR s.tax_number = $2
                        OR concat_ws(' ', s.postal_address->>'street',
                                     s.postal_address->>'postcode',
                                     s.postal_address->>'city') ILIKE $1 ESCAPE '\')
                 ORDER BY m.display_name, m.address
                 LIMIT $3""",
            pattern,
            digits,
            limit,
        )
        return [
            DirectoryEntry(
                address=r["address"],
                name=r["display_name"],
                kind="business" if r["kind"] == "legal" else "person",
                registration_number=r["registration_number"],
                city=r["city"],
            )
            for r in rows
        ]

    async def reference_list(self) -> list[str]:
        rows = await self._pool.fetch(
            """SELECT DISTINCT m.display_name FROM mailboxes m JOIN subscribers s
                   USING (subscriber_id)
                WHERE s.kind = 'legal' AND m.state = 'active' AND m.reference_listed
                ORDER BY m.display_name"""
        )
        return [r["display_name"] for r in rows]
