"""What one running application holds: settings, clock, pool, stores and services."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from ..clock import Clock
from ..settings import Settings
from ..store.audit import AuditStore
from ..store.persons import PersonStore
from .authentication import Authenticator
from .sessions import SessionService


@dataclass(frozen=True)
class Services:
    settings: Settings
    clock: Clock
    pool: asyncpg.Pool
    audit: AuditStore
    persons: PersonStore
    authenticator: Authenticator
    sessions: SessionService
