"""The submission statement, and the read that authorises it, keep their cached generic
plans on a database of realistic size (issue 4 benchmark): planned anew on every call the
statement cost ~0.4 ms more PostgreSQL CPU per delivery, which the benchmark's two-mailbox
database does not show."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from server.store.audit import AuditStore
from server.store.db import create_pool
from server.store.deliveries import NewEvidence, PartRow
from server.store.memberships import MembershipStore
from server.store.submissions import NewSubmission, insert_submission

if TYPE_CHECKING:
    from server.store.db import Connection

pytestmark = pytest.mark.integration

SUBSCRIBER = "00000000-0000-0000-0000-000000000001"
#: A sender, a recipient and 20,000 other mailboxes with a confirmed notification address
#: each, analysed: an index lookup per recipient is what the planner weighs.
WORLD = f"""
INSERT INTO persons VALUES ('p1', 'Ana', 'Novak', 'Ana Novak', now(), now());
INSERT INTO certificates VALUES ('f1', 'p1', 'CN=CA', '1', 'CN=Ana', now(),
    now() + interval '1 year', '\\x00', now(), now(), 'high');
INSERT INTO subscribers (subscriber_id, kind, name, tax_number, postal_address, email,
                         created_at)
     VALUES ('{SUBSCRIBER}', 'natural', 'Ana', '1', '{{}}', 'a@b.si', now());
INSERT INTO mailboxes (address, local_part, domain, subscriber_id, kind, state, display_name,
                       directory_listed, admin_password_hash, created_at)
SELECT local || '@vep.si', local, 'vep.si', '{SUBSCRIBER}', 'single', 'active', local, false,
       'x', now()
  FROM (SELECT 'm' || i AS local FROM generate_series(1, 20000) i
        UNION ALL VALUES ('ana'), ('dejan')) l;
INSERT INTO memberships (address, person_id, role, permissions, added_at, added_by)
     VALUES ('ana@vep.si', 'p1', 'custodian', '{{read,send,accept,manage}}', now(), 'test');
INSERT INTO notification_addresses (address, email, confirmed_at, added_at)
SELECT address, 'n@' || local_part || '.si', now(), now() FROM mailboxes;
ANALYZE;
"""


async def _submit(conn: Connection, n: int) -> int:
    now = datetime.now(UTC)
    delivery_id = uuid.uuid4()
    return await insert_submission(
        conn,
        NewSubmission(
            delivery_id=delivery_id,
            kind="registered",
            sender_address="ana@vep.si",
            sender_person_id="p1",
            sender_fingerprint="f1",
            subject=f"Vabilo {n}",
            message="",
            reference=None,
            submitted_at=now,
            wrapped_key=b"k" * 60,
            key_version=1,
            parts=[PartRow(0, "a.pdf", "application/pdf", 10, "00" * 32, f"x/{n}", 40, None)],
            recipients=["dejan@vep.si"],
            awaiting_acceptance=False,
            evidence=[
                NewEvidence(uuid.uuid4(), None, "SubmissionAcceptance", now, b"<a/>", "0", True),
                NewEvidence(
                    uuid.uuid4(), "dejan@vep.si", "ContentConsignment", now, b"<b/>", "0", True
                ),
            ],
            notify_kind="delivery_waiting",
        ),
    )


async def _plans(conn: Connection, statement: str) -> tuple[int, int]:
    """(custom, generic) plans so far of the statement this connection prepared that is
    LIKE ``statement``."""
    row = await conn.fetchrow(
        """SELECT custom_plans, generic_plans FROM pg_prepared_statements
            WHERE statement LIKE $1""",
        statement,
    )
    assert row is not None, statement
    return row["custom_plans"], row["generic_plans"]


async def test_the_submission_statement_is_not_planned_on_every_call(database_url: str) -> None:
    pool = await create_pool(database_url, 1, 1)
    try:
        async with pool.acquire() as conn:
            await conn.execute(WORLD)
            for n in range(10):
                assert await _submit(conn, n) == 1  # Dejan's confirmed address is told
            plans = await _plans(conn, "WITH delivery AS%")
        # PostgreSQL tries five custom plans, then keeps the generic one if not costlier
        assert plans == (5, 5)
    finally:
        await pool.close()


async def test_the_read_that_authorises_a_sender_is_not_planned_on_every_call(
    database_url: str,
) -> None:
    """The membership read that also finds the recipients (``naming``) reads its array
    through a sub-select for the same reason as the submission statement."""
    pool = await create_pool(database_url, 1, 1)
    try:
        await pool.execute(WORLD)  # Ana is the custodian of ana@vep.si
        store = MembershipStore(pool, AuditStore(pool))
        for n in range(10):
            found = await store.member_of("ana@vep.si", "p1", ["dejan@vep.si", f"x{n}@vep.si"])
            assert found is not None
            assert {a: (m.display_name, m.state) for a, m in found.addressees.items()} == {
                "dejan@vep.si": ("dejan", "active")  # the unknown one is not there
            }
        async with pool.acquire() as conn:  # the pool's one connection, which prepared it
            assert await _plans(conn, "SELECT m.*%AS addressees%") == (5, 5)
    finally:
        await pool.close()
