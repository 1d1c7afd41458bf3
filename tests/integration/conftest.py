"""The integration tests' common world (fixtures only)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from server.devpki.generate import DevPki
from tests.conftest import PkiService
from tests.mailbox_support import open_delivery_world
from tests.support import RunningServer, make_settings, running_server


@pytest.fixture
async def server(
    dev_pki: DevPki, pki_service: PkiService, database_url: str
) -> AsyncIterator[RunningServer]:
    """A running server with the delivery tests' parties (:func:`open_delivery_world`).
    A module that needs another world defines its own ``server``, which takes precedence."""
    async with running_server(make_settings(dev_pki, database_url), dev_pki) as running:
        await open_delivery_world(running)
        yield running
