-- 0001: the initial layout of a PostgreSQL store. Same tables and columns as the SQLite store.
--
-- Runs inside one transaction, with search_path set to the store's schema (so no name here is
-- schema-qualified). Ids are 128-bit unsigned integers stored as 16-byte big-endian bytea: byte
-- order equals numeric order, so "ORDER BY id" is numeric order. Amounts, counters and
-- timestamps are bigint (signed 64-bit), which is why AMOUNT_MAX is 2**63-1.
--
-- The CHECK constraints restate guarantees the ledger already keeps; they are a last line of
-- defence, so that a programming error fails the commit instead of storing a broken ledger.

CREATE TABLE meta (
    key text PRIMARY KEY,
    value bigint NOT NULL
);

CREATE TABLE accounts (
    id bytea PRIMARY KEY CHECK (octet_length(id) = 16),
    participant text NOT NULL,
    currency text NOT NULL,
    kind text NOT NULL,
    flags integer NOT NULL,
    credit_limit bigint NOT NULL CHECK (credit_limit >= 0),
    code integer NOT NULL,
    ref text NOT NULL,
    timestamp bigint NOT NULL UNIQUE,
    debits_pending bigint NOT NULL CHECK (debits_pending >= 0),
    debits_posted bigint NOT NULL CHECK (debits_posted >= 0),
    credits_pending bigint NOT NULL CHECK (credits_pending >= 0),
    credits_posted bigint NOT NULL CHECK (credits_posted >= 0)
) WITH (fillfactor = 50);

-- The journal. The primary key on timestamp orders it; the unique index on id serves the
-- prefetch (and makes a duplicate id impossible); the two (account, timestamp) indexes serve
-- get_account_transfers; the partial index finds the pending transfers at startup.
CREATE TABLE transfers (
    timestamp bigint PRIMARY KEY,
    id bytea NOT NULL UNIQUE CHECK (octet_length(id) = 16),
    debit_account bytea NOT NULL CHECK (octet_length(debit_account) = 16),
    credit_account bytea NOT NULL CHECK (octet_length(credit_account) = 16),
    amount bigint NOT NULL CHECK (amount > 0),
    flags integer NOT NULL,
    pending_id bytea CHECK (octet_length(pending_id) = 16),
    timeout integer NOT NULL,
    code integer NOT NULL,
    ref text NOT NULL,
    currency text NOT NULL
);
CREATE INDEX transfers_by_debit ON transfers (debit_account, timestamp);
CREATE INDEX transfers_by_credit ON transfers (credit_account, timestamp);
CREATE INDEX transfers_pending ON transfers (timestamp) WHERE flags & 2 <> 0;

-- A pending transfer resolves at most once (primary key). Every resolution happens at its own
-- timestamp: a post or void at the resolving transfer's, an expiry at one of its own.
CREATE TABLE pending_resolutions (
    pending_id bytea PRIMARY KEY CHECK (octet_length(pending_id) = 16),
    status smallint NOT NULL CHECK (status IN (2, 3, 4)),
    timestamp bigint NOT NULL UNIQUE
);

CREATE TABLE account_history (
    account_id bytea NOT NULL CHECK (octet_length(account_id) = 16),
    timestamp bigint NOT NULL,
    debits_pending bigint NOT NULL,
    debits_posted bigint NOT NULL,
    credits_pending bigint NOT NULL,
    credits_posted bigint NOT NULL,
    PRIMARY KEY (account_id, timestamp)
);
