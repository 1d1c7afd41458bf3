"""Notification texts (R5.4, R3.4): Slovenian first, then English, never any content.

One plain-text template per kind in ``server/templates/email/<kind>.txt``: the first line
is the subject, a blank line, then the body. Each kind declares exactly which parameters
it takes and a render with any other refuses, so a caller cannot slip a delivery's
subject or sender into an e-mail (e-mail is not a reliable channel, only a hint).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jinja2

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "templates" / "email"

#: kind → the parameter names it takes, no more, no fewer.
PARAMS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "delivery_waiting": frozenset({"mailbox"}),
        "email_confirmation": frozenset({"mailbox", "code"}),
        "mailbox_notice": frozenset({"mailbox", "notice"}),
        # R8.5: the provider's wind-down, to each subscriber and to the ministry
        "wind_down": frozenset({"mailbox", "formal_until", "access_until"}),
        "wind_down_ministry": frozenset(
            {"provider", "effective_at", "formal_until", "access_until", "mailboxes"}
        ),
    }
)

#: ``mailbox_notice``: notice key → (Slovenian, English). A key, not free text, so the
#: notice is always in both languages and says no more than these sentences.
NOTICES: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "state_changed": (
            "Stanje vašega varnega predala se je spremenilo.",
            "The state of your secure mailbox has changed.",
        ),
        "action_required": (
            "V vašem varnem predalu vas čaka zadeva, ki potrebuje vaše ukrepanje.",
            "Something in your secure mailbox needs your attention.",
        ),
        "suspended_no_contract": (
            "Začasni predal je zaustavljen: podpisane papirne pogodbe nismo prejeli v 8 dneh.",
            "The temporary mailbox is suspended: the signed paper contract did not arrive "
            "within 8 days.",
        ),
        "certificate_missing": (
            "Nihče v predalu nima več veljavnega kvalificiranega potrdila; brez njega bomo "
            "predal zaprli.",
            "Nobody in the mailbox has a valid qualified certificate left; without one the "
            "mailbox will be closed.",
        ),
        "closed": (
            "Varni predal je zaprt. Pošiljanje in prejemanje nista več mogoča.",
            "The secure mailbox is closed. Nothing can be sent or received any more.",
        ),
        "readonly_granted": (
            "Odobren je začasen dostop samo za branje do prejetih in poslanih pošiljk.",
            "Temporary read-only access to received and sent deliveries has been granted.",
        ),
        "invoice_issued": (
            "Izdali smo račun za uporabo varnega predala; plačljiv je v 15 dneh.",
            "An invoice for the secure mailbox has been issued; it is due in 15 days.",
        ),
        "payment_reminder": (
            "Opomin: račun za varni predal ni plačan. Neplačan 30 dni po zapadlosti pomeni "
            "zaprtje predala.",
            "Reminder: an invoice for the secure mailbox is unpaid. Unpaid 30 days after it "
            "fell due, the mailbox is closed.",
        ),
        "readonly_ended": (
            "Začasni dostop samo za branje je potekel.",
            "The temporary read-only access has ended.",
        ),
    }
)


class TemplateError(ValueError):
    """A kind or parameters no template accepts. ``str()`` names no value, only the fault."""


def check(kind: str, params: Mapping[str, Any]) -> None:
    """Raise :class:`TemplateError` unless ``render(kind, params)`` would succeed.

    Callers may check before they enqueue, so a mistake fails the request rather than
    being given up later by the worker.
    """
    expected = PARAMS.get(kind)
    if expected is None:
        raise TemplateError("UnknownKind")
    if set(params) != expected:
        raise TemplateError("UnexpectedParams")
    for value in params.values():
        # One short line each: a newline in a parameter could add lines of its own.
        if not isinstance(value, str) or not value or not value.isprintable():
            raise TemplateError("BadParam")
    if kind == "mailbox_notice" and params["notice"] not in NOTICES:
        raise TemplateError("UnknownNotice")


def render(kind: str, params: Mapping[str, Any]) -> tuple[str, str]:
    """The (subject, plain-text body) of one notification."""
    check(kind, params)
    context = dict(params)
    if kind == "mailbox_notice":
        context["notice_sl"], context["notice_en"] = NOTICES[params["notice"]]
    text = _environment().get_template(f"{kind}.txt").render(context)
    subject, blank, body = text.partition("\n\n")
    if not blank or not subject.strip() or "\n" in subject:
        raise TemplateError("MalformedTemplate")
    return subject.strip(), body


@cache
def _environment() -> jinja2.Environment:
    # Plain-text e-mail, not HTML: there is nothing to escape, and escaping would garble it.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=False,  # noqa: S701
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
