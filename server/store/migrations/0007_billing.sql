-- 0007: invoices and payments (R8.2), and closure for non-payment (R8.3).

CREATE SEQUENCE invoice_numbers;

CREATE TABLE invoices (
    invoice_id           uuid PRIMARY KEY,
    number               text NOT NULL UNIQUE,      -- e.g. 2026-11-000042
    subscriber_id        uuid NOT NULL REFERENCES subscribers (subscriber_id),
    kind                 text NOT NULL CHECK (kind IN ('subscription', 'einvoice_quota')),
    period               text NOT NULL,             -- '2026-11' (month) or '2026' (year)
    amount_cents         bigint NOT NULL CHECK (amount_cents > 0),
    issued_at            timestamptz NOT NULL,
    due_at               timestamptz NOT NULL,
    paid_cents           bigint NOT NULL DEFAULT 0 CHECK (paid_cents >= 0),
    paid_at              timestamptz,               -- when paid in full
    reminders_sent       integer NOT NULL DEFAULT 0,
    closed_unpaid_at     timestamptz,               -- R8.3: mailboxes closed for it
    UNIQUE (subscriber_id, kind, period)            -- a run issues each invoice once
);
CREATE INDEX invoices_open ON invoices (due_at) WHERE paid_at IS NULL;

CREATE TABLE payments (
    payment_id           uuid PRIMARY KEY,
    invoice_id           uuid NOT NULL REFERENCES invoices (invoice_id),
    amount_cents         bigint NOT NULL CHECK (amount_cents > 0),
    received_at          timestamptz NOT NULL,
    source               text NOT NULL CHECK (source IN ('operator', 'webhook')),
    reference            text NOT NULL,             -- the provider's event id; replays refused
    recorded_by          text NOT NULL,
    UNIQUE (source, reference)
);
CREATE INDEX payments_invoice ON payments (invoice_id);
