-- 0002: subscribers, registrations and signed contracts (R2), mailboxes with their state
-- history (R3.3), memberships and the certificates enrolled for them (R3.1, R3.2, R1.5),
-- notification addresses with proof of possession (R3.4), directory rate limiting (R4.3).

CREATE TABLE subscribers (
    subscriber_id        uuid PRIMARY KEY,
    kind                 text NOT NULL CHECK (kind IN ('natural', 'legal')),
    name                 text NOT NULL,
    tax_number           text NOT NULL,
    registration_number  text,                    -- matična številka (legal entities)
    vat_payer            boolean,
    iban                 text,
    postal_address       jsonb NOT NULL,
    email                text NOT NULL,
    einvoice             boolean NOT NULL DEFAULT false,
    person_id            text REFERENCES persons (person_id),  -- natural persons
    created_at           timestamptz NOT NULL,
    terminated_at        timestamptz,
    termination_reason   text,                    -- 'breach' refuses a new contract (R2.5)
    unpaid_debt_cents    bigint NOT NULL DEFAULT 0 CHECK (unpaid_debt_cents >= 0),
    CHECK ((kind = 'legal') = (registration_number IS NOT NULL))
);
CREATE INDEX subscribers_tax_number ON subscribers (tax_number);

CREATE TABLE registrations (
    registration_id      uuid PRIMARY KEY,
    person_id            text NOT NULL REFERENCES persons (person_id),
    cert_fingerprint     text NOT NULL REFERENCES certificates (fingerprint),
    kind                 text NOT NULL CHECK (kind IN ('natural', 'legal')),
    local_part           text NOT NULL,
    mailbox_kind         text NOT NULL CHECK (mailbox_kind IN ('single', 'multi')),
    details              jsonb NOT NULL,          -- the validated subscriber data
    admin_password_hash  text NOT NULL,           -- argon2id (R1.5)
    terms_version        text NOT NULL,
    contract_pdf         bytea NOT NULL,          -- the exact bytes issued for signing
    contract_sha256      bytea NOT NULL,
    created_at           timestamptz NOT NULL,
    expires_at           timestamptz NOT NULL,    -- the address is held until then
    completed_at         timestamptz,
    mailbox_address      text
);
CREATE INDEX registrations_pending ON registrations (local_part) WHERE completed_at IS NULL;

CREATE TABLE mailboxes (
    address              text PRIMARY KEY,        -- local@domain
    local_part           text NOT NULL,
    domain               text NOT NULL,
    subscriber_id        uuid NOT NULL REFERENCES subscribers (subscriber_id),
    kind                 text NOT NULL CHECK (kind IN ('single', 'multi')),
    state                text NOT NULL CHECK (state IN
                             ('temporary', 'active', 'suspended', 'closed', 'readonly', 'purged')),
    public_body          boolean NOT NULL DEFAULT false,   -- set by an operator only
    display_name         text NOT NULL,
    directory_listed     boolean NOT NULL,        -- R4.2: legal default on, natural default off
    reference_listed     boolean NOT NULL DEFAULT false,   -- R4.4: explicit consent
    einvoice_signing_authorised boolean NOT NULL DEFAULT false,  -- R3.4, used by R7.2
    encryption_cert      bytea,                   -- R3.4, used by R5.5
    admin_password_hash  text NOT NULL,
    admin_failures       integer NOT NULL DEFAULT 0,
    admin_locks          integer NOT NULL DEFAULT 0,
    admin_locked_until   timestamptz,
    paper_contract_received_at timestamptz,       -- R2.3
    created_at           timestamptz NOT NULL,
    UNIQUE (local_part, domain)
);
CREATE INDEX mailboxes_subscriber ON mailboxes (subscriber_id);

CREATE TABLE contracts (
    contract_id          uuid PRIMARY KEY,
    subscriber_id        uuid NOT NULL REFERENCES subscribers (subscriber_id),
    registration_id      uuid NOT NULL REFERENCES registrations (registration_id),
    terms_version        text NOT NULL,
    contract_pdf         bytea NOT NULL,
    signature_format     text NOT NULL CHECK (signature_format IN ('pades', 'cades')),
    signature            bytea NOT NULL,          -- the signed PDF, or the detached .p7s
    verification         jsonb NOT NULL,          -- what was checked, against what, when
    signed_by            text NOT NULL REFERENCES persons (person_id),
    signed_as_representative boolean NOT NULL,
    received_at          timestamptz NOT NULL
);

CREATE TABLE mailbox_state_changes (
    change_id            bigserial PRIMARY KEY,
    address              text NOT NULL REFERENCES mailboxes (address),
    from_state           text,
    to_state             text NOT NULL,
    changed_at           timestamptz NOT NULL,
    actor                text NOT NULL,           -- person id, 'operator:<name>', 'system'
    reason               text NOT NULL
);
CREATE INDEX mailbox_state_changes_address ON mailbox_state_changes (address, changed_at);

CREATE TABLE memberships (
    address              text NOT NULL REFERENCES mailboxes (address),
    person_id            text NOT NULL REFERENCES persons (person_id),
    role                 text NOT NULL CHECK (role IN ('custodian', 'delegate')),
    permissions          text[] NOT NULL,
    added_at             timestamptz NOT NULL,
    added_by             text NOT NULL,
    PRIMARY KEY (address, person_id),
    CHECK (permissions <@ ARRAY['read', 'send', 'accept', 'manage']::text[])
);
CREATE UNIQUE INDEX memberships_one_custodian ON memberships (address) WHERE role = 'custodian';
CREATE INDEX memberships_person ON memberships (person_id);

-- R1.5: a member uses the mailbox only with a certificate enrolled for it; enrolling a new
-- certificate needs the mailbox admin password.
CREATE TABLE membership_certificates (
    address              text NOT NULL,
    person_id            text NOT NULL,
    fingerprint          text NOT NULL REFERENCES certificates (fingerprint),
    added_at             timestamptz NOT NULL,
    added_by             text NOT NULL,
    PRIMARY KEY (address, fingerprint),
    FOREIGN KEY (address, person_id) REFERENCES memberships (address, person_id)
        ON DELETE CASCADE
);

CREATE TABLE notification_addresses (
    address              text NOT NULL REFERENCES mailboxes (address),
    email                text NOT NULL,
    code_hash            bytea,                   -- SHA-256 of the confirmation code
    code_expires_at      timestamptz,
    code_attempts        integer NOT NULL DEFAULT 0,
    confirmed_at         timestamptz,
    added_at             timestamptz NOT NULL,
    PRIMARY KEY (address, email)
);

CREATE TABLE directory_lookups (
    person_id            text NOT NULL,
    looked_up_at         timestamptz NOT NULL
);
CREATE INDEX directory_lookups_person ON directory_lookups (person_id, looked_up_at);
