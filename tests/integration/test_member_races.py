"""R3.1, R3.2: membership changes that race each other end in a clear answer, never a
500 or a mailbox without (or with two) custodians. Each race is made certain by holding a
row lock from a third connection while both sides start."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from server.store.audit import AuditStore
from server.store.memberships import MembershipStore, NotMember
from tests.integration.test_deliveries import COURT
from tests.mailbox_support import add_delegate, person_id
from tests.support import RunningServer

pytestmark = pytest.mark.integration


async def _waiting_on(server: RunningServer, n: int) -> None:
    """Until ``n`` other backends wait for a lock."""
    pool = server.services.pool
    for _ in range(500):
        waiting = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        )
        if waiting >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{n} transactions never waited for the lock")


async def test_r3_1_two_custody_transfers_at_once_leave_one_custodian(
    server: RunningServer,
) -> None:
    """Two transfers by the custodian, to two delegates, both started while a third
    transaction holds the custodian's row: one hands custody over, the other finds it
    gone (False: 404 to the client). Before, both promoted their successor — the second
    hit the one-custodian index (a 500), or, racing a removal, none was left."""
    for delegate in ("reader", "sender"):
        assert (await add_delegate(server, "qualified-qscd", COURT, delegate, ["read"]))[0] == 201
    pool = server.services.pool
    store = MembershipStore(pool, AuditStore(pool))
    ana = person_id(server, "qualified-qscd")
    now = datetime.now(UTC)
    async with pool.acquire() as holder, holder.transaction():
        await holder.execute(
            "SELECT 1 FROM memberships WHERE address = $1 AND person_id = $2 FOR UPDATE",
            COURT,
            ana,
        )
        transfers = [
            asyncio.ensure_future(store.transfer_custody(COURT, ana, person_id(server, who), now))
            for who in ("reader", "sender")
        ]
        await _waiting_on(server, 2)
    done = await asyncio.gather(*transfers)
    assert sorted(done) == [False, True]
    roles = await pool.fetch(
        "SELECT role, count(*) FROM memberships WHERE address = $1 GROUP BY role", COURT
    )
    assert {r["role"]: r["count"] for r in roles}["custodian"] == 1


async def test_r3_2_a_certificate_enrolled_while_its_member_is_removed_is_refused(
    server: RunningServer,
) -> None:
    """The enrolment's insert waits on the membership row a removal holds; once the
    removal commits, it is refused as ``NotMember`` (403 ``not_member`` to the client),
    not a foreign-key 500."""
    assert (await add_delegate(server, "qualified-qscd", COURT, "reader", ["read"]))[0] == 201
    pool = server.services.pool
    store = MembershipStore(pool, AuditStore(pool))
    reader = person_id(server, "reader")
    renewed = await pool.fetchval(  # a certificate not enrolled in this mailbox yet
        """SELECT fingerprint FROM certificates WHERE fingerprint NOT IN
               (SELECT fingerprint FROM membership_certificates WHERE address = $1) LIMIT 1""",
        COURT,
    )
    assert renewed is not None
    now = datetime.now(UTC)
    async with pool.acquire() as holder, holder.transaction():
        await holder.execute(
            "DELETE FROM memberships WHERE address = $1 AND person_id = $2", COURT, reader
        )
        enrolment = asyncio.ensure_future(store.enroll(COURT, reader, renewed, now, reader))
        await _waiting_on(server, 1)
    with pytest.raises(NotMember):
        await enrolment
