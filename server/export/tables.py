"""What an export holds, table by table (R8.5), and what it leaves out and why.

:data:`COVERED` names every table of the schema: a migration that adds one fails
``test_export_covers_every_table`` until it is exported here or left out with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Table:
    file: str
    label: str
    count: str
    query: str
    drop: tuple[str, ...] = ()


TABLES: tuple[Table, ...] = (
    Table(
        "persons.jsonl",
        "persons",
        "SELECT count(*) FROM persons",
        "SELECT * FROM persons ORDER BY person_id",
    ),
    Table(
        "certificates.jsonl",
        "certificates",
        "SELECT count(*) FROM certificates",
        """SELECT fingerprint, person_id, issuer, serial, subject, not_before, not_after, der
             FROM certificates ORDER BY fingerprint""",
    ),
    Table(
        "subscribers.jsonl",
        "subscribers",
        "SELECT count(*) FROM subscribers",
        "SELECT * FROM subscribers ORDER BY created_at, subscriber_id",
    ),
    Table(
        "contracts.jsonl",
        "contracts",
        "SELECT count(*) FROM contracts",
        "SELECT * FROM contracts ORDER BY received_at, contract_id",
    ),
    Table(
        "mailboxes.jsonl",
        "mailboxes",
        "SELECT count(*) FROM mailboxes",
        "SELECT * FROM mailboxes ORDER BY address",
        drop=("admin_password_hash", "admin_failures", "admin_locks", "admin_locked_until"),
    ),
    Table(
        "mailbox_state_changes.jsonl",
        "mailbox state changes",
        "SELECT count(*) FROM mailbox_state_changes",
        "SELECT * FROM mailbox_state_changes ORDER BY change_id",
    ),
    Table(
        "memberships.jsonl",
        "memberships",
        "SELECT count(*) FROM memberships",
        """SELECT m.*,
                  coalesce((SELECT array_agg(mc.fingerprint ORDER BY mc.fingerprint)
                              FROM membership_certificates mc
                             WHERE mc.address = m.address AND mc.person_id = m.person_id),
                           '{}') AS certificates
             FROM memberships m ORDER BY m.address, m.person_id""",
    ),
    Table(
        "notification_addresses.jsonl",
        "notification addresses",
        "SELECT count(*) FROM notification_addresses WHERE confirmed_at IS NOT NULL",
        """SELECT address, email, confirmed_at, added_at FROM notification_addresses
            WHERE confirmed_at IS NOT NULL ORDER BY address, email""",
    ),
    Table(
        "deliveries.jsonl",
        "deliveries",
        "SELECT count(*) FROM deliveries",
        """SELECT d.*,
                  coalesce((SELECT jsonb_agg(to_jsonb(p) - 'delivery_id' - 'locator'
                                             - 'ciphertext_size' - 'inline_content'
                                             ORDER BY p.part_no)
                              FROM delivery_parts p WHERE p.delivery_id = d.delivery_id),
                           '[]') AS parts,
                  coalesce((SELECT jsonb_agg(to_jsonb(r) - 'delivery_id'
                                             ORDER BY r.recipient_address)
                              FROM delivery_recipients r WHERE r.delivery_id = d.delivery_id),
                           '[]') AS recipients
             FROM deliveries d ORDER BY d.submitted_at, d.delivery_id""",
        drop=("message", "wrapped_key", "key_version"),
    ),
    Table(
        "audit_seals.jsonl",
        "audit seals",
        "SELECT count(*) FROM audit_seals",
        "SELECT * FROM audit_seals ORDER BY seq, seal_id",
    ),
    Table(
        "invoices.jsonl",
        "invoices",
        "SELECT count(*) FROM invoices",
        "SELECT * FROM invoices ORDER BY issued_at, invoice_id",
    ),
    Table(
        "payments.jsonl",
        "payments",
        "SELECT count(*) FROM payments",
        "SELECT * FROM payments ORDER BY received_at, payment_id",
    ),
    Table(
        "closure_requests.jsonl",
        "closure requests",
        "SELECT count(*) FROM closure_requests",
        "SELECT * FROM closure_requests ORDER BY requested_at, request_id",
    ),
    Table(
        "receipts.jsonl",
        "vročilnice",
        "SELECT count(*) FROM receipts",
        "SELECT * FROM receipts ORDER BY issued_at, receipt_id",
    ),
    Table(
        "registrations.jsonl",
        "registrations",
        "SELECT count(*) FROM registrations",
        "SELECT * FROM registrations ORDER BY created_at, registration_id",
        drop=("admin_password_hash",),
    ),
    Table(
        "wind_down_notices.jsonl",
        "wind-down notices",
        "SELECT count(*) FROM wind_down_notices",
        "SELECT * FROM wind_down_notices ORDER BY wind_down_id, queued_at, recipient",
    ),
    Table(
        "wind_down.jsonl",
        "wind-down",
        "SELECT count(*) FROM wind_downs",
        """SELECT w.*,
                  coalesce((SELECT jsonb_agg(jsonb_build_object(
                                      'person_id', c.person_id,
                                      'cert_fingerprint', c.cert_fingerprint,
                                      'signature_base64', encode(c.signature, 'base64'),
                                      'verification', c.verification,
                                      'confirmed_at', c.confirmed_at) ORDER BY c.confirmed_at)
                              FROM wind_down_confirmations c
                             WHERE c.wind_down_id = w.wind_down_id), '[]') AS confirmations
             FROM wind_downs w""",
    ),
)

#: Every table of the schema → where an export keeps it, or why it does not.
COVERED: dict[str, str] = {
    "persons": "persons.jsonl",
    "certificates": "certificates.jsonl",
    "subscribers": "subscribers.jsonl",
    "contracts": "contracts.jsonl",
    "registrations": "registrations.jsonl (no admin password hash)",
    "mailboxes": "mailboxes.jsonl (no admin password hash or lock counters)",
    "mailbox_state_changes": "mailbox_state_changes.jsonl",
    "memberships": "memberships.jsonl",
    "membership_certificates": "memberships.jsonl (the certificates' fingerprints)",
    "notification_addresses": "notification_addresses.jsonl (confirmed ones)",
    "deliveries": "deliveries.jsonl (no message, no wrapped key)",
    "delivery_parts": "deliveries.jsonl (names, types, sizes, digests; no content)",
    "delivery_recipients": "deliveries.jsonl",
    "receipts": "receipts.jsonl (each vročilnica as issued for signing)",
    "evidence": "evidence/ and evidence.jsonl",
    "audit_events": "audit.jsonl",
    "audit_seals": "audit_seals.jsonl",
    "invoices": "invoices.jsonl",
    "payments": "payments.jsonl",
    "closure_requests": "closure_requests.jsonl",
    "wind_downs": "wind_down.jsonl",
    "wind_down_confirmations": "wind_down.jsonl (each wind-down's confirmations)",
    "wind_down_notices": "wind_down_notices.jsonl (R8.5: who was told)",
    "audit_head": "not exported: the last record of audit.jsonl",
    "invoice_counter": "not exported: the last number in invoices.jsonl",
    "sessions": "not exported: browser sessions of this installation",
    "job_runs": "not exported: this installation's scheduler",
    "outbox": "not exported: e-mail transport; what R8.5 needs is wind_down_notices",
    "directory_lookups": "not exported: rate-limit counters (R4.3)",
    "schema_migrations": "not exported: this installation's schema version",
}
