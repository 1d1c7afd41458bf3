-- 0012: small parts are kept, sealed, in their row (R5.5; issue 4 benchmark).
--
-- A part up to VEP_CONTENT_INLINE_MAX_BYTES (default 32 KiB: a notice, an e-SLOG invoice)
-- is encrypted exactly as a file part would be — same AES-256-GCM STREAM format, same
-- per-delivery data key, its random locator in every chunk's associated data — and the
-- sealed bytes go into inline_content in the same statement that commits the delivery.
-- For such a part a file meant an inode, two fsyncs, a rename and a thread hop: ~1.5 ms of
-- server CPU per 4 KB delivery, half of all the server did. In the row it is durable by
-- the same commit as the row itself, so no orphan can be left by a crash.
--
-- Larger parts stay files (inline_content NULL). Retention clears inline_content in the
-- transaction that marks the content purged (R8.1).
ALTER TABLE delivery_parts ADD COLUMN inline_content bytea;
-- Ciphertext does not compress: store it out of line without trying.
ALTER TABLE delivery_parts ALTER COLUMN inline_content SET STORAGE EXTERNAL;
ALTER TABLE delivery_parts ADD CONSTRAINT delivery_parts_inline_size
    CHECK (inline_content IS NULL OR octet_length(inline_content) = ciphertext_size);
