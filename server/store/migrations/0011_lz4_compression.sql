-- 0011: lz4 instead of pglz for the columns that hold whole documents. Each submission
-- writes two sealed evidences of ~10 KB (evidence.xml), and compressing them with pglz was
-- ~11-15 % of PostgreSQL's CPU in the delivery benchmark (issue 4). lz4 compresses and
-- decompresses several times faster and stores them as small (10.1 KB of XML: 5.73 KB with
-- lz4, 5.77 KB with pglz).
--
-- SET COMPRESSION changes the catalog only: rows written before keep their pglz values and
-- stay readable (each value records its own method), rows written after are lz4. Nothing
-- is rewritten, so the lock each ALTER takes is held only for an instant.
--
-- A PostgreSQL built without lz4 (--without-lz4) refuses "SET COMPRESSION lz4": there the
-- columns keep pglz with a warning instead of failing the upgrade — the choice is about
-- CPU, not about what is stored. Such a server's default_toast_compression does not offer
-- lz4, which is what is checked. (The migration stays applied: moving that database to an
-- lz4 build later keeps pglz until someone runs these ALTERs by hand.)
DO $$
DECLARE
    col record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_settings
                    WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        RAISE WARNING 'this PostgreSQL has no lz4: large columns keep pglz compression';
        RETURN;
    END IF;
    FOR col IN
        SELECT * FROM (VALUES
            ('evidence', 'xml'),                      -- two per submission, ~10 KB each
            ('receipts', 'document'),
            ('registrations', 'contract_pdf'),
            ('contracts', 'contract_pdf'),
            ('contracts', 'signature'),
            ('closure_requests', 'document'),
            ('closure_requests', 'signature'),
            ('wind_downs', 'document'),
            ('wind_down_confirmations', 'signature'),
            ('audit_seals', 'signature')
        ) AS c (tab, name)
    LOOP
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I SET COMPRESSION lz4', col.tab, col.name);
    END LOOP;
END
$$;
