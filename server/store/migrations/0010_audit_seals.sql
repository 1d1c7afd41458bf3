-- 0010: seals over the head of the audit chain (R9.1: "chained ... and sealed, so that
-- changing or removing a record is detected"). The chain alone cannot show that its newest
-- records were removed; a seal by the provider over (seq, hash), time-stamped, can: every
-- sealed record must still be there with that hash. Append-only, like the chain.
CREATE TABLE audit_seals (
    seal_id      bigserial PRIMARY KEY,
    seq          bigint NOT NULL,
    hash         bytea NOT NULL,
    sealed_at    timestamptz NOT NULL,
    signature    bytea NOT NULL                   -- detached CAdES-B-T over the statement
);
CREATE TRIGGER audit_seals_no_update BEFORE UPDATE OR DELETE ON audit_seals
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_seals_no_truncate BEFORE TRUNCATE ON audit_seals
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
