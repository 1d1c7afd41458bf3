"""Build every store and service over one pool (used by the app and by the admin CLI)."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from ..clock import Clock
from ..content.store import ContentStore
from ..evidence.seal import EvidenceSealer
from ..receipts import ReceiptIssuer
from ..registry.business import FixtureRegister
from ..settings import Settings
from ..store.audit import AuditStore
from ..store.billing import BillingStore
from ..store.contacts import ContactStore
from ..store.deliveries import DeliveryStore
from ..store.directory import DirectoryStore
from ..store.lifecycle import LifecycleStore
from ..store.mailboxes import MailboxStore
from ..store.memberships import MembershipStore
from ..store.outbox import OutboxStore
from ..store.persons import PersonStore
from ..store.registrations import RegistrationStore
from ..store.rekey import RekeyStore
from ..store.retention import RetentionStore
from ..store.sessions import SessionStore
from ..store.wind_down import WindDownStore
from ..trust.validation import CertificateChecker
from ..validate.anchors import load_anchors
from .acceptance import AcceptanceService
from .admin_password import AdminPasswordGuard
from .audit_seal import AuditChainSealer
from .authentication import Authenticator
from .billing import BillingService
from .closure import ClosureService
from .container import Services
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
from .wind_down import WindDownGate, WindDownService


def build_services(
    settings: Settings,
    clock: Clock,
    pool: asyncpg.Pool,
    checker: CertificateChecker,
    content: ContentStore,
    sealer: EvidenceSealer,
    receipts: ReceiptIssuer | None = None,
    audit_seal: AuditChainSealer | None = None,
) -> Services:
    audit = AuditStore(pool)
    persons = PersonStore(pool)
    mailboxes = MailboxStore(pool, audit)
    memberships = MembershipStore(pool, audit)
    outbox = OutboxStore(pool)
    contacts = ContactStore(pool, audit)
    deliveries = DeliveryStore(pool, audit)
    register = FixtureRegister(settings.business_register)
    lifecycle = LifecycleStore(pool, audit)
    wind_down_store = WindDownStore(pool, audit)
    gate = WindDownGate(wind_down_store, settings.lifecycle.wind_down_check_seconds)
    authenticator = Authenticator(
        checker,
        persons,
        audit,
        clock,
        timedelta(seconds=settings.revalidation_seconds),
        settings.check_cache_size,
    )
    members = MailboxService(
        clock,
        memberships,
        persons,
        AdminPasswordGuard(mailboxes, audit, clock),
        checker,
    )
    reading = DeliveryAccessService(
        clock, deliveries, mailboxes, members, content, sealer, receipts
    )
    directory = DirectoryService(DirectoryStore(pool), clock, settings.directory_lookups_per_hour)
    return Services(
        settings=settings,
        clock=clock,
        pool=pool,
        audit=audit,
        persons=persons,
        outbox=outbox,
        authenticator=authenticator,
        sessions=SessionService(
            SessionStore(pool, audit),
            authenticator,
            clock,
            timedelta(seconds=settings.session_idle_seconds),
        ),
        registrations=RegistrationService(
            settings,
            clock,
            RegistrationStore(pool, audit),
            persons,
            register,
            checker,
            wind_down=gate,
            lookups=directory.take_lookup,
        ),
        mailboxes=members,
        settings_service=SettingsService(clock, mailboxes, contacts, outbox),
        directory=directory,
        operator=OperatorService(clock, mailboxes),
        submission=SubmissionService(
            settings,
            clock,
            deliveries,
            content,
            sealer,
            load_anchors(settings.anchor_paths),
            wind_down=gate,
            lookups=directory.take_lookup,
        ),
        delivery_access=reading,
        acceptance=AcceptanceService(
            settings,
            clock,
            deliveries,
            mailboxes,
            reading,
            contacts,
            outbox,
            sealer,
            checker,
        ),
        content_sweep=ContentSweeper(clock, content, deliveries),
        content_rekey=ContentRekeyService(clock, RekeyStore(pool, audit), content),
        retention=RetentionService(
            settings,
            clock,
            RetentionStore(pool, audit),
            deliveries,
            mailboxes,
            members,
            content,
            sealer,
        ),
        lifecycle=LifecycleService(settings, clock, lifecycle, checker, register),
        closure=ClosureService(clock, lifecycle, checker),
        billing=BillingService(settings, clock, BillingStore(pool, audit, lifecycle)),
        wind_down=WindDownService(settings, clock, wind_down_store, lifecycle, checker, gate),
        audit_seal=audit_seal,
    )
