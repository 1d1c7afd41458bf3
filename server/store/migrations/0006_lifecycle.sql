-- 0006: scheduled job runs (R8.7) and the lifecycle facts the jobs act on: content disposal
-- (R8.1), certificate notices and closure (R8.3), read-only access after termination (R8.4),
-- removal of personal data (R8.6), and the subscriber's signed request to close (R8.3).

CREATE TABLE job_runs (
    run_id               bigserial PRIMARY KEY,
    job                  text NOT NULL,
    -- 'poll': a frequent job that may run any number of times (the outbox), no slot rule
    trigger              text NOT NULL CHECK (trigger IN ('schedule', 'manual', 'poll')),
    slot                 timestamptz NOT NULL,   -- the due moment this run serves
    node                 text NOT NULL,          -- host:pid of the process that ran it
    started_at           timestamptz NOT NULL,
    finished_at          timestamptz,
    outcome              text NOT NULL CHECK (outcome IN ('running', 'ok', 'failed', 'abandoned')),
    items                integer NOT NULL DEFAULT 0,
    error                text,                   -- an error class, never data
    CHECK ((outcome = 'running') = (finished_at IS NULL))
);
-- At most one live or successful scheduled run per slot: the second node finds it (R8.7).
CREATE UNIQUE INDEX job_runs_once ON job_runs (job, slot)
    WHERE trigger = 'schedule' AND outcome IN ('running', 'ok');
CREATE INDEX job_runs_latest ON job_runs (job, started_at DESC);

ALTER TABLE deliveries ADD COLUMN content_purge_reason text
    CHECK (content_purge_reason IN ('retention', 'subscriber_request', 'cessation'));
ALTER TABLE deliveries ADD COLUMN content_purge_requested_by text;
CREATE INDEX deliveries_content_kept ON deliveries (submitted_at) WHERE content_purged_at IS NULL;
CREATE UNIQUE INDEX evidence_disposition_once ON evidence (delivery_id, recipient_address)
    WHERE event = 'ContentDisposition';

ALTER TABLE mailboxes ADD COLUMN closed_at timestamptz;
ALTER TABLE mailboxes ADD COLUMN closure_reason text
    CHECK (closure_reason IN ('unpaid', 'no_certificate', 'entity_gone', 'breach',
                              'subscriber_request', 'cessation'));
ALTER TABLE mailboxes ADD COLUMN certificate_notice_at timestamptz;
ALTER TABLE mailboxes ADD COLUMN readonly_until timestamptz;

ALTER TABLE subscribers ADD COLUMN personal_data_removed_at timestamptz;

-- R8.3: "a request signed from their own mailbox" — the signed bytes are the record.
CREATE TABLE closure_requests (
    request_id           uuid PRIMARY KEY,
    address              text NOT NULL REFERENCES mailboxes (address),
    person_id            text NOT NULL REFERENCES persons (person_id),
    cert_fingerprint     text NOT NULL REFERENCES certificates (fingerprint),
    document             bytea NOT NULL,
    signature            bytea NOT NULL,         -- detached CAdES over ``document``
    requested_at         timestamptz NOT NULL,
    acted_at             timestamptz
);
CREATE UNIQUE INDEX closure_requests_open ON closure_requests (address) WHERE acted_at IS NULL;
