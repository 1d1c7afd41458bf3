"""``vep serve``'s process set-up (issue 4 benchmark: what start-up made is left out of the
garbage collector's full collections)."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest
from aiohttp import web

import server.app
from server import serve
from server.settings import load

BASE = {
    "VEP_DATABASE_URL": "postgresql://app@/vep?host=/tmp/x",
    "VEP_TLS": "off",
    "VEP_TRUSTED_PROXIES": "127.0.0.1",
}


class _Cycle:
    def __init__(self) -> None:
        self.me = self


async def test_freeze_startup_heap_moves_the_heap_out_of_the_generations() -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    gc.disable()  # no automatic collection may free the cycle before the call does
    garbage = _Cycle()
    dead = weakref.ref(garbage)
    del garbage  # unreachable, but only a collection frees a cycle
    try:
        await serve.freeze_startup_heap(web.Application())
        assert gc.get_freeze_count() > 1000  # the modules and objects the tests loaded
        assert dead() is None  # collected first: garbage is not frozen for good
    finally:
        gc.unfreeze()
        gc.enable()


def test_serve_freezes_after_the_resources_start(monkeypatch: pytest.MonkeyPatch) -> None:
    app = web.Application()

    async def resources(app: web.Application) -> Any:
        yield

    app.cleanup_ctx.append(resources)
    served: list[web.Application] = []
    monkeypatch.setattr(server.app, "create_app", lambda settings: app)
    monkeypatch.setattr(serve.logs, "setup", lambda level: None)
    monkeypatch.setattr(serve.web, "run_app", lambda app, **kwargs: served.append(app))

    serve._run(load(None, BASE), reuse_port=False, announce=False)

    assert served == [app]
    # aiohttp runs the cleanup contexts' start-up as the first on_startup handler
    assert list(app.on_startup)[-1] is serve.freeze_startup_heap
    assert len(app.on_startup) == 2
