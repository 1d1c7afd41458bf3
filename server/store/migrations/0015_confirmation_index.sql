-- 0015: how many confirmation codes went to an e-mail address lately (R3.4): the re-send
-- limit reads it, so that adding an address over and over cannot flood a stranger's inbox
-- or buy unlimited tries at the code.
CREATE INDEX outbox_confirmations ON outbox (recipient, created_at)
    WHERE kind = 'email_confirmation';
