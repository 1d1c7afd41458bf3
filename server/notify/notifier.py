"""Handing an e-mail to the mail server (R5.4), with failures split into retry and give up.

E-mail is only a hint that something awaits in the mailbox, so the notifier never sees
anything worth protecting except the R3.4 confirmation code; still, its errors carry only
an error class and an SMTP code — never the server's text, which often quotes the address.
"""

from __future__ import annotations

import email.message
from email.utils import getaddresses, parseaddr
from typing import Protocol

import aiosmtplib


class NotifierError(Exception):
    """A send failed. ``str()`` is the error class and SMTP code only, safe to store and log."""

    def __init__(self, cause: str, code: int | None = None) -> None:
        self.cause = cause
        self.code = code
        super().__init__(f"{cause} {code}" if code is not None else cause)


class NotifierUnavailable(NotifierError):
    """The server is down, slow or answered 4xx: try again later."""


class NotifierRejected(NotifierError):
    """The server refused this message for good (5xx for its recipient or data)."""


class Notifier(Protocol):
    async def send(self, message: email.message.EmailMessage) -> None:
        """Deliver ``message`` to the mail server or raise a :class:`NotifierError`."""
        ...


class SmtpNotifier:
    """One SMTP connection per message (aiosmtplib); notifications are few and small.

    ``starttls`` on requires STARTTLS with a verified certificate; off sends in the clear
    (a relay on the same host or network). ``sender`` is the envelope sender and may be
    written ``Name <address>``.
    """

    def __init__(self, host: str, port: int, sender: str, starttls: bool, timeout: float) -> None:
        self._host = host
        self._port = port
        self._sender = parseaddr(sender)[1] or sender
        self._starttls = starttls
        self._timeout = timeout

    async def send(self, message: email.message.EmailMessage) -> None:
        recipients = [address for _, address in getaddresses(message.get_all("To", []))]
        try:
            await aiosmtplib.send(
                message,
                sender=self._sender,
                recipients=recipients,
                hostname=self._host,
                port=self._port,
                start_tls=self._starttls,
                timeout=self._timeout,
            )
        # ``from None`` everywhere: the original exception holds the server's text.
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refused.code for refused in exc.recipients]
            # Permanent only when every recipient got a 5xx (there is one recipient).
            raise _by_code(type(exc).__name__, min(codes), permanent_5xx=True) from None
        except (aiosmtplib.SMTPRecipientRefused, aiosmtplib.SMTPDataError) as exc:
            raise _by_code(type(exc).__name__, exc.code, permanent_5xx=True) from None
        except aiosmtplib.SMTPResponseException as exc:
            # A 5xx to the greeting, EHLO or MAIL FROM is the same for every message — a
            # relay or configuration problem — so giving up would drop every notification
            # while it lasts; retry, and the attempt limit ends it.
            raise _by_code(type(exc).__name__, exc.code, permanent_5xx=False) from None
        except ValueError:
            # aiosmtplib refuses an address it cannot send safely (non-ASCII without
            # SMTPUTF8 support); retrying changes nothing.
            raise NotifierRejected("UnsendableAddress") from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            # Connection refused or lost, timeouts (TimeoutError is an OSError), STARTTLS
            # not offered, DNS: all may pass.
            raise NotifierUnavailable(type(exc).__name__) from None


def _by_code(cause: str, code: int, *, permanent_5xx: bool) -> NotifierError:
    if permanent_5xx and 500 <= code < 600:
        return NotifierRejected(cause, code)
    return NotifierUnavailable(cause, code)
