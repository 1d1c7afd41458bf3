-- 0008: provider wind-down (R8.5). The
-- announcement, the two operators' signed confirmations (four-eyes), and the notices sent
-- from it, each once.

CREATE TABLE wind_downs (
    wind_down_id         uuid PRIMARY KEY,
    document             bytea NOT NULL,          -- the exact announcement the operators sign
    announced_by         text NOT NULL,           -- the announcing operator's name
    announced_at         timestamptz NOT NULL,
    effective_at         timestamptz,             -- the second operator's confirmation: day 0
    closed_at            timestamptz              -- day 45: every mailbox closed (cessation)
);
-- One wind-down: a provider ceases once.
CREATE UNIQUE INDEX wind_downs_once ON wind_downs ((true));

CREATE TABLE wind_down_confirmations (
    wind_down_id         uuid NOT NULL REFERENCES wind_downs (wind_down_id),
    person_id            text NOT NULL,           -- from the signer's certificate (R1.4)
    cert_fingerprint     text NOT NULL,
    signature            bytea NOT NULL,          -- detached CAdES over ``document``
    verification         jsonb NOT NULL,          -- what was checked, against what, when
    confirmed_at         timestamptz NOT NULL,
    PRIMARY KEY (wind_down_id, person_id)
);

CREATE TABLE wind_down_notices (
    wind_down_id         uuid NOT NULL REFERENCES wind_downs (wind_down_id),
    recipient            text NOT NULL,           -- a mailbox address, or 'ministry'
    queued_at            timestamptz NOT NULL,
    PRIMARY KEY (wind_down_id, recipient)
);
