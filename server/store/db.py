"""The asyncpg pool: one per process, JSON codecs set once per connection."""

from __future__ import annotations

import json

import asyncpg


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def create_pool(dsn: str, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection
    )
    assert pool is not None
    return pool


async def ping(pool: asyncpg.Pool, timeout: float = 2.0) -> bool:
    """True when the database answers a trivial query within ``timeout`` seconds."""
    try:
        async with pool.acquire(timeout=timeout) as conn:
            return bool(await conn.fetchval("SELECT 1", timeout=timeout) == 1)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
