"""What one running application holds: settings, clock, pool, stores and services."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from ..clock import Clock
from ..settings import Settings
from ..store.audit import AuditStore
from ..store.outbox import OutboxStore
from ..store.persons import PersonStore
from .acceptance import AcceptanceService
from .audit_seal import AuditChainSealer
from .authentication import Authenticator
from .billing import BillingService
from .closure import ClosureService
from .delivery_access import DeliveryAccessService
from .directory import DirectoryService
from .lifecycle import LifecycleService
from .mailbox_settings import SettingsService
from .mailboxes import MailboxService
from .operator import OperatorService
from .registration import RegistrationService
from .rekey import ContentRekeyService
from .retention import RetentionService
from .sessions import SessionService
from .submission import SubmissionService
from .sweep import ContentSweeper
from .wind_down import WindDownService


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
    submission: SubmissionService
    delivery_access: DeliveryAccessService
    acceptance: AcceptanceService
    content_sweep: ContentSweeper
    #: R5.5: a master-key rotation (``vep admin content-rekey``)
    content_rekey: ContentRekeyService
    retention: RetentionService
    lifecycle: LifecycleService
    closure: ClosureService
    billing: BillingService
    wind_down: WindDownService
    #: R9.1: seals the audit chain's head (the ``audit-seal`` job); None without a seal key
    audit_seal: AuditChainSealer | None = None
