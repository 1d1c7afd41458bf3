"""The provider's wind-down in SQL (R8.5): the announcement, its confirmations, its notices.

A wind-down is one row (a provider ceases once). It is *pending* from the announcement and
*effective* from the second confirmation by another operator; each confirmation is stored
with the detached CAdES signature over the announcement's exact bytes. Every write is one
transaction with its audit record (R9.1); a notice is recorded in ``wind_down_notices`` in
the transaction that queues its e-mail, so each recipient is told once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from .audit import AuditStore
from .lifecycle import notify_mailbox
from .outbox import OutboxStore

if TYPE_CHECKING:
    from .db import Connection

#: Mailboxes whose subscribers are told and which day 45 closes: every state with access.
ACCESS_STATES = ("temporary", "active", "suspended", "readonly")


@dataclass(frozen=True)
class Confirmation:
    person_id: str
    cert_fingerprint: str
    confirmed_at: datetime


@dataclass(frozen=True)
class WindDown:
    wind_down_id: uuid.UUID
    document: bytes
    announced_by: str
    announced_at: datetime
    effective_at: datetime | None
    closed_at: datetime | None
    confirmations: tuple[Confirmation, ...]
    mailboxes_notified: int
    ministry_notified: bool


class AlreadyConfirmed(Exception):
    """This person has confirmed this wind-down already (four-eyes needs another one)."""


class WindDownStore:
    def __init__(self, pool: asyncpg.Pool, audit: AuditStore) -> None:
        self.pool = pool
        self._audit = audit
        self._outbox = OutboxStore(pool)

    async def effective_at(self) -> datetime | None:
        """The moment the wind-down took effect, or None (none, or still pending)."""
        value: datetime | None = await self.pool.fetchval(
            "SELECT effective_at FROM wind_downs WHERE effective_at IS NOT NULL"
        )
        return value

    async def current(self) -> WindDown | None:
        row = await self.pool.fetchrow("SELECT * FROM wind_downs")
        if row is None:
            return None
        confirmations = await self.pool.fetch(
            """SELECT person_id, cert_fingerprint, confirmed_at FROM wind_down_confirmations
                WHERE wind_down_id = $1 ORDER BY confirmed_at, person_id""",
            row["wind_down_id"],
        )
        notices = await self.pool.fetchrow(
            """SELECT count(*) FILTER (WHERE recipient <> 'ministry') AS mailboxes,
                      count(*) FILTER (WHERE recipient = 'ministry') AS ministry
                 FROM wind_down_notices WHERE wind_down_id = $1""",
            row["wind_down_id"],
        )
        assert notices is not None
        return WindDown(
            wind_down_id=row["wind_down_id"],
            document=bytes(row["document"]),
            announced_by=row["announced_by"],
            announced_at=row["announced_at"],
            effective_at=row["effective_at"],
            closed_at=row["closed_at"],
            confirmations=tuple(
                Confirmation(c["person_id"], c["cert_fingerprint"], c["confirmed_at"])
                for c in confirmations
            ),
            mailboxes_notified=notices["mailboxes"],
            ministry_notified=notices["ministry"] > 0,
        )

    async def announce(
        self, wind_down_id: uuid.UUID, document: bytes, operator: str, at: datetime
    ) -> bool:
        """Record the pending announcement; False if there is a wind-down already."""
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                """INSERT INTO wind_downs (wind_down_id, document, announced_by, announced_at)
                   VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING""",
                wind_down_id,
                document,
                operator,
                at,
            )
            if status != "INSERT 0 1":
                return False
            await self._audit.append(
                at,
                f"operator:{operator}",
                "wind_down.announce",
                "success",
                {"wind_down_id": str(wind_down_id), "pending": "two operators' confirmations"},
                conn=conn,
            )
        return True

    async def confirm(
        self,
        wind_down_id: uuid.UUID,
        person_id: str,
        fingerprint: str,
        signature: bytes,
        verification: dict[str, Any],
        at: datetime,
        needed: int,
    ) -> tuple[int, datetime | None]:
        """Record one operator's confirmation; effective once ``needed`` different operators
        confirmed. Returns (confirmations, effective_at). Raises :class:`AlreadyConfirmed`."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT effective_at FROM wind_downs WHERE wind_down_id = $1 FOR UPDATE",
                wind_down_id,
            )
            assert row is not None, "the caller found the wind-down"
            status = await conn.execute(
                """INSERT INTO wind_down_confirmations (wind_down_id, person_id,
                       cert_fingerprint, signature, verification, confirmed_at)
                   VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING""",
                wind_down_id,
                person_id,
                fingerprint,
                signature,
                verification,
                at,
            )
            if status != "INSERT 0 1":
                raise AlreadyConfirmed(person_id)
            count: int = await conn.fetchval(
                "SELECT count(*) FROM wind_down_confirmations WHERE wind_down_id = $1",
                wind_down_id,
            )
            details: dict[str, Any] = {
                "wind_down_id": str(wind_down_id),
                "cert_fingerprint": fingerprint,
                "confirmation": count,
            }
            await self._audit.append(
                at, person_id, "wind_down.confirm", "success", details, conn=conn
            )
            effective: datetime | None = row["effective_at"]
            if effective is None and count >= needed:
                effective = at
                await conn.execute(
                    "UPDATE wind_downs SET effective_at = $2 WHERE wind_down_id = $1",
                    wind_down_id,
                    at,
                )
                await self._audit.append(
                    at,
                    person_id,
                    "wind_down.effective",
                    "success",
                    {"wind_down_id": str(wind_down_id), "effective_at": at.isoformat()},
                    conn=conn,
                )
        return count, effective

    async def refused(self, at: datetime, actor: str | None, details: dict[str, Any]) -> None:
        """A refused confirmation is audited too (R9.1), with the reason."""
        await self._audit.append(at, actor, "wind_down.confirm", "refused", details)

    async def unnotified_mailboxes(self, wind_down_id: uuid.UUID) -> list[str]:
        rows = await self.pool.fetch(
            """SELECT address FROM mailboxes m
                WHERE state = ANY($2::text[])
                  AND NOT EXISTS (SELECT 1 FROM wind_down_notices n
                                   WHERE n.wind_down_id = $1 AND n.recipient = m.address)
                ORDER BY address""",
            wind_down_id,
            list(ACCESS_STATES),
        )
        return [r["address"] for r in rows]

    async def notify_mailbox(
        self, wind_down_id: uuid.UUID, address: str, params: dict[str, str], at: datetime
    ) -> bool:
        """Tell the mailbox's subscriber once, with the audit record; False if told before.
        (One summary record after the loop was lost to a stop in it: the next run skips
        the mailboxes already told, so it never wrote one for them.)"""
        async with self.pool.acquire() as conn, conn.transaction():
            if not await self._record_notice(conn, wind_down_id, address, at):
                return False
            await notify_mailbox(conn, self._outbox, address, params, at, kind="wind_down")
            await self._audit.append(
                at,
                "system:wind-down",
                "wind_down.notice",
                "success",
                {"wind_down_id": str(wind_down_id), "recipient": address},
                conn=conn,
            )
        return True

    async def notify_ministry(
        self, wind_down_id: uuid.UUID, email: str, params: dict[str, str], at: datetime
    ) -> bool:
        """Tell the supervisory ministry once, with the audit record; False if told before."""
        async with self.pool.acquire() as conn, conn.transaction():
            if not await self._record_notice(conn, wind_down_id, "ministry", at):
                return False
            await self._outbox.enqueue(
                conn, to=email, kind="wind_down_ministry", params=params, at=at
            )
            await self._audit.append(
                at,
                "system:wind-down",
                "wind_down.notice",
                "success",
                {"wind_down_id": str(wind_down_id), "recipient": "ministry"},
                conn=conn,
            )
        return True

    async def _record_notice(
        self, conn: Connection, wind_down_id: uuid.UUID, recipient: str, at: datetime
    ) -> bool:
        status = await conn.execute(
            """INSERT INTO wind_down_notices (wind_down_id, recipient, queued_at)
               VALUES ($1, $2, $3) ON CONFLICT DO NOTHING""",
            wind_down_id,
            recipient,
            at,
        )
        return bool(status == "INSERT 0 1")

    async def open_mailboxes(self) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT address FROM mailboxes WHERE state = ANY($1::text[]) ORDER BY address",
            list(ACCESS_STATES),
        )
        return [r["address"] for r in rows]

    async def mark_closed(self, wind_down_id: uuid.UUID, at: datetime) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                """UPDATE wind_downs SET closed_at = $2
                    WHERE wind_down_id = $1 AND closed_at IS NULL""",
                wind_down_id,
                at,
            )
            if status != "UPDATE 1":
                return False
            await self._audit.append(
                at,
                "system:wind-down",
                "wind_down.closed",
                "success",
                {"wind_down_id": str(wind_down_id)},
                conn=conn,
            )
        return True
