"""R8.3: the subscriber asks to close the mailbox with a request signed from inside it.

The custodian fetches the request document (``GET …/closure-request``: the mailbox, the
custodian and the day, in Slovenian and English), signs it with the qualified certificate
of the session (detached CAdES, as the contract, R2.1) and posts the signature
(``POST …/closure``). The server rebuilds the document it issued for that custodian today
(or yesterday, for a request signed just before midnight), verifies the signature, checks
that the signer is the session's own qualified certificate, then — in one transaction —
stores the signed request (the record) and closes the mailbox (acting on it).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from ..clock import Clock
from ..errors import Conflict, Refused, SignatureRefused
from ..store.lifecycle import LifecycleStore
from ..trust.certs import Loa
from ..trust.signatures import SignatureCheck, verify_signed_contract
from ..trust.validation import CertificateChecker
from .mailboxes import Access

MAX_SIGNATURE = 256 * 1024


def request_document(address: str, person_id: str, day: date) -> bytes:
    """The exact bytes the custodian signs; deterministic, so nothing is stored before."""
    return (
        "VEP - zahteva za zaprtje varnega predala / request to close a secure mailbox\n"
        f"Predal / Mailbox: {address}\n"
        f"Skrbnik / Custodian: {person_id}\n"
        f"Datum / Date: {day.isoformat()}\n"
        "Kot skrbnik predala zahtevam, da ponudnik predal zapre (R8.3). Po zaprtju ni mogoče "
        "ne pošiljati ne prejemati.\n"
        "As the custodian of the mailbox I ask the provider to close it (R8.3). After closure "
        "nothing can be sent or received.\n"
    ).encode()


class ClosureService:
    def __init__(self, clock: Clock, store: LifecycleStore, checker: CertificateChecker) -> None:
        self._clock = clock
        self._store = store
        self._checker = checker

    def issue(self, access: Access) -> bytes:
        self._require(access)
        return request_document(access.mailbox.address, access.actor, self._clock.now().date())

    async def close(self, access: Access, signature: bytes) -> datetime:
        self._require(access)
        now = self._clock.now()
        result: SignatureCheck | None = None
        document = b""
        refusal: SignatureRefused | None = None
        for day in (now.date(), (now - timedelta(days=1)).date()):
            document = request_document(access.mailbox.address, access.actor, day)
            try:
                result = await verify_signed_contract(
                    document, signature, self._checker, self._checker.now()
                )
                break
            except SignatureRefused as exc:
                refusal = exc
        if result is None:
            assert refusal is not None
            raise refusal
        if result.format != "cades":
            raise SignatureRefused(
                "signature_format", "Sign the closure request as detached CAdES (.p7s)."
            )
        signer = result.signer.facts
        if signer.fingerprint != access.check.facts.fingerprint:
            raise Refused(
                "The request must be signed with the certificate of this session.",
                "signer_mismatch",
            )
        if result.signer.loa not in (Loa.HIGH, Loa.SUBSTANTIAL):
            raise Refused("A qualified certificate must sign the request.", "not_qualified")
        changed = await self._store.close_on_request(
            access.mailbox.address, access.actor, signer.fingerprint, document, signature, now
        )
        if changed is None:
            raise Conflict(
                f"The mailbox is {access.mailbox.state}; it cannot be closed now.", "not_open"
            )
        return now

    @staticmethod
    def _require(access: Access) -> None:
        if not access.is_custodian:
            raise Refused("Only the mailbox custodian may close it.", "not_custodian")
