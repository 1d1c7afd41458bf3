"""Notification addresses of a mailbox, each proven by a code before use (R3.4, R5.4)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg

from .audit import AuditStore

if TYPE_CHECKING:
    from .db import Connection


@dataclass(frozen=True)
class NotificationAddress:
    address: str
    email: str
    code_hash: bytes | None
    code_expires_at: datetime | None
    code_attempts: int
    confirmed_at: datetime | None
    added_at: datetime


class ContactStore:
    def __init__(self, pool: asyncpg.Pool, audit: AuditStore) -> None:
        self._pool = pool
        self._audit = audit

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    async def of_mailbox(self, address: str) -> list[NotificationAddress]:
        rows = await self._pool.fetch(
            "SELECT * FROM notification_addresses WHERE address = $1 ORDER BY added_at",
            address,
        )
        return [_contact(r) for r in rows]

    async def get(self, address: str, email: str) -> NotificationAddress | None:
        row = await self._pool.fetchrow(
            "SELECT * FROM notification_addresses WHERE address = $1 AND email = $2",
            address,
            email,
        )
        return _contact(row) if row else None

    async def put_code(
        self,
        conn: Connection,
        address: str,
        email: str,
        code_hash: bytes,
        expires_at: datetime,
        at: datetime,
        actor: str,
    ) -> None:
        """Add (or re-send for) an address: a new code, unconfirmed until it is entered."""
        await conn.execute(
            """INSERT INTO notification_addresses
                   (address, email, code_hash, code_expires_at, code_attempts, added_at)
               VALUES ($1, $2, $3, $4, 0, $5)
               ON CONFLICT (address, email) DO UPDATE SET
                   code_hash = EXCLUDED.code_hash, code_expires_at = EXCLUDED.code_expires_at,
                   code_attempts = 0, confirmed_at = NULL""",
            address,
            email,
            code_hash,
            expires_at,
            at,
        )
        await self._audit.append(
            at,
            actor,
            "mailbox.notification_address.add",
            "success",
            {"address": address, "email": email},
            conn=conn,
        )

    async def take_code_attempt(
        self, address: str, email: str, at: datetime, max_attempts: int
    ) -> bytes | None:
        """Count an attempt before the code is compared; None when no attempt is left
        (expired, used up, or already confirmed). Parallel attempts serialise on the row."""
        row = await self._pool.fetchrow(
            """UPDATE notification_addresses SET code_attempts = code_attempts + 1
                WHERE address = $1 AND email = $2 AND code_hash IS NOT NULL
                  AND confirmed_at IS NULL AND code_expires_at > $3 AND code_attempts < $4
            RETURNING code_hash""",
            address, email, at, max_attempts,
        )  # fmt: skip
        return bytes(row["code_hash"]) if row else None

    async def record_attempt(
        self, address: str, email: str, ok: bool, at: datetime, actor: str
    ) -> None:
        """Confirm on a right code; either way audit the attempt (already counted)."""
        async with self._pool.acquire() as conn, conn.transaction():
            if ok:
                await conn.execute(
                    """UPDATE notification_addresses
                          SET confirmed_at = $3, code_hash = NULL, code_expires_at = NULL
                        WHERE address = $1 AND email = $2""",
                    address,
                    email,
                    at,
                )
            await self._audit.append(
                at,
                actor,
                "mailbox.notification_address.confirm",
                "success" if ok else "refused",
                {"address": address, "email": email},
                conn=conn,
            )

    async def remove(self, address: str, email: str, at: datetime, actor: str) -> bool:
        """Remove an address and give up what the mailbox still had queued for it."""
        async with self._pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                "DELETE FROM notification_addresses WHERE address = $1 AND email = $2",
                address,
                email,
            )
            if status != "DELETE 1":
                return False
            # What this mailbox queued for the address and has not sent yet (a code, a
            # notice) is not sent any more: the subscriber took the address away.
            await conn.execute(
                """UPDATE outbox SET given_up_at = $3, params = NULL,
                                     last_error = 'address_removed'
                    WHERE recipient = $2 AND params->>'mailbox' = $1
                      AND sent_at IS NULL AND given_up_at IS NULL""",
                address,
                email,
                at,
            )
            await self._audit.append(
                at,
                actor,
                "mailbox.notification_address.remove",
                "success",
                {"address": address, "email": email},
                conn=conn,
            )
        return True

    async def confirmed(self, conn: Connection, address: str) -> list[str]:
        """Where to notify (R5.4): confirmed addresses only, read in the caller's transaction."""
        rows = await conn.fetch(
            """SELECT email FROM notification_addresses
                WHERE address = $1 AND confirmed_at IS NOT NULL ORDER BY email""",
            address,
        )
        return [r["email"] for r in rows]


def _contact(row: asyncpg.Record) -> NotificationAddress:
    return NotificationAddress(
        address=row["address"],
        email=row["email"],
        code_hash=bytes(row["code_hash"]) if row["code_hash"] is not None else None,
        code_expires_at=row["code_expires_at"],
        code_attempts=row["code_attempts"],
        confirmed_at=row["confirmed_at"],
        added_at=row["added_at"],
    )
