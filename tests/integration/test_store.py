"""Migrations on an empty database (house rule 3) and the audit hash chain (R9.1)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import pytest

from server.store import migrate
from server.store.audit import GENESIS, AuditStore, record_hash
from server.store.db import create_pool

pytestmark = pytest.mark.integration

TABLES = {"persons", "certificates", "sessions", "audit_events", "schema_migrations"}


async def test_migrations_apply_to_an_empty_database(empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        before = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
        assert before == 0
        applied = await migrate.apply(conn)
        assert applied == [m.name for m in migrate.available()]
        tables = {
            r["table_name"]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }
        assert tables >= TABLES
        assert await migrate.apply(conn) == []  # idempotent
    finally:
        await conn.close()


async def test_concurrent_migrations_serialise_on_the_advisory_lock(
    empty_database_url: str,
) -> None:
    """Several nodes starting at once: each migration is applied exactly once."""
    conns = [await asyncpg.connect(empty_database_url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate.apply(c) for c in conns))
        assert sorted(len(r) for r in results) == [0, 0, len(migrate.available())]
        rows = await conns[0].fetchval("SELECT count(*) FROM schema_migrations")
        assert rows == len(migrate.available())
    finally:
        for c in conns:
            await c.close()


async def _filled(database_url: str, count: int) -> tuple[asyncpg.Pool, AuditStore]:
    pool = await create_pool(database_url)
    store = AuditStore(pool)
    for i in range(count):
        await store.append(
            datetime(2026, 11, 21, 12, 0, i, tzinfo=UTC),
            f"p-{i}",
            "auth.certificate",
            "success",
            {"n": i, "note": "žš"},
        )
    return pool, store


async def test_r9_1_chain_verifies_and_concurrent_appends_do_not_fork(database_url: str) -> None:
    pool, store = await _filled(database_url, 3)
    try:
        now = datetime.now(UTC)
        await asyncio.gather(*(store.append(now, None, "x", "info", {"i": i}) for i in range(20)))
        report = await store.verify()
        assert report.ok and report.records == 23
    finally:
        await pool.close()


async def test_r9_1_the_hash_postgresql_computes_is_the_canonical_one(database_url: str) -> None:
    """The append hashes in SQL (one round trip); verify() and record_hash() in Python."""
    pool = await create_pool(database_url)
    try:
        store = AuditStore(pool)
        at = datetime(2026, 11, 22, 8, 0, 0, 123456, tzinfo=UTC)
        details = {"to": ["ana@vep.si"], "text": 'Pogodba št. 7 "ž" \u2028 <&>', "n": 1.5}
        prev = GENESIS
        for seq in (1, 2, 3):
            event = await store.append(at, "p-1", "delivery.submit", "success", details)
            assert (event.seq, event.prev_hash) == (seq, prev)
            assert event.hash == record_hash(
                prev, seq, at, "p-1", "delivery.submit", "success", details
            )
            prev = event.hash
        assert (await store.verify()).ok
    finally:
        await pool.close()


async def test_r9_1_a_time_with_another_offset_still_verifies(database_url: str) -> None:
    """PostgreSQL gives every time back in UTC; the hash must be of that form (found in
    review: ``vep run-job --now ...+01:00`` broke the chain for good)."""
    pool = await create_pool(database_url)
    try:
        store = AuditStore(pool)
        ljubljana = timezone(timedelta(hours=1))
        await store.append(datetime(2026, 11, 1, 12, 0, tzinfo=ljubljana), None, "x", "info", {})
        assert (await store.verify()).ok
    finally:
        await pool.close()


async def test_r9_1_a_record_quoting_a_nul_or_a_lone_surrogate_is_kept_visibly(
    database_url: str,
) -> None:
    """What an audit record quotes is often what a stranger sent; PostgreSQL refuses a NUL
    or an unpaired surrogate in jsonb (and the NUL in text), so such an append failed the
    request and recorded nothing. Now both are written as visible escapes, in the record
    and in its hash, and the chain verifies."""
    pool = await create_pool(database_url)
    try:
        store = AuditStore(pool)
        at = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
        details = {"name\x00": ["Ana\x00Novak", "\ud800", "Žiga"], "n": 1}
        event = await store.append(at, "p-\x00", "auth.certificate", "refused", details)
        stored = await pool.fetchrow("SELECT actor, details FROM audit_events")
        assert stored["actor"] == "p-\\x00"
        assert stored["details"] == {"name\\x00": ["Ana\\x00Novak", "\\ud800", "Žiga"], "n": 1}
        assert event.details == stored["details"]
        assert (await store.verify()).ok
    finally:
        await pool.close()


async def test_r9_1_audit_rows_cannot_be_updated_or_deleted(database_url: str) -> None:
    pool, _ = await _filled(database_url, 2)
    try:
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await pool.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 1")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await pool.execute("DELETE FROM audit_events WHERE seq = 2")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await pool.execute("TRUNCATE audit_events")
    finally:
        await pool.close()


@pytest.mark.parametrize(
    ("tamper", "bad_seq", "problem"),
    [
        ("UPDATE audit_events SET details = '{\"n\": 9}' WHERE seq = 2", 2, "record changed"),
        ("UPDATE audit_events SET actor = 'mallory' WHERE seq = 3", 3, "record changed"),
        ("DELETE FROM audit_events WHERE seq = 2", 2, "record missing"),
        ("DELETE FROM audit_events WHERE seq = 4", 4, "record missing"),
        # found in review: the newest record cut off left a valid, shorter chain
        ("DELETE FROM audit_events WHERE seq = 5", 5, "record missing"),
    ],
)
async def test_r9_1_tampering_by_the_owner_is_detected(
    database_url: str, tamper: str, bad_seq: int, problem: str
) -> None:
    """Even the database owner, who can switch the trigger off, cannot hide a change."""
    pool, store = await _filled(database_url, 5)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("ALTER TABLE audit_events DISABLE TRIGGER USER")
            await conn.execute(tamper)
            await conn.execute("ALTER TABLE audit_events ENABLE TRIGGER USER")
        report = await store.verify()
        assert not report.ok
        assert report.first_bad_seq == bad_seq
        assert report.problem == problem
    finally:
        await pool.close()


async def test_r9_1_migration_0009_continues_an_existing_chain(empty_database_url: str) -> None:
    """A database with records appended before ``audit_head`` existed: the head starts at
    its last record, and the chain goes on without a gap or a fork."""
    conn = await asyncpg.connect(empty_database_url)
    try:
        before_head = [m for m in migrate.available() if m.version < 9]
        for migration in before_head:
            await conn.execute(migration.sql)
        prev = GENESIS
        at = datetime(2026, 11, 20, tzinfo=UTC)
        for seq in (1, 2):
            digest = record_hash(prev, seq, at, "p", "old", "success", {"seq": seq})
            await conn.execute(
                """INSERT INTO audit_events
                       (seq, occurred_at, actor, action, outcome, details, prev_hash, hash)
                   VALUES ($1, $2, 'p', 'old', 'success', $3::jsonb, $4, $5)""",
                seq,
                at,
                f'{{"seq": {seq}}}',
                prev,
                digest,
            )
            prev = digest
        await conn.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for migration in before_head:
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
        applied = await migrate.apply(conn)
        assert applied[0] == "0009_audit_head.sql"  # and the ones after it
    finally:
        await conn.close()
    pool = await create_pool(empty_database_url)
    try:
        store = AuditStore(pool)
        event = await store.append(at, "p", "new", "success", {})
        assert (event.seq, event.prev_hash) == (3, prev)
        report = await store.verify()
        assert report.ok and report.records == 3
    finally:
        await pool.close()


#: The document columns migration 0011 moves to lz4 (issue 4 benchmark: pglz was ~11-15 %
#: of PostgreSQL's CPU per delivery, compressing the two sealed evidences).
LZ4_COLUMNS = {
    ("evidence", "xml"),
    ("receipts", "document"),
    ("registrations", "contract_pdf"),
    ("contracts", "contract_pdf"),
    ("contracts", "signature"),
    ("closure_requests", "document"),
    ("closure_requests", "signature"),
    ("wind_downs", "document"),
    ("wind_down_confirmations", "signature"),
    ("audit_seals", "signature"),
}


async def test_migration_0011_compresses_documents_with_lz4_and_old_values_stay_readable(
    empty_database_url: str,
) -> None:
    """Values written before keep pglz and read back unchanged; values written after are
    lz4. A server without lz4 keeps pglz (the migration warns instead of failing)."""
    old, new = b"<Evidence>before</Evidence>" * 800, b"<Evidence>after</Evidence>" * 800
    insert = "INSERT INTO audit_seals (seq, hash, sealed_at, signature) VALUES ($1, $2, $3, $4)"
    at = datetime(2026, 11, 22, tzinfo=UTC)
    conn = await asyncpg.connect(empty_database_url)
    try:
        await conn.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for migration in [m for m in migrate.available() if m.version < 11]:
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
        await conn.execute(insert, 1, bytes(32), at, old)
        assert await conn.fetchval("SELECT pg_column_compression(signature) FROM audit_seals") == (
            "pglz"
        )
        applied = await migrate.apply(conn)
        assert applied[0] == "0011_lz4_compression.sql"
        await conn.execute(insert, 2, bytes(32), at, new)
        has_lz4 = await conn.fetchval(
            "SELECT 'lz4' = ANY (enumvals) FROM pg_settings"
            " WHERE name = 'default_toast_compression'"
        )
        rows = await conn.fetch(
            """SELECT c.relname, a.attname, a.attcompression::text AS method
                 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = 'public' AND c.relkind = 'r' AND a.attnum > 0
                  AND NOT a.attisdropped"""
        )
        lz4 = {(r["relname"], r["attname"]) for r in rows if r["method"] == "l"}
        assert lz4 == (LZ4_COLUMNS if has_lz4 else set())
        stored = await conn.fetch(
            "SELECT seq, signature, pg_column_compression(signature) AS method"
            " FROM audit_seals ORDER BY seq"
        )
        assert [(r["seq"], bytes(r["signature"]), r["method"]) for r in stored] == [
            (1, old, "pglz"),
            (2, new, "lz4" if has_lz4 else "pglz"),
        ]
    finally:
        await conn.close()


async def test_r9_1_a_record_with_any_float_still_verifies(database_url: str) -> None:
    """Found in review: jsonb gives 1e+16 back as 10000000000000000, so a record holding it
    was reported "changed" by the verifier, and NaN (not JSON) failed the append."""
    pool, store = await _filled(database_url, 1)
    try:
        details = {"big": 1e16, "small": 1e-7, "nan": float("nan"), "inf": float("-inf")}
        await store.append(datetime(2026, 11, 22, tzinfo=UTC), "p", "test", "info", details)
        await store.append(datetime(2026, 11, 22, tzinfo=UTC), "p", "test", "info", {"x": 0.5})
        report = await store.verify()
        assert (report.ok, report.records) == (True, 3), report
        kept = await pool.fetchval("SELECT details FROM audit_events WHERE seq = 2")
        assert kept == {"big": "1e+16", "small": "1e-07", "nan": "nan", "inf": "-inf"}
    finally:
        await pool.close()
