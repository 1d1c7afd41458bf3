"""R5.5, R6.1: content that does not open as it was written is never handed over.

ContentHandover is the evidence that the recipient was given the content; it was sealed
before the part was even opened, and a 200 went out before the first chunk was checked (a
review found both). Each case damages what is stored as an attacker with disk or database
write access could, and expects 503 ``content_unavailable``, no plaintext, no handover."""

from __future__ import annotations

import pytest

from server.settings import Settings
from tests.integration.test_deliveries import COURT, DEJAN, PDF, get, send
from tests.support import RunningServer

pytestmark = pytest.mark.integration

LARGE = PDF * (Settings.content_inline_max_bytes // len(PDF) + 1)


async def handovers(server: RunningServer, did: str) -> tuple[int, object]:
    pool = server.services.pool
    count = await pool.fetchval(
        "SELECT count(*) FROM evidence WHERE delivery_id = $1::uuid AND event = 'ContentHandover'",
        did,
    )
    handed = await pool.fetchval(
        "SELECT handed_over_at FROM delivery_recipients WHERE delivery_id = $1::uuid", did
    )
    return int(count), handed


async def refused(server: RunningServer, did: str, part: int = 0) -> None:
    status, body, headers = await get(server, "delegate", f"/api/v1/deliveries/{did}/parts/{part}")
    assert status == 503, body
    assert headers["Content-Type"].startswith("application/problem+json")
    assert b"content_unavailable" in body and PDF[:8] not in body
    assert await handovers(server, did) == (0, None)


async def test_a_damaged_file_is_not_handed_over(server: RunningServer) -> None:
    """One byte flipped in the middle of a stored file: the chunk that holds it fails
    authentication, whose earlier chunks would have gone out under a 200 before."""
    _, sent = await send(
        server, "qualified-qscd", COURT, [DEJAN], files=[("spis.pdf", LARGE, "application/pdf")]
    )
    did = sent["delivery_id"]
    locator = await server.services.pool.fetchval(
        "SELECT locator FROM delivery_parts WHERE delivery_id = $1::uuid", did
    )
    [path] = list((server.services.settings.data_dir / "content").rglob(locator))
    data = bytearray(path.read_bytes())
    data[len(data) * 3 // 4] ^= 0x01
    path.write_bytes(bytes(data))
    await refused(server, did)
    # the sender's copy is the same file: refused alike, nothing recorded either
    status, _, _ = await get(server, "qualified-qscd", f"/api/v1/deliveries/{did}/parts/0")
    assert status == 503


async def test_a_damaged_part_in_its_row_or_a_missing_file_is_not_handed_over(
    server: RunningServer,
) -> None:
    _, small = await send(server, "qualified-qscd", COURT, [DEJAN])
    await server.services.pool.execute(
        """UPDATE delivery_parts
              SET inline_content = overlay(inline_content placing '\\x00'::bytea from 40)
            WHERE delivery_id = $1::uuid""",
        small["delivery_id"],
    )
    await refused(server, small["delivery_id"])
    _, large = await send(
        server, "qualified-qscd", COURT, [DEJAN], files=[("spis.pdf", LARGE, "application/pdf")]
    )
    locator = await server.services.pool.fetchval(
        "SELECT locator FROM delivery_parts WHERE delivery_id = $1::uuid", large["delivery_id"]
    )
    [path] = list((server.services.settings.data_dir / "content").rglob(locator))
    path.unlink()
    await refused(server, large["delivery_id"])


async def test_a_data_key_that_does_not_unwrap_is_not_handed_over(server: RunningServer) -> None:
    _, sent = await send(server, "qualified-qscd", COURT, [DEJAN])
    await server.services.pool.execute(
        """UPDATE deliveries SET wrapped_key = overlay(wrapped_key placing '\\xff'::bytea from 20)
            WHERE delivery_id = $1::uuid""",
        sent["delivery_id"],
    )
    await refused(server, sent["delivery_id"])
    # the server stays healthy: an intact delivery is handed over as before
    _, intact = await send(server, "qualified-qscd", COURT, [DEJAN])
    assert (await get(server, "delegate", f"/api/v1/deliveries/{intact['delivery_id']}/parts/0"))[
        :2
    ] == (200, PDF)
    assert (await handovers(server, intact["delivery_id"]))[0] == 1
