-- 0017: invoice numbers without gaps (R8.2; ZDDV-1 art. 82: invoices are numbered in one
-- unbroken sequence). A sequence's nextval is not undone when the issuing transaction rolls
-- back (an audit or outbox failure, a crash), so a number could be drawn and never used.
-- A counter row taken in the same transaction as the invoice rolls back with it.
CREATE TABLE invoice_counter (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last         bigint NOT NULL CHECK (last >= 0)
);
INSERT INTO invoice_counter (last)
SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM invoice_numbers;
DROP SEQUENCE invoice_numbers;
