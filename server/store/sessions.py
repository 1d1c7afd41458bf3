"""Browser sessions (R1.6). Only the SHA-256 of the cookie value is stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


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
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(
        self, token_hash: bytes, person_id: str, fingerprint: str, csrf: str, at: datetime
    ) -> SessionRow:
        row = await self._pool.fetchrow(
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

    async def end(self, token_hash: bytes, at: datetime, reason: str) -> bool:
        """End an open session; False when it was already ended."""
        status = await self._pool.execute(
            """UPDATE sessions SET ended_at = $2, end_reason = $3
                WHERE token_hash = $1 AND ended_at IS NULL""",
            token_hash,
            at,
            reason,
        )
        return status == "UPDATE 1"

    async def end_all_for_certificate(self, fingerprint: str, at: datetime, reason: str) -> int:
        """R1.3: a certificate found revoked ends every open session bound to it."""
        status = await self._pool.execute(
            """UPDATE sessions SET ended_at = $2, end_reason = $3
                WHERE cert_fingerprint = $1 AND ended_at IS NULL""",
            fingerprint,
            at,
            reason,
        )
        return int(status.split()[-1])

    async def end_idle(self, seen_before: datetime, at: datetime) -> int:
        """R1.6: open sessions not used since ``seen_before`` end as idle."""
        status = await self._pool.execute(
            """UPDATE sessions SET ended_at = $2, end_reason = 'idle'
                WHERE ended_at IS NULL AND last_seen_at <= $1""",
            seen_before,
            at,
        )
        return int(status.split()[-1])

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
