"""``audit_seals``: the provider's seals over the head of the audit chain (R9.1)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True)
class AuditSeal:
    seal_id: int
    seq: int
    hash: bytes
    sealed_at: datetime
    signature: bytes


def _seal(row: asyncpg.Record) -> AuditSeal:
    return AuditSeal(
        row["seal_id"], row["seq"], bytes(row["hash"]), row["sealed_at"], bytes(row["signature"])
    )


class AuditSealStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def chain_head(self) -> tuple[int, bytes] | None:
        """The newest record's (seq, hash), read from the records themselves."""
        row = await self._pool.fetchrow(
            "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1"
        )
        return (row["seq"], bytes(row["hash"])) if row else None

    async def last(self) -> AuditSeal | None:
        row = await self._pool.fetchrow("SELECT * FROM audit_seals ORDER BY seq DESC LIMIT 1")
        return _seal(row) if row else None

    async def add(self, seq: int, digest: bytes, at: datetime, signature: bytes) -> None:
        await self._pool.execute(
            """INSERT INTO audit_seals (seq, hash, sealed_at, signature)
               VALUES ($1, $2, $3, $4)""",
            seq,
            digest,
            at,
            signature,
        )

    async def all(self) -> list[AuditSeal]:
        return [_seal(r) for r in await self._pool.fetch("SELECT * FROM audit_seals ORDER BY seq")]

    async def record_hash_at(self, seq: int) -> bytes | None:
        value = await self._pool.fetchval("SELECT hash FROM audit_events WHERE seq = $1", seq)
        return bytes(value) if value is not None else None
