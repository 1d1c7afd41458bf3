"""Members of a mailbox and who may do what (R3.1, R3.2, R1.5, R1.6).

Every mailbox-scoped request is authorised here, again, against the membership table: a
removed delegate is refused at the very next request, also in a session opened before. A
member must use a certificate enrolled for the mailbox; enrolling one (for oneself, or for
a delegate being added) needs the admin password (R1.5).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..clock import Clock
from ..errors import CertificateRefused, Conflict, InvalidFields, NotFound, Refused
from ..store.mailboxes import Mailbox
from ..store.memberships import (
    Addressee,
    MailboxAccess,
    MemberExists,
    Membership,
    MembershipStore,
    NotMember,
)
from ..store.persons import PersonStore, SerialReused
from ..trust.validation import CertificateCheck, CertificateChecker
from .admin_password import AdminPasswordGuard

PERMISSIONS = ("read", "send", "accept", "manage")
#: States in which members and settings may still be managed (R3.3).
MANAGEABLE = ("temporary", "active")


class Need(enum.Enum):
    MEMBER = "member"
    CUSTODIAN = "custodian"
    MANAGE = "manage"  # custodian, or a delegate with `manage` (settings, R3.2)


@dataclass(frozen=True)
class Access:
    """The result of authorising one request on one mailbox."""

    mailbox: Mailbox
    membership: Membership
    check: CertificateCheck
    #: The mailboxes the request names that exist, read with the membership (``naming``).
    addressees: Mapping[str, Addressee] = field(default_factory=dict)

    @property
    def actor(self) -> str:
        return self.check.facts.person_id

    @property
    def is_custodian(self) -> bool:
        return self.membership.role == "custodian"

    def has(self, permission: str) -> bool:
        return self.is_custodian or permission in self.membership.permissions


def permissions_field(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise InvalidFields([{"field": "permissions", "reason": "type"}])
    if any(p not in PERMISSIONS for p in value):
        raise InvalidFields([{"field": "permissions", "reason": "choice"}])
    return sorted(set(value), key=PERMISSIONS.index)


class MailboxService:
    def __init__(
        self,
        clock: Clock,
        memberships: MembershipStore,
        persons: PersonStore,
        guard: AdminPasswordGuard,
        checker: CertificateChecker,
    ) -> None:
        self._clock = clock
        self._memberships = memberships
        self._persons = persons
        self._guard = guard
        self._checker = checker

    async def accessible(self, check: CertificateCheck) -> list[MailboxAccess]:
        return await self._memberships.accessible(check.facts.person_id, check.facts.fingerprint)

    async def authorize(
        self,
        address: str,
        check: CertificateCheck,
        need: Need = Need.MEMBER,
        enrolled: bool = True,
        naming: Sequence[str] = (),
    ) -> Access:
        """The caller's access to ``address``, or a refusal naming what is missing; with
        the mailboxes among ``naming`` that exist, in the same read."""
        found = await self._memberships.member_of(address, check.facts.person_id, naming)
        if found is None or found.mailbox.state == "purged":
            raise Refused("You are not a member of this mailbox.", "not_member")
        mailbox, membership = found.mailbox, found.membership
        if mailbox.state == "closed":
            # R8.4: after termination nobody uses it, unless an operator grants read-only
            # access (state "readonly") on written request.
            raise Refused(
                "The mailbox is closed; read-only access may be granted on written request.",
                "mailbox_closed",
            )
        if (
            mailbox.state == "readonly"
            and mailbox.readonly_until is not None
            and mailbox.readonly_until <= self._clock.now()
        ):
            # R8.4: the grant ends at its time, not when the post-termination job next runs
            raise Refused(
                "The read-only access granted after termination has ended.", "readonly_ended"
            )
        if enrolled and check.facts.fingerprint not in membership.certificates:
            raise Refused(
                "This certificate is not yet enrolled for the mailbox: add it with the "
                "mailbox admin password (R1.5).",
                "certificate_not_enrolled",
            )
        access = Access(mailbox, membership, check, found.addressees)
        if need is Need.CUSTODIAN and not access.is_custodian:
            raise Refused("Only the mailbox custodian may do this.", "not_custodian")
        if need is Need.MANAGE and not access.has("manage"):
            raise Refused(
                "This needs the manage permission.", "permission_required", permission="manage"
            )
        return access

    async def members(self, access: Access) -> list[Membership]:
        return await self._memberships.members(access.mailbox.address)

    @staticmethod
    def require_manageable(access: Access) -> None:
        if access.mailbox.state not in MANAGEABLE:
            raise Conflict(
                f"The mailbox is {access.mailbox.state}; its members cannot change.",
                "mailbox_not_active",
                state=access.mailbox.state,
            )

    async def add_delegate(self, access: Access, body: dict[str, Any]) -> Membership:
        """R3.2: the custodian adds a person by certificate PEM or by known person id."""
        self.require_manageable(access)
        if access.mailbox.kind == "single":
            raise Conflict("A single-user mailbox has no delegates (R3.1).", "single_user")
        permissions = permissions_field(body.get("permissions", ["read"]))
        pem, person_id = body.get("certificate"), body.get("person_id")
        if (pem is None) == (person_id is None):
            raise InvalidFields(
                [{"field": "certificate", "reason": "one_of_certificate_or_person_id"}]
            )
        now = self._clock.now()
        delegate = None
        if isinstance(pem, str):
            try:
                delegate = await self._checker.check(pem.encode("ascii", "replace"))
            except CertificateRefused as exc:
                raise InvalidFields([{"field": "certificate", "reason": exc.reason}]) from None
            person_id, fingerprints = delegate.facts.person_id, [delegate.facts.fingerprint]
        elif isinstance(person_id, str):
            valid_now = self._checker.now()
            known = [
                c for c in await self._persons.certificates_of(person_id) if c.not_after > valid_now
            ]
            if not known:
                raise InvalidFields([{"field": "person_id", "reason": "unknown_person"}])
            fingerprints = [c.fingerprint for c in known]
        else:
            raise InvalidFields([{"field": "person_id", "reason": "type"}])
        await self._guard.require(
            access.mailbox.address, body.get("admin_password"), access.actor, "add_delegate"
        )
        if delegate is not None:  # only now: a refused password writes nothing
            try:
                await self._persons.record_login(delegate.facts, delegate.loa.value, now)
            except SerialReused:
                raise InvalidFields([{"field": "certificate", "reason": "serial_reused"}]) from None
        try:
            await self._memberships.add_delegate(
                access.mailbox.address, person_id, permissions, fingerprints, now, access.actor
            )
        except MemberExists:
            raise Conflict("This person is already a member.", "already_member") from None
        added = await self._memberships.get(access.mailbox.address, person_id)
        assert added is not None
        return added

    async def set_permissions(self, access: Access, person_id: str, body: dict[str, Any]) -> None:
        """R3.2. Taking permissions away works in every state that still gives access (a
        suspended mailbox, read-only after termination): found in review, a custodian
        could not cut off a delegate who had left while that delegate went on reading."""
        permissions = permissions_field(body.get("permissions"))
        if access.mailbox.state not in MANAGEABLE:
            current = await self._memberships.get(access.mailbox.address, person_id)
            if current is None or not set(permissions) <= set(current.permissions):
                self.require_manageable(access)
        if not await self._memberships.set_permissions(
            access.mailbox.address, person_id, permissions, self._clock.now(), access.actor
        ):
            raise NotFound("No such delegate in this mailbox.")

    async def remove_delegate(self, access: Access, person_id: str) -> None:
        """Effective at once, also for sessions already open (R3.2) — in every state that
        still gives access (see :meth:`set_permissions`)."""
        if not await self._memberships.remove(
            access.mailbox.address, person_id, self._clock.now(), access.actor
        ):
            raise NotFound("No such delegate in this mailbox.")

    async def transfer_custody(self, access: Access, body: dict[str, Any]) -> None:
        self.require_manageable(access)
        successor = body.get("person_id")
        if not isinstance(successor, str):
            raise InvalidFields([{"field": "person_id", "reason": "required"}])
        await self._guard.require(
            access.mailbox.address, body.get("admin_password"), access.actor, "transfer_custody"
        )
        if not await self._memberships.transfer_custody(
            access.mailbox.address, access.actor, successor, self._clock.now()
        ):
            raise NotFound("The successor must be a delegate of this mailbox.")

    async def enroll_current_certificate(self, access: Access, body: dict[str, Any]) -> None:
        """R1.5: a member adds the certificate they are using now (e.g. a renewed one)."""
        fingerprint = access.check.facts.fingerprint
        if fingerprint in access.membership.certificates:
            return
        await self._guard.require(
            access.mailbox.address, body.get("admin_password"), access.actor, "enrol_certificate"
        )
        try:
            await self._memberships.enroll(
                access.mailbox.address, access.actor, fingerprint, self._clock.now(), access.actor
            )
        except NotMember:  # removed while the password was checked (R3.2: at once)
            raise Refused("You are not a member of this mailbox.", "not_member") from None
