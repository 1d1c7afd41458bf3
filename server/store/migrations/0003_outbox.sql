-- 0003: the notification outbox (R5.4, R3.4). A notification is written in the same
-- transaction as the event that causes it, so a down mail server (or a crash) loses
-- nothing; server.notify.worker sends it later with retries and backoff.

CREATE TABLE outbox (
    id               bigserial PRIMARY KEY,
    created_at       timestamptz NOT NULL,
    recipient        text NOT NULL,               -- the notification e-mail address
    kind             text NOT NULL,               -- template name (server.notify.templates)
    -- Template parameters. They may hold a secret (the R3.4 confirmation code), so they
    -- are removed as soon as the row is finished: present exactly while it is pending.
    params           jsonb,
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL,
    locked_until     timestamptz,                 -- lease of the worker that claimed it
    last_attempt_at  timestamptz,
    sent_at          timestamptz,
    given_up_at      timestamptz,
    last_error       text,                        -- error class / SMTP code only, never content
    CHECK (sent_at IS NULL OR given_up_at IS NULL),
    CHECK ((params IS NULL) = (sent_at IS NOT NULL OR given_up_at IS NOT NULL))
);

-- The worker's only query: pending rows in due order. Finished rows stay for the record
-- but drop out of the index.
CREATE INDEX outbox_due ON outbox (next_attempt_at, id)
    WHERE sent_at IS NULL AND given_up_at IS NULL;
