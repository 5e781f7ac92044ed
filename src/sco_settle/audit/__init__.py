"""The tamper-evident audit trail: a hash chain of every state change, kept in the same
database transaction as the change (docs/audit-and-events.md).

``chain`` (entries, canonical form, hashes) and ``ledger_rows`` (what a ledger commit records)
and ``verify`` (checking a chain and the rows it explains) are pure; ``sql`` appends and reads
the tables through a statement callable, inside the caller's transaction.
"""

from sco_settle.audit.chain import (
    GENESIS_HASH,
    AuditEntry,
    AuditKind,
    Checkpoint,
    canonical_json,
    chain_entry,
    entry_hash,
)

__all__ = [
    "GENESIS_HASH",
    "AuditEntry",
    "AuditKind",
    "Checkpoint",
    "canonical_json",
    "chain_entry",
    "entry_hash",
]
