-- 0013: early deletion is per party (R8.1 "only on the subscriber's explicit request").
--
-- The content of a delivery is one sealed copy that the sender and every recipient read.
-- A party's request to delete it early removes it from that party's mailbox only; the
-- copy itself is destroyed (crypto-erased, with its ContentDisposition evidence) once every
-- party has asked, or when the retention period ends. Before, one recipient's request
-- destroyed the sender's and the other recipients' copy too, although none of them asked.
ALTER TABLE deliveries ADD COLUMN sender_content_deleted_at timestamptz;
ALTER TABLE delivery_recipients ADD COLUMN content_deleted_at timestamptz;
