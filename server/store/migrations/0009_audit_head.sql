-- 0009: the head of the audit chain (R9.1) in one row, so that an append is one statement:
-- UPDATE of this row (its row lock serialises appends across nodes, as the advisory lock
-- did; READ COMMITTED re-reads the row after the wait, so the update always starts from the
-- latest committed head) and INSERT of the record in the same statement. The head is only a
-- cache of the last record: verify-audit checks the records themselves, and a head that
-- fell behind makes the next append collide with an existing seq (the primary key) rather
-- than fork the chain.
--
-- Upgrade: stop every node running code older than this migration before it is applied
-- (their appends would not move the head, and new appends would then collide). The lock
-- keeps an old node's append from slipping in while the head is seeded.
LOCK TABLE audit_events IN EXCLUSIVE MODE;
CREATE TABLE audit_head (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    seq          bigint NOT NULL,
    prev_hash    bytea,                           -- hash of the record before the last
    hash         bytea NOT NULL                   -- hash of the last record (genesis: zeros)
);
INSERT INTO audit_head (seq, prev_hash, hash)
SELECT coalesce(max(seq), 0),
       NULL,
       coalesce((SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1),
                '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea)
  FROM audit_events;
