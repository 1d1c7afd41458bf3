-- 0016: R8.6 — a finished notice forgets its e-mail address once the personal-data period
-- has passed since it finished (LifecycleStore.forget_notice_addresses); the daily job
-- finds those rows by this index instead of reading the whole outbox.
CREATE INDEX outbox_addressed ON outbox ((coalesce(sent_at, given_up_at)))
    WHERE recipient <> '[removed]' AND (sent_at IS NOT NULL OR given_up_at IS NOT NULL);
