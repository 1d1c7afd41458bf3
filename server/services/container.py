"""What one running application holds: settings, clock, pool, stores and services."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from ..clock import Clock
from ..settings import Settings
from ..store.audit import AuditStore
from ..store.outbox import OutboxStore
from ..store.persons import PersonStore
from .authentication import Authenticator
from .directory import DirectoryService
from .mailbox_settings import SettingsService
from .mailboxes import MailboxService
from .operator import OperatorService
from .registration import RegistrationService
from .sessions import SessionService


@dataclass(frozen=True)
class Services:
    settings: Settings
    clock: Clock
    pool: asyncpg.Pool
    audit: AuditStore
    persons: PersonStore
    outbox: OutboxStore
    authenticator: Authenticator
    sessions: SessionService
    registrations: RegistrationService
    mailboxes: MailboxService
    settings_service: SettingsService
    directory: DirectoryService
    operator: OperatorService
