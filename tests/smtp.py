"""A real SMTP server for the tests (aiosmtpd on 127.0.0.1), which a test may stop and start.

It keeps one port for its whole life, so a notifier configured once sees "nothing
listening" while it is stopped and the same server once started again. Each start runs a
fresh ``Controller`` (its thread closes its event loop on stop). Recipients in ``reject``
get a permanent 550 at RCPT TO.
"""

from __future__ import annotations

import email
import email.policy
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.conftest import free_port


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class _Handler:
    def __init__(self, owner: SmtpServer) -> None:
        self._owner = owner

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address in self._owner.reject:
            return "550 5.1.1 <" + address + ">: Recipient address rejected"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self._owner._add(Received(envelope.mail_from or "", tuple(envelope.rcpt_tos), content))
        return "250 Message accepted for delivery"


class SmtpServer:
    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.reject: set[str] = set()
        self._received: list[Received] = []
        self._lock = threading.Condition()
        self._controller: Controller | None = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    @property
    def received(self) -> list[Received]:
        """Every message accepted so far (a copy; the server runs in its own thread)."""
        with self._lock:
            return list(self._received)

    def wait_received(self, count: int, timeout: float) -> bool:
        """Block (call it in a thread) until ``count`` messages arrived; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self._received) >= count, timeout)

    def start(self) -> None:
        assert self._controller is None, "already running"
        controller = Controller(_Handler(self), hostname=self.host, port=self.port)
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def _add(self, received: Received) -> None:
        with self._lock:
            self._received.append(received)
            self._lock.notify_all()
