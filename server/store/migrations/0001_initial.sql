-- 0001: persons and their certificates (R1.4), browser sessions (R1.6),
-- and the hash-chained, append-only audit trail (R9.1).

CREATE TABLE persons (
    person_id      text PRIMARY KEY,              -- stable, opaque (server.trust.certs.person_id)
    given_name     text,
    surname        text,
    common_name    text,
    first_seen_at  timestamptz NOT NULL,
    last_seen_at   timestamptz NOT NULL
);

CREATE TABLE certificates (
    fingerprint    text PRIMARY KEY,              -- SHA-256 of the DER, hex
    person_id      text NOT NULL REFERENCES persons (person_id),
    issuer         text NOT NULL,
    serial         text NOT NULL,
    subject        text NOT NULL,
    not_before     timestamptz NOT NULL,
    not_after      timestamptz NOT NULL,
    der            bytea NOT NULL,
    first_seen_at  timestamptz NOT NULL,
    last_checked_at timestamptz NOT NULL,
    last_loa       text NOT NULL,
    UNIQUE (issuer, serial)
);
CREATE INDEX certificates_person ON certificates (person_id);

CREATE TABLE sessions (
    token_hash       bytea PRIMARY KEY,           -- SHA-256 of the cookie value; never the value
    person_id        text NOT NULL REFERENCES persons (person_id),
    cert_fingerprint text NOT NULL REFERENCES certificates (fingerprint),
    csrf_token       text NOT NULL,
    created_at       timestamptz NOT NULL,
    last_seen_at     timestamptz NOT NULL,
    validated_at     timestamptz NOT NULL,
    ended_at         timestamptz,
    end_reason       text
);
CREATE INDEX sessions_open ON sessions (cert_fingerprint) WHERE ended_at IS NULL;

CREATE TABLE audit_events (
    seq          bigint PRIMARY KEY,
    occurred_at  timestamptz NOT NULL,
    actor        text,                            -- person_id, operator name, or NULL
    action       text NOT NULL,
    outcome      text NOT NULL,                   -- success | refused | info
    details      jsonb NOT NULL,
    prev_hash    bytea NOT NULL,
    hash         bytea NOT NULL UNIQUE
);

-- Append-only: the database itself refuses to change or remove an audit record, so only
-- someone with the owner's rights (who can drop the trigger) can tamper, and the hash
-- chain (vep verify-audit) detects that.
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only (R9.1)';
END;
$$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
