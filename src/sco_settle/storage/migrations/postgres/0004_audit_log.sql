-- The tamper-evident audit trail (sco_settle.audit; docs/audit-and-events.md): a hash chain of
-- every state change, appended in the transaction of the change, and the outbox readers' progress.
CREATE TABLE audit_log (
    seq bigint PRIMARY KEY,
    kind text NOT NULL,
    actor text NOT NULL,
    payload text NOT NULL,
    prev_hash text NOT NULL,
    hash text NOT NULL
);
CREATE TABLE audit_published (
    stream text PRIMARY KEY,
    seq bigint NOT NULL
);
