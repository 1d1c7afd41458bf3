"""The one route table (API + UI)."""

from __future__ import annotations

from aiohttp import web

from .api import (
    deliveries,
    directory,
    health,
    lifecycle,
    mailboxes,
    payments,
    registrations,
    session,
    validate,
)
from .middlewares import HOME_PAGE, PART_DOWNLOAD, RECEIPT_ISSUE, SESSION_API
from .ui import home

MAILBOX = "/api/v1/mailboxes/{address}"


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/healthz", health.healthz)
    r.add_get("/readyz", health.readyz)
    r.add_get("/reference-list", directory.reference_list)
    r.add_get("/api/v1/session", session.get_session, name=SESSION_API)
    r.add_post("/logout", session.logout)
    r.add_get("/", home.home, name=HOME_PAGE)
    r.add_get("/logged-out", home.logged_out)

    r.add_post("/api/v1/registrations", registrations.create)
    r.add_get("/api/v1/registrations/{id}", registrations.show)
    r.add_get("/api/v1/registrations/{id}/contract.pdf", registrations.contract_pdf)
    r.add_put("/api/v1/registrations/{id}/contract", registrations.put_contract)

    r.add_get("/api/v1/mailboxes", mailboxes.list_mine)
    r.add_get(MAILBOX, mailboxes.show)
    r.add_post(f"{MAILBOX}/delegates", mailboxes.add_delegate)
    r.add_patch(f"{MAILBOX}/delegates/{{person_id}}", mailboxes.update_delegate)
    r.add_delete(f"{MAILBOX}/delegates/{{person_id}}", mailboxes.remove_delegate)
    r.add_post(f"{MAILBOX}/custodian", mailboxes.transfer_custody)
    r.add_post(f"{MAILBOX}/certificates", mailboxes.enroll_certificate)
    r.add_get(f"{MAILBOX}/settings", mailboxes.get_settings)
    r.add_patch(f"{MAILBOX}/settings", mailboxes.update_settings)
    r.add_post(f"{MAILBOX}/notification-addresses", mailboxes.add_notification_address)
    r.add_post(
        f"{MAILBOX}/notification-addresses/{{email}}/confirm",
        mailboxes.confirm_notification_address,
    )
    r.add_delete(
        f"{MAILBOX}/notification-addresses/{{email}}", mailboxes.remove_notification_address
    )

    r.add_get("/api/v1/directory", directory.search)
    r.add_post("/api/v1/validate", validate.validate)
    r.add_post("/api/v1/payments/webhook", payments.webhook)

    r.add_post(f"{MAILBOX}/deliveries", deliveries.submit)
    r.add_get(f"{MAILBOX}/inbox", deliveries.inbox)
    r.add_get(f"{MAILBOX}/outbox", deliveries.outbox)
    delivery = "/api/v1/deliveries/{id}"
    r.add_get(delivery, deliveries.show)
    # GET only: a HEAD must not record ContentHandover (found in review)
    # named: a cross-site GET may not record a handover (middlewares.RECORDING_READS)
    r.add_get(
        f"{delivery}/parts/{{part}}", deliveries.download, allow_head=False, name=PART_DOWNLOAD
    )
    r.add_get(f"{delivery}/evidence", deliveries.evidence_list)
    # the .pdf route first: {eid} alone would also match "<uuid>.pdf"
    r.add_get(f"{delivery}/evidence/{{eid}}.pdf", deliveries.evidence_pdf)
    r.add_get(f"{delivery}/evidence/{{eid}}", deliveries.evidence_item)
    r.add_get(f"{delivery}/receipt", deliveries.receipt, allow_head=False, name=RECEIPT_ISSUE)
    r.add_post(f"{delivery}/receipt", deliveries.accept_signed)
    r.add_post(f"{delivery}/accept", deliveries.accept_login)
    r.add_post(f"{delivery}/reject", deliveries.reject)
    r.add_delete(f"{delivery}/content", lifecycle.delete_content)
    r.add_get(f"{MAILBOX}/closure-request", lifecycle.closure_request)
    r.add_post(f"{MAILBOX}/closure", lifecycle.close)
