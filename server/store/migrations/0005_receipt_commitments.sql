-- 0005: a vročilnica lists each waiting delivery by a salted commitment, not by its
-- details, because the signed vročilnica travels in every sender's acceptance evidence:
-- one sender must not learn another's subject, files or address (found in review).
ALTER TABLE receipts ADD COLUMN salts jsonb NOT NULL DEFAULT '{}'::jsonb;
