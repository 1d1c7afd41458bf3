"""The asyncpg pool: one per process, JSON codecs set once per connection.

A released connection is not sent asyncpg's reset query (``pg_advisory_unlock_all(); CLOSE
ALL; UNLISTEN *; RESET ALL``): that is one more round trip per ``pool.fetchrow`` — five per
submitted delivery — for session state nothing here creates on a pooled connection (no
LISTEN, no session SET, no WITH HOLD cursor; advisory locks are transaction-scoped). asyncpg
still rolls back a transaction left open and drops listeners on every release. Code that
does change session state must undo it, or reset the connection (:func:`full_reset`) — as
the start-up migration does after its session lock.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, TypeAlias

import asyncpg

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    #: A connection of our own or one borrowed from the pool.
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]


log = logging.getLogger(__name__)


async def _init_connection(conn: Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def _keep_session(conn: Connection) -> None:
    """The pool's reset: nothing beyond asyncpg's rollback of an open transaction."""


async def full_reset(conn: Connection) -> None:
    """asyncpg's reset query, for a connection whose session state was changed."""
    query = conn.get_reset_query()
    if query:
        await conn.execute(query)


async def create_pool(dsn: str, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection, reset=_keep_session
    )
    assert pool is not None
    return pool


async def ping(pool: asyncpg.Pool, limit: float = 2.0) -> bool:
    """True when the database answers a trivial query within ``limit`` seconds."""
    try:
        async with pool.acquire(timeout=limit) as conn:
            return bool(await conn.fetchval("SELECT 1", timeout=limit) == 1)
    except Exception as exc:  # any failure means "not ready"; a probe must never 500
        log.warning("database ping failed", extra={"error": type(exc).__name__})
        return False
