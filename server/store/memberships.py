"""Who may use a mailbox, with which permissions and certificates (R3.1, R3.2, R1.5).

Every change is one transaction with its audit record. Removal deletes the membership (and,
by cascade, its enrolled certificates), so the very next request of an open session is
refused: authorisation reads this table on every mailbox-scoped request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg

from .audit import AuditStore
from .mailboxes import Mailbox, mailbox_from_row

if TYPE_CHECKING:
    from .db import Connection


@dataclass(frozen=True)
class Membership:
    address: str
    person_id: str
    role: str
    permissions: tuple[str, ...]
    added_at: datetime
    added_by: str
    certificates: tuple[str, ...]  # enrolled fingerprints


@dataclass(frozen=True)
class MailboxAccess:
    """One line of ``GET /api/v1/mailboxes`` (R1.6: the caller picks one of these)."""

    address: str
    display_name: str
    state: str
    kind: str
    public_body: bool
    role: str
    permissions: tuple[str, ...]
    certificate_enrolled: bool


@dataclass(frozen=True)
class Addressee:
    """A mailbox a request names (a submission's recipient), read with the authorisation."""

    address: str
    display_name: str
    state: str


@dataclass(frozen=True)
class MemberOf:
    """A person's membership of a mailbox with the mailbox itself, read together — and the
    mailboxes the request names that exist, by address."""

    mailbox: Mailbox
    membership: Membership
    addressees: Mapping[str, Addressee] = field(default_factory=dict)


class NotMember(Exception):
    """The person is no member of the mailbox (any more)."""


class MemberExists(Exception):
    pass


_MEMBER = """SELECT ms.*, coalesce(array_agg(mc.fingerprint ORDER BY mc.added_at)
                                  FILTER (WHERE mc.fingerprint IS NOT NULL), '{}') AS certs
               FROM memberships ms
               LEFT JOIN membership_certificates mc USING (address, person_id)"""


def _member_of(extra_columns: str = "") -> str:
    """A membership with its mailbox (``m.*`` and ``subscriber_kind`` as MailboxStore
    reads it), and ``extra_columns``."""
    return f"""SELECT m.*, s.kind AS subscriber_kind, ms.person_id AS member_person_id,
                       ms.role AS member_role, ms.permissions AS member_permissions,
                       ms.added_at AS member_added_at, ms.added_by AS member_added_by,
                       ARRAY(SELECT mc.fingerprint FROM membership_certificates mc
                              WHERE mc.address = ms.address AND mc.person_id = ms.person_id
                              ORDER BY mc.added_at) AS member_certs{extra_columns}
                  FROM memberships ms
                  JOIN mailboxes m ON m.address = ms.address
                  JOIN subscribers s ON s.subscriber_id = m.subscriber_id
                 WHERE ms.address = $1 AND ms.person_id = $2"""  # noqa: S608 (fixed text)


_MEMBER_OF = _member_of()
#: The same, with the mailboxes named in ``$3`` (address, display name, state each). The
#: array is read through a sub-select so the cached generic plan holds (see
#: :data:`.submissions.INSERT_SUBMISSION`).
_MEMBER_OF_NAMING = _member_of(
    """,
                       ARRAY(SELECT ARRAY[o.address, o.display_name, o.state]
                               FROM mailboxes o
                              WHERE o.address = ANY((SELECT $3::text[])::text[])) AS addressees"""
)


class MembershipStore:
    def __init__(self, pool: asyncpg.Pool, audit: AuditStore) -> None:
        self._pool = pool
        self._audit = audit

    async def get(self, address: str, person_id: str) -> Membership | None:
        row = await self._pool.fetchrow(
            f"{_MEMBER} WHERE ms.address = $1 AND ms.person_id = $2 GROUP BY ms.address, "
            "ms.person_id",
            address,
            person_id,
        )
        return _membership(row) if row else None

    async def member_of(
        self, address: str, person_id: str, naming: Sequence[str] = ()
    ) -> MemberOf | None:
        """The membership and its mailbox in one statement — the read that authorises
        every mailbox-scoped request (one round trip instead of two: issue 4 benchmark) —
        and the mailboxes among ``naming`` that exist (a submission's recipients: one
        round trip instead of one more per recipient)."""
        if not naming:
            row = await self._pool.fetchrow(_MEMBER_OF, address, person_id)
        else:
            row = await self._pool.fetchrow(_MEMBER_OF_NAMING, address, person_id, list(naming))
        if row is None:
            return None
        addressees = {a[0]: Addressee(*a) for a in row["addressees"]} if naming else {}
        return MemberOf(mailbox_from_row(row), _membership(row, "member_"), addressees)

    async def members(self, address: str) -> list[Membership]:
        rows = await self._pool.fetch(
            f"{_MEMBER} WHERE ms.address = $1 GROUP BY ms.address, ms.person_id "
            "ORDER BY ms.role DESC, ms.added_at",
            address,
        )
        return [_membership(r) for r in rows]

    async def count(self, address: str) -> int:
        return int(
            await self._pool.fetchval(
                "SELECT count(*) FROM memberships WHERE address = $1", address
            )
        )

    async def accessible(self, person_id: str, fingerprint: str) -> list[MailboxAccess]:
        rows = await self._pool.fetch(
            """SELECT m.address, m.display_name, m.state, m.kind, m.public_body, ms.role,
                      ms.permissions,
                      EXISTS (SELECT 1 FROM membership_certificates mc
                               WHERE mc.address = ms.address AND mc.person_id = ms.person_id
                                 AND mc.fingerprint = $2) AS certificate_enrolled
                 FROM memberships ms JOIN mailboxes m USING (address)
                WHERE ms.person_id = $1 AND m.state <> 'purged'
                ORDER BY m.address""",
            person_id,
            fingerprint,
        )
        return [
            MailboxAccess(
                address=r["address"],
                display_name=r["display_name"],
                state=r["state"],
                kind=r["kind"],
                public_body=r["public_body"],
                role=r["role"],
                permissions=tuple(r["permissions"]),
                certificate_enrolled=r["certificate_enrolled"],
            )
            for r in rows
        ]

    async def add_delegate(
        self,
        address: str,
        person_id: str,
        permissions: list[str],
        fingerprints: list[str],
        at: datetime,
        actor: str,
    ) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            try:
                await conn.execute(
                    """INSERT INTO memberships
                           (address, person_id, role, permissions, added_at, added_by)
                       VALUES ($1, $2, 'delegate', $3, $4, $5)""",
                    address,
                    person_id,
                    permissions,
                    at,
                    actor,
                )
            except asyncpg.UniqueViolationError:
                raise MemberExists(person_id) from None
            for fingerprint in fingerprints:
                await self._enroll(conn, address, person_id, fingerprint, at, actor)
            await self._audit.append(
                at,
                actor,
                "mailbox.delegate.add",
                "success",
                {
                    "address": address,
                    "person_id": person_id,
                    "permissions": permissions,
                    "certificates": fingerprints,
                },
                conn=conn,
            )

    async def set_permissions(
        self, address: str, person_id: str, permissions: list[str], at: datetime, actor: str
    ) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                """UPDATE memberships SET permissions = $3
                    WHERE address = $1 AND person_id = $2 AND role = 'delegate'""",
                address,
                person_id,
                permissions,
            )
            if status != "UPDATE 1":
                return False
            await self._audit.append(
                at,
                actor,
                "mailbox.delegate.permissions",
                "success",
                {"address": address, "person_id": person_id, "permissions": permissions},
                conn=conn,
            )
        return True

    async def remove(self, address: str, person_id: str, at: datetime, actor: str) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                """DELETE FROM memberships
                    WHERE address = $1 AND person_id = $2 AND role = 'delegate'""",
                address,
                person_id,
            )
            if status != "DELETE 1":
                return False
            await self._audit.append(
                at,
                actor,
                "mailbox.delegate.remove",
                "success",
                {"address": address, "person_id": person_id},
                conn=conn,
            )
        return True

    async def transfer_custody(
        self, address: str, current: str, successor: str, at: datetime
    ) -> bool:
        """The successor becomes custodian; the former custodian stays as a full delegate."""
        async with self._pool.acquire() as conn, conn.transaction():
            # Both rows locked (in one order) before the check: a second transfer, or the
            # successor's removal, waits and then sees the roles as this one left them —
            # not two custodians (a unique-index 500) or none.
            locked = await conn.fetch(
                """SELECT person_id FROM memberships
                    WHERE address = $1 AND ((person_id = $2 AND role = 'custodian')
                                          OR (person_id = $3 AND role = 'delegate'))
                    ORDER BY person_id FOR UPDATE""",
                address,
                current,
                successor,
            )
            if len(locked) != 2:
                return False
            await conn.execute(
                """UPDATE memberships SET role = 'delegate'
                    WHERE address = $1 AND person_id = $2""",
                address,
                current,
            )
            await conn.execute(
                """UPDATE memberships SET role = 'custodian',
                          permissions = ARRAY['read', 'send', 'accept', 'manage']
                    WHERE address = $1 AND person_id = $2""",
                address,
                successor,
            )
            await self._audit.append(
                at,
                current,
                "mailbox.custody.transfer",
                "success",
                {"address": address, "from": current, "to": successor},
                conn=conn,
            )
        return True

    async def enroll(
        self, address: str, person_id: str, fingerprint: str, at: datetime, actor: str
    ) -> None:
        """Raises :class:`NotMember` when the membership went meanwhile (removed while its
        admin password was being checked)."""
        async with self._pool.acquire() as conn, conn.transaction():
            try:
                await self._enroll(conn, address, person_id, fingerprint, at, actor)
            except asyncpg.ForeignKeyViolationError:
                raise NotMember(person_id) from None
            await self._audit.append(
                at,
                actor,
                "mailbox.certificate.enrol",
                "success",
                {"address": address, "person_id": person_id, "fingerprint": fingerprint},
                conn=conn,
            )

    @staticmethod
    async def _enroll(
        conn: Connection,
        address: str,
        person_id: str,
        fingerprint: str,
        at: datetime,
        actor: str,
    ) -> None:
        await conn.execute(
            """INSERT INTO membership_certificates
                   (address, person_id, fingerprint, added_at, added_by)
               VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
            address,
            person_id,
            fingerprint,
            at,
            actor,
        )


def _membership(row: asyncpg.Record, prefix: str = "") -> Membership:
    """A membership row; ``prefix`` names its columns in a row that also holds the mailbox
    (``member_of``)."""
    return Membership(
        address=row["address"],
        person_id=row[f"{prefix}person_id"],
        role=row[f"{prefix}role"],
        permissions=tuple(row[f"{prefix}permissions"]),
        added_at=row[f"{prefix}added_at"],
        added_by=row[f"{prefix}added_by"],
        certificates=tuple(row[f"{prefix}certs"]),
    )
