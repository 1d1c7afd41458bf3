"""Registration of natural persons and legal entities (R2.1–R2.5, R2.4, R1.5).

1. ``start``: validate every field (one error per field), refuse earlier debtors and
   subscribers terminated for breach (R2.5), check a legal entity against the business
   register (R2.2), hold the address, hash the admin password (argon2id) and render the
   contract PDF whose exact bytes must be signed.
2. ``submit_contract``: verify the PAdES or detached CAdES signature — intact, over the
   issued bytes, by a valid qualified certificate of the registering person — then open the
   mailbox in one transaction: ``active`` for a natural person or a listed legal
   representative, otherwise ``temporary`` until the operator records the paper contract
   (R2.3). The registering person becomes custodian (R2.4).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from argon2 import PasswordHasher

from ..clock import Clock
from ..contracts.render import ContractData, render_contract
from ..errors import CertificateRefused, Conflict, InvalidFields, NotFound, Refused
from ..registry.business import BusinessRegister
from ..settings import Settings
from ..settings_lifecycle import LifecycleSettings
from ..store.persons import PersonStore, SerialReused
from ..store.registrations import (
    MAX_PENDING,
    AddressTaken,
    OpenedMailbox,
    Registration,
    RegistrationStore,
    TooManyPending,
)
from ..trust.signatures import verify_signed_contract
from ..trust.validation import CertificateCheck, CertificateChecker
from . import fields as f
from .directory import Lookups
from .wind_down import WindDownGate

#: A pending registration holds its address for this long.
HOLD = timedelta(hours=24)


def price_list(rules: LifecycleSettings) -> tuple[tuple[str, str], ...]:
    """The prices the contract states: the very amounts billing invoices (R8.2), read from
    the same settings. Found in review: a fixed list said 2,00 EUR + DDV a month while the
    invoices came to 5,00 and 15,00 EUR — the subscriber signed prices nobody charged."""

    def eur(cents: int) -> str:
        return f"{cents // 100},{cents % 100:02d} EUR"

    return (
        (
            "Varni elektronski predal (en uporabnik) — mesečna naročnina / "
            "single-user mailbox, monthly",
            eur(rules.price_single_cents),
        ),
        (
            "Varni elektronski predal (več uporabnikov) — mesečna naročnina / "
            "multi-user mailbox, monthly",
            eur(rules.price_multi_cents),
        ),
        (
            "E-račun — letna kvota / e-invoices, yearly quota",
            eur(rules.price_einvoice_yearly_cents),
        ),
    )


_hasher = PasswordHasher()  # argon2id with the library's (RFC 9106) defaults


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


@dataclass(frozen=True)
class StartedRegistration:
    registration: Registration
    address: str


class RegistrationService:
    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        store: RegistrationStore,
        persons: PersonStore,
        register: BusinessRegister,
        checker: CertificateChecker,
        wind_down: WindDownGate | None = None,
        lookups: Lookups | None = None,
    ) -> None:
        self._wind_down = wind_down
        self._lookups = lookups
        self._settings = settings
        self._clock = clock
        self._store = store
        self._persons = persons
        self._register = register
        self._checker = checker

    async def start(self, check: CertificateCheck, body: dict[str, Any]) -> StartedRegistration:
        now = self._clock.now()
        if self._wind_down is not None:
            await self._wind_down.refuse_new_contracts(now)
        c = f.Collector()
        kind = c.check("kind", f.choice("natural", "legal"), body.get("kind"))
        local = c.check("local_part", f.local_part, body.get("local_part"))
        details: dict[str, Any] = {
            "tax_number": c.check("tax_number", f.tax_number, body.get("tax_number")),
            "postal_address": c.check(
                "postal_address", f.postal_address, body.get("postal_address")
            ),
            "email": c.check("email", f.email, body.get("email")),
        }
        c.check("accept_terms", f.accepted, body.get("accept_terms"))
        c.check("accept_price_list", f.accepted, body.get("accept_price_list"))
        password = c.check("admin_password", f.admin_password, body.get("admin_password"))
        einvoice = body.get("einvoice", False)
        if c.check("einvoice", f.boolean, einvoice) is not None:
            details["einvoice"] = einvoice
        default_kind = "multi" if kind == "legal" else "single"
        mailbox_kind = c.check(
            "mailbox_kind", f.choice("single", "multi"), body.get("mailbox_kind", default_kind)
        )
        entity = None
        if kind == "natural":
            cert_tax = _certificate_tax_number(check)
            if cert_tax and details["tax_number"] and details["tax_number"] != cert_tax:
                # R2.5 must not be dodged with someone else's valid tax number
                c.fail("tax_number", "certificate_mismatch")
            born = c.check("birth_date", f.birth_date, body.get("birth_date"))
            if born is not None and not f.of_age(born, now):
                c.fail("birth_date", "under_age")
            if details.get("einvoice"):
                details["iban"] = c.check("iban", f.iban, body.get("iban"))
            details["name"] = " ".join(
                p for p in (check.facts.given_name, check.facts.surname) if p
            ) or (check.facts.common_name or "")
        elif kind == "legal":
            number = c.check(
                "registration_number", f.registration_number, body.get("registration_number")
            )
            details["registration_number"] = number
            details["iban"] = c.check("iban", f.iban, body.get("iban"))
            details["vat_payer"] = c.check("vat_payer", f.boolean, body.get("vat_payer"))
            if number is not None:
                entity = await self._register.lookup(number)
                if entity is None:
                    c.fail("registration_number", "not_in_register")
                elif not entity.active:
                    c.fail("registration_number", "entity_inactive")
                else:
                    if details["tax_number"] and details["tax_number"] != entity.tax_number:
                        c.fail("tax_number", "register_mismatch")
                    given = body.get("name")
                    if given is not None and _norm(str(given)) != _norm(entity.name):
                        c.fail("name", "register_mismatch")
                    details["name"] = entity.name
        if c.errors:
            raise InvalidFields(c.errors)
        assert kind and local and password and mailbox_kind
        if kind == "legal":
            standing = await self._store.standing(kind, details["tax_number"], None, now)
        else:
            proven = _certificate_tax_number(check)
            standing = await self._store.standing(kind, proven, check.facts.person_id, now)
        if standing.terminated_for_breach:
            raise Refused(
                "An earlier contract of this subscriber was terminated for breach (R2.5).",
                "terminated_for_breach",
            )
        if standing.unpaid_debt_cents > 0:
            raise Refused(
                "This subscriber has unpaid obligations; registration is refused (R2.5).",
                "unpaid_debt",
                unpaid_debt_cents=standing.unpaid_debt_cents,
            )
        domain = self._settings.mail_domain
        registration_id = uuid.uuid4()
        contract = render_contract(
            ContractData(
                registration_id=str(registration_id),
                terms_version=self._settings.terms_version,
                issued_at=now,
                kind=kind,  # type: ignore[arg-type]
                name=details["name"],
                tax_number=details["tax_number"],
                registration_number=details.get("registration_number"),
                vat_payer=details.get("vat_payer"),
                iban=details.get("iban"),
                postal_address=details["postal_address"],
                email=details["email"],
                mailbox_address=f"{local}@{domain}",
                mailbox_kind=mailbox_kind,  # type: ignore[arg-type]
                einvoice=bool(details.get("einvoice")),
                price_list=price_list(self._settings.lifecycle),
            ),
            self._settings.contract_font,
        )
        try:
            registration = await self._store.create(
                person_id=check.facts.person_id,
                cert_fingerprint=check.facts.fingerprint,
                kind=kind,
                local_part=local,
                domain=domain,
                mailbox_kind=mailbox_kind,
                details=details,
                admin_password_hash=await hash_password(password),
                terms_version=self._settings.terms_version,
                contract_pdf=contract,
                registration_id=registration_id,
                at=now,
                expires_at=now + HOLD,
            )
        except AddressTaken:
            if self._lookups is not None:  # R4.3: it told that the address is a mailbox
                await self._lookups(check, 1)
            raise InvalidFields([{"field": "local_part", "reason": "taken"}]) from None
        except TooManyPending:
            raise Conflict(
                f"You already hold {MAX_PENDING} addresses in registrations not completed; "
                "complete one or let it lapse (24 hours).",
                "too_many_pending",
            ) from None
        return StartedRegistration(registration, f"{local}@{domain}")

    async def registration_of(self, registration_id: str, check: CertificateCheck) -> Registration:
        """Only the person who started a registration sees it (others: 404, no leak)."""
        try:
            rid = uuid.UUID(registration_id)
        except ValueError:
            raise NotFound("No such registration.") from None
        registration = await self._store.get(rid)
        if registration is None or registration.person_id != check.facts.person_id:
            raise NotFound("No such registration.")
        return registration

    async def submit_contract(
        self, registration_id: str, check: CertificateCheck, submitted: bytes
    ) -> OpenedMailbox:
        registration = await self.registration_of(registration_id, check)
        now = self._clock.now()
        if registration.completed_at is not None:
            raise Conflict("The contract was already signed.", "already_signed")
        if registration.expires_at <= now:
            raise Conflict("The registration expired; start again.", "registration_expired")
        if self._wind_down is not None:
            await self._wind_down.refuse_new_contracts(now)
        result = await verify_signed_contract(
            registration.contract_pdf, submitted, self._checker, self._checker.now()
        )
        signer = result.signer.facts
        if signer.person_id != registration.person_id:
            raise Refused(
                "The contract must be signed by the person who registers.",
                "signer_mismatch",
            )
        representative = True
        state = "active"
        if registration.kind == "legal":
            entity = await self._register.lookup(registration.details["registration_number"])
            representative = entity is not None and entity.is_representative(
                signer.subject_serial_number
            )
            state = "active" if representative else "temporary"
        try:
            await self._persons.record_login(signer, result.signer.loa.value, now)
        except SerialReused:
            raise CertificateRefused(
                "serial_reused",
                "Another certificate with this issuer and serial number is already on record; "
                "a CA must never reuse a serial number, so this signature is refused.",
            ) from None
        try:
            return await self._store.complete(
                registration,
                domain=self._settings.mail_domain,
                state=state,
                display_name=registration.details["name"],
                directory_listed=registration.kind == "legal",  # R4.2 defaults
                signature_format=result.format,
                signature=submitted,
                verification=result.as_record(),
                signer_person_id=signer.person_id,
                signer_fingerprint=signer.fingerprint,
                as_representative=representative,
                at=now,
            )
        except AddressTaken:
            raise Conflict("The address was taken meanwhile.", "address_taken") from None


def _certificate_tax_number(check: CertificateCheck) -> str | None:
    """The tax number in the certificate's serialNumber (``TAXSI-12345679``), if any."""
    serial = check.facts.subject_serial_number or ""
    return serial[len("TAXSI-") :] if serial.startswith("TAXSI-") else None


def _norm(name: str) -> str:
    return " ".join(name.casefold().split())
