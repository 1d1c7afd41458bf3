"""Operator actions (audited, by the ``vep admin`` CLI): paper contracts, public bodies."""

from __future__ import annotations

from ..clock import Clock
from ..errors import Conflict, NotFound
from ..store.mailboxes import MailboxStore


class OperatorService:
    def __init__(self, clock: Clock, mailboxes: MailboxStore) -> None:
        self._clock = clock
        self._mailboxes = mailboxes

    async def contract_received(self, address: str, operator: str) -> str:
        """R2.3: the signed paper contract arrived; a temporary mailbox becomes active — and
        so does one suspended for want of it (found in review: suspension is the only way
        into that state, nothing led out of it, and the dead mailbox was billed each month
        until it closed for non-payment and R2.5 then refused the company for good)."""
        actor = f"operator:{operator}"
        mailbox = await self._mailboxes.get(address)
        if mailbox is None:
            raise NotFound(f"No mailbox {address}.")
        now = self._clock.now()
        changed = await self._mailboxes.change_state(
            address,
            "active",
            now,
            actor,
            "signed paper contract received (R2.3)",
            expect=("temporary", "suspended"),
            paper_contract_at=now,
        )
        if changed is None:
            raise Conflict(
                f"{address} is {mailbox.state}; only a temporary or suspended mailbox waits "
                "for a paper contract.",
                "not_temporary",
            )
        return changed.to_state

    async def set_public_body(self, address: str, value: bool, operator: str) -> None:
        """Only an operator may entitle a mailbox to formal service (ZPP, ZUP, ZIZ)."""
        if not await self._mailboxes.set_public_body(
            address, value, self._clock.now(), f"operator:{operator}"
        ):
            raise NotFound(f"No mailbox {address}.")
