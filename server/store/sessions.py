"""Browser sessions (R1.6). Only the SHA-256 of the cookie value is stored.

A session's start and end are written in one transaction with their audit record (R9.1):
audited apart, a stop between the two lost the record for good (an ended session is not
ended again, and the sweep no longer finds its certificate).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from .audit import AuditStore

#: The actor of the ``sessions`` job's and a revocation's ends (no user asked for them).
SYSTEM = "system:sessions"


@dataclass(frozen=True)
class SessionRow:
    token_hash: bytes
    person_id: str
    cert_fingerprint: str
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    validated_at: datetime
    ended_at: datetime | None
    end_reason: str | None


class SessionStore:
    def __init__(self, pool: asyncpg.Pool, audit: AuditStore) -> None:
        self._pool = pool
        self._audit = audit

    async def create(
        self,
        token_hash: bytes,
        person_id: str,
        fingerprint: str,
        csrf: str,
        at: datetime,
        details: dict[str, Any],
    ) -> SessionRow:
        """Open a session, audited as ``session.start`` with ``details``."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """INSERT INTO sessions (token_hash, person_id, cert_fingerprint, csrf_token,
                                         created_at, last_seen_at, validated_at)
                   VALUES ($1, $2, $3, $4, $5, $5, $5) RETURNING *""",
                token_hash,
                person_id,
                fingerprint,
                csrf,
                at,
            )
            assert row is not None
            await self._audit.append(at, person_id, "session.start", "success", details, conn=conn)
        return _session(row)

    async def get(self, token_hash: bytes) -> SessionRow | None:
        row = await self._pool.fetchrow("SELECT * FROM sessions WHERE token_hash = $1", token_hash)
        return _session(row) if row else None

    async def touch(self, token_hash: bytes, at: datetime, validated_at: datetime) -> None:
        await self._pool.execute(
            """UPDATE sessions SET last_seen_at = $2, validated_at = $3
                WHERE token_hash = $1 AND ended_at IS NULL""",
            token_hash,
            at,
            validated_at,
        )

    async def end(self, row: SessionRow, at: datetime, reason: str) -> bool:
        """End an open session, audited in its person's name; False when it was already
        ended (nothing written)."""
        async with self._pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                """UPDATE sessions SET ended_at = $2, end_reason = $3
                    WHERE token_hash = $1 AND ended_at IS NULL""",
                row.token_hash,
                at,
                reason,
            )
            if status != "UPDATE 1":
                return False
            await self._audit.append(
                at,
                row.person_id,
                "session.end",
                "info",
                {"reason": reason, "fingerprint": row.cert_fingerprint},
                conn=conn,
            )
        return True

    async def end_all_for_certificate(self, fingerprint: str, at: datetime, reason: str) -> int:
        """R1.3: a certificate found revoked (or expired) ends every open session bound to
        it; audited as one record with the count."""
        return await self._end_where(
            "cert_fingerprint = $3", fingerprint, at, reason, {"fingerprint": fingerprint}
        )

    async def end_idle(self, seen_before: datetime, at: datetime) -> int:
        """R1.6: open sessions not used since ``seen_before`` end as idle."""
        return await self._end_where("last_seen_at <= $3", seen_before, at, "idle", {})

    async def _end_where(
        self, condition: str, value: object, at: datetime, reason: str, details: dict[str, Any]
    ) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                f"""UPDATE sessions SET ended_at = $1, end_reason = $2
                     WHERE ended_at IS NULL AND {condition}""",  # noqa: S608 (fixed conditions)
                at,
                reason,
                value,
            )
            count = int(status.split()[-1])
            if count:
                await self._audit.append(
                    at,
                    SYSTEM,
                    "session.end",
                    "info",
                    {"reason": reason, **details, "sessions": count},
                    conn=conn,
                )
        return count

    async def open_certificates(self) -> list[tuple[str, bytes, datetime]]:
        """(fingerprint, DER, not_after) of every certificate an open session is bound to."""
        rows = await self._pool.fetch(
            """SELECT c.fingerprint, c.der, c.not_after FROM certificates c
                WHERE EXISTS (SELECT 1 FROM sessions s
                               WHERE s.cert_fingerprint = c.fingerprint AND s.ended_at IS NULL)
                ORDER BY c.fingerprint"""
        )
        return [(r["fingerprint"], bytes(r["der"]), r["not_after"]) for r in rows]


def _session(row: asyncpg.Record) -> SessionRow:
    return SessionRow(
        token_hash=bytes(row["token_hash"]),
        person_id=row["person_id"],
        cert_fingerprint=row["cert_fingerprint"],
        csrf_token=row["csrf_token"],
        created_at=row["created_at"],
        last_seen_at=row["last_seen_at"],
        validated_at=row["validated_at"],
        ended_at=row["ended_at"],
        end_reason=row["end_reason"],
    )
