"""Mailboxes: state with its history (R3.3), admin password counters (R1.5), settings (R3.4)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from .audit import AuditStore

if TYPE_CHECKING:
    from .db import Connection


@dataclass(frozen=True)
class Mailbox:
    address: str
    local_part: str
    domain: str
    subscriber_id: Any
    subscriber_kind: str
    kind: str
    state: str
    public_body: bool
    display_name: str
    directory_listed: bool
    reference_listed: bool
    einvoice_signing_authorised: bool
    encryption_cert: bytes | None
    admin_password_hash: str
    admin_failures: int
    admin_locks: int
    admin_locked_until: datetime | None
    paper_contract_received_at: datetime | None
    created_at: datetime
    #: R8.4: the end of read-only access after termination (state ``readonly``)
    readonly_until: datetime | None = None


@dataclass(frozen=True)
class StateChange:
    address: str
    from_state: str | None
    to_state: str
    changed_at: datetime
    actor: str
    reason: str


@dataclass(frozen=True)
class PasswordCounters:
    failures: int
    locks: int
    locked_until: datetime | None


@dataclass(frozen=True)
class PasswordTry:
    """A try that was counted and may now be checked against the hash."""

    counters: PasswordCounters
    password_hash: str


async def record_state_change(conn: Connection, audit: AuditStore, change: StateChange) -> None:
    """The history row (R3.3) and the audit record (R9.1) of a state change, in the caller's
    transaction: every path that moves a mailbox writes both the same way."""
    await conn.execute(
        """INSERT INTO mailbox_state_changes
               (address, from_state, to_state, changed_at, actor, reason)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        change.address,
        change.from_state,
        change.to_state,
        change.changed_at,
        change.actor,
        change.reason,
    )
    await audit.append(
        change.changed_at,
        change.actor,
        "mailbox.state",
        "success",
        {
            "address": change.address,
            "from": change.from_state,
            "to": change.to_state,
            "reason": change.reason,
        },
        conn=conn,
    )


_SELECT = """SELECT m.*, s.kind AS subscriber_kind
               FROM mailboxes m JOIN subscribers s USING (subscriber_id)"""

#: R1.5: after this many wrong passwords in a row the password is locked.
MAX_FAILURES = 5
#: R1.5: the first lock lasts 15 minutes and doubles with each further lock.
FIRST_LOCK_SECONDS = 900


class MailboxStore:
    def __init__(self, pool: asyncpg.Pool, audit: AuditStore) -> None:
        self._pool = pool
        self._audit = audit

    async def get(self, address: str) -> Mailbox | None:
        # A submission looks its recipients up with this, one statement each: one statement
        # with ``address = ANY($1)`` was re-planned on every call (its generic plan assumes
        # ten addresses, so PostgreSQL keeps a custom plan), which cost more PostgreSQL CPU
        # per delivery than the round trips it saved (issue 4 benchmark, one recipient).
        row = await self._pool.fetchrow(f"{_SELECT} WHERE m.address = $1", address)
        return mailbox_from_row(row) if row else None

    async def take_password_try(self, address: str, at: datetime) -> PasswordTry | None:
        """Count a try *before* the password is checked; None while the password is locked.

        Counting first (as a failure, undone by :meth:`record_password_success`) is what
        makes the limit hold under parallel requests: the row lock serialises the tries, so
        at most five are ever checked before the fifth sets the lock (15 min × 2^locks).
        """
        row = await self._pool.fetchrow(
            """UPDATE mailboxes SET
                   admin_failures = CASE WHEN admin_failures + 1 >= $3 THEN 0
                                         ELSE admin_failures + 1 END,
                   admin_locks = CASE WHEN admin_failures + 1 >= $3 THEN admin_locks + 1
                                      ELSE admin_locks END,
                   admin_locked_until = CASE WHEN admin_failures + 1 >= $3
                       THEN $2::timestamptz
                            + make_interval(secs => $4::float8 * power(2, admin_locks))
                       ELSE admin_locked_until END
                WHERE address = $1
                  AND (admin_locked_until IS NULL OR admin_locked_until <= $2)
            RETURNING admin_failures, admin_locks, admin_locked_until, admin_password_hash""",
            address,
            at,
            MAX_FAILURES,
            FIRST_LOCK_SECONDS,
        )
        if row is None:
            return None
        return PasswordTry(PasswordCounters(row[0], row[1], row[2]), row[3])

    async def record_password_success(self, address: str) -> None:
        await self._pool.execute(
            """UPDATE mailboxes SET admin_failures = 0, admin_locks = 0,
                                    admin_locked_until = NULL
                WHERE address = $1""",
            address,
        )

    async def change_state(
        self,
        address: str,
        to_state: str,
        at: datetime,
        actor: str,
        reason: str,
        expect: tuple[str, ...] | None = None,
        paper_contract_at: datetime | None = None,
    ) -> StateChange | None:
        """Move to ``to_state`` and record why (R3.3); None, with nothing written, when
        not in an ``expect`` state. ``paper_contract_at`` records the signed paper contract
        with the move it causes (R2.3), unless one was recorded before: recorded apart, a
        stop between the two — or a mailbox already suspended — left the date set,
        unaudited, on a mailbox that no job would then suspend or open."""
        async with self._pool.acquire() as conn, conn.transaction():
            current = await conn.fetchval(
                # NO KEY UPDATE: see LifecycleStore.transition (no deadlock with submissions)
                "SELECT state FROM mailboxes WHERE address = $1 FOR NO KEY UPDATE",
                address,
            )
            if current is None or (expect is not None and current not in expect):
                return None
            await conn.execute(
                """UPDATE mailboxes SET state = $2,
                          paper_contract_received_at = coalesce(paper_contract_received_at, $3)
                    WHERE address = $1""",
                address,
                to_state,
                paper_contract_at,
            )
            change = StateChange(address, current, to_state, at, actor, reason)
            await record_state_change(conn, self._audit, change)
        return change

    async def set_public_body(self, address: str, value: bool, at: datetime, actor: str) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                "UPDATE mailboxes SET public_body = $2 WHERE address = $1", address, value
            )
            if status != "UPDATE 1":
                return False
            await self._audit.append(
                at,
                actor,
                "mailbox.public_body",
                "success",
                {"address": address, "public_body": value},
                conn=conn,
            )
        return True

    async def history(self, address: str) -> list[StateChange]:
        rows = await self._pool.fetch(
            """SELECT address, from_state, to_state, changed_at, actor, reason
                 FROM mailbox_state_changes WHERE address = $1 ORDER BY change_id""",
            address,
        )
        return [StateChange(**dict(r)) for r in rows]

    async def update_settings(
        self, address: str, changes: dict[str, Any], at: datetime, actor: str
    ) -> None:
        """Apply validated settings (R3.4, R4.2) and audit what changed (not the values of
        certificates)."""
        allowed = {
            "directory_listed",
            "reference_listed",
            "einvoice_signing_authorised",
            "encryption_cert",
        }
        columns = [k for k in changes if k in allowed]
        if not columns:
            return
        assignments = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(columns))
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                f"UPDATE mailboxes SET {assignments} WHERE address = $1",  # noqa: S608 (fixed column names)
                address,
                *(changes[c] for c in columns),
            )
            await self._audit.append(
                at,
                actor,
                "mailbox.settings",
                "success",
                {"address": address, "changed": sorted(columns)},
                conn=conn,
            )


def mailbox_from_row(row: asyncpg.Record) -> Mailbox:
    """A row with the mailbox's columns and ``subscriber_kind`` (others are ignored)."""
    values = dict(row)
    if values.get("encryption_cert") is not None:
        values["encryption_cert"] = bytes(values["encryption_cert"])
    return Mailbox(**{k: values[k] for k in Mailbox.__dataclass_fields__})
