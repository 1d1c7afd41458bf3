-- 0004: deliveries, their encrypted parts, per-recipient state, and the sealed evidence of
-- every step (R5, R6). Content bytes live in the content store; rows refer to them by
-- locator, and the data key is kept only wrapped by the master key (R5.5).

CREATE TABLE deliveries (
    delivery_id          uuid PRIMARY KEY,
    kind                 text NOT NULL CHECK (kind IN ('registered', 'return_receipt')),
    sender_address       text NOT NULL REFERENCES mailboxes (address),
    sender_person_id     text NOT NULL REFERENCES persons (person_id),
    sender_fingerprint   text NOT NULL REFERENCES certificates (fingerprint),
    subject              text NOT NULL,
    message              text NOT NULL,
    reference            text,
    submitted_at         timestamptz NOT NULL,
    wrapped_key          bytea NOT NULL,
    key_version          integer NOT NULL,
    content_purged_at    timestamptz            -- R8.1: evidence outlives content
);
CREATE INDEX deliveries_outbox ON deliveries (sender_address, submitted_at DESC, delivery_id DESC);

CREATE TABLE delivery_parts (
    delivery_id          uuid NOT NULL REFERENCES deliveries (delivery_id),
    part_no              integer NOT NULL,
    name                 text NOT NULL,
    media_type           text NOT NULL,
    size                 bigint NOT NULL,
    sha256               text NOT NULL,
    locator              text NOT NULL,
    ciphertext_size      bigint NOT NULL,
    sender_signature     jsonb,                 -- the verification of a sender signature (R5.1)
    PRIMARY KEY (delivery_id, part_no)
);
CREATE INDEX delivery_parts_locator ON delivery_parts (locator);

CREATE TABLE delivery_recipients (
    delivery_id          uuid NOT NULL REFERENCES deliveries (delivery_id),
    recipient_address    text NOT NULL REFERENCES mailboxes (address),
    state                text NOT NULL CHECK (state IN
                             ('consigned', 'awaiting_acceptance', 'accepted', 'rejected',
                              'deemed_served')),
    consigned_at         timestamptz NOT NULL,
    notified_at          timestamptz,           -- NotificationForAcceptance (R5.3 clock)
    decided_at           timestamptz,           -- accepted, rejected or deemed served
    decided_by           text,                  -- person id; 'system' for deemed service
    acceptance_method    text,                  -- signature | login | deemed
    handed_over_at       timestamptz,           -- first download (ContentHandover)
    PRIMARY KEY (delivery_id, recipient_address)
);
CREATE INDEX delivery_recipients_inbox
    ON delivery_recipients (recipient_address, consigned_at DESC, delivery_id DESC);
CREATE INDEX delivery_recipients_waiting
    ON delivery_recipients (notified_at) WHERE state = 'awaiting_acceptance';

-- The vročilnica issued for acceptance (R5.3): the exact bytes the recipient signs.
CREATE TABLE receipts (
    receipt_id           uuid PRIMARY KEY,
    recipient_address    text NOT NULL REFERENCES mailboxes (address),
    issued_to            text NOT NULL REFERENCES persons (person_id),
    issued_at            timestamptz NOT NULL,
    document             bytea NOT NULL,
    delivery_ids         uuid[] NOT NULL,
    used_at              timestamptz
);

CREATE TABLE evidence (
    evidence_id          uuid PRIMARY KEY,
    delivery_id          uuid NOT NULL REFERENCES deliveries (delivery_id),
    recipient_address    text,                  -- NULL for events about the submission
    event                text NOT NULL,
    event_time           timestamptz NOT NULL,
    xml                  bytea NOT NULL,        -- sealed XAdES-B-T (R6.2)
    sha256               text NOT NULL,
    qualified            boolean NOT NULL
);
CREATE INDEX evidence_delivery ON evidence (delivery_id, event_time);
CREATE UNIQUE INDEX evidence_once_per_recipient ON evidence (delivery_id, recipient_address, event)
    WHERE event IN ('ContentHandover', 'ConsignmentAcceptance', 'ConsignmentRejection',
                    'AcceptanceRejectionExpiry', 'ContentConsignment',
                    'NotificationForAcceptance');
