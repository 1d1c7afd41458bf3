-- 0014: a certificate is one signed content (TBSCertificate), which may come in more than
-- one DER: an ECDSA signature (r, s) has a twin (r, n - s) that verifies as well, so anyone
-- can make a second encoding of a public certificate. With UNIQUE (issuer, serial) the
-- first encoding on record locked the holder out for good (serial_reused at every login)
-- once another party recorded the twin first — e.g. as a delegate's certificate, which
-- needs no proof of possession.
--
-- Now each encoding is its own row (rows refer to certificates by fingerprint), and the
-- rule of RFC 5280 §4.1.2.2 — one serial, one certificate — is kept by PersonStore
-- .record_login: a certificate under an issuer and serial already on record with OTHER
-- content is refused (serial_reused), under an advisory lock on the pair.
ALTER TABLE certificates DROP CONSTRAINT certificates_issuer_serial_key;
CREATE INDEX certificates_issuer_serial ON certificates (issuer, serial);
