-- 0002: the payment records (``storage/payment_records_postgres.py``) in the ledger's schema, so
-- that a PostgreSQL deployment keeps all its state in one database. The same tables and columns
-- as the SQLite payment records (``storage/payment_records_sql.py`` describes them).
--
-- Payment ids compare as bytes (COLLATE "C"), as in SQLite, so both list the records in the same
-- order and page through them on the primary key's index.

CREATE TABLE payments (
    payment_id text COLLATE "C" PRIMARY KEY,
    body text NOT NULL,
    status text NOT NULL,
    reason text,
    reason_text text NOT NULL,
    delivered bigint NOT NULL,
    route text NOT NULL,
    transfer_ids text NOT NULL,
    settled_at bigint NOT NULL,
    received_at bigint NOT NULL,
    queue_seq bigint,
    seq bigint NOT NULL,
    debtor_agent text NOT NULL,
    creditor_agent text NOT NULL,
    currency text NOT NULL,
    creditor_currency text NOT NULL,
    amount_minor bigint  -- NULL: an amount outside bigint (refused with AM02, never summed)
);
CREATE INDEX payments_by_status ON payments (status, queue_seq);
CREATE UNIQUE INDEX payments_by_seq ON payments (seq);
CREATE INDEX payments_by_debtor_agent ON payments (debtor_agent, seq);
CREATE INDEX payments_by_creditor_agent ON payments (creditor_agent, seq);
CREATE INDEX payments_by_currency ON payments (currency, seq);
CREATE INDEX payments_by_creditor_currency ON payments (creditor_currency, seq);

CREATE TABLE payment_intents (
    payment_id text COLLATE "C" PRIMARY KEY,
    kind text NOT NULL,
    body text NOT NULL,
    at bigint NOT NULL
);

CREATE TABLE payment_events (
    payment_id text COLLATE "C" NOT NULL,
    seq integer NOT NULL CHECK (seq >= 1),
    status text NOT NULL,
    at bigint NOT NULL,
    detail text NOT NULL,
    PRIMARY KEY (payment_id, seq)
);
