"""R1.3: a certificate that expires between two checks is not vouched for by the cache.

Found in review: a successful check was reused for the whole revalidation interval (15
minutes), so a certificate went on logging in for up to that long after its notAfter.
The certificates are made here (tests/unit/test_anchor_limits.Issued) and checked for
real, at the injected clock's time; the leaf names no revocation service (soft-fail).
"""

from __future__ import annotations

from datetime import timedelta

import aiohttp
import pytest

from server.clock import ManualClock
from server.errors import CertificateRefused
from server.services.authentication import Authenticator
from server.store.audit import AuditStore
from server.store.db import create_pool
from server.store.persons import PersonStore
from server.trust.validation import CertificateChecker
from tests.unit.test_anchor_limits import NOW, Issued

pytestmark = pytest.mark.integration


async def test_r1_3_a_cached_check_does_not_outlive_the_certificate(database_url: str) -> None:
    clock = ManualClock(NOW)
    root = Issued("Root", None, ca=True)
    leaf = Issued("Leaf", root, ca=False, not_after=NOW + timedelta(minutes=10))
    pool = await create_pool(database_url)
    try:
        async with aiohttp.ClientSession() as session:
            checker = CertificateChecker([root.asn1], [], "soft-fail", session, clock=clock)
            audit = AuditStore(pool)
            auth = Authenticator(checker, PersonStore(pool), audit, clock, timedelta(minutes=15))
            assert (await auth.authenticate(leaf.der, None)).facts.not_after > NOW
            clock.advance(timedelta(minutes=9))
            await auth.authenticate(leaf.der, None)  # within both: the cached check
            clock.advance(timedelta(minutes=2))  # past notAfter, inside the interval
            with pytest.raises(CertificateRefused) as refused:
                await auth.authenticate(leaf.der, None)
            assert refused.value.reason == "expired"
    finally:
        await pool.close()
