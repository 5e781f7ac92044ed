"""The audit tables in SQL (SQLite or PostgreSQL): append inside the caller's transaction, read.

The adapter speaks through an ``Execute``: a callable that runs one statement written with ``?``
placeholders in the caller's open transaction and returns its rows (``StateDb.transaction``
hands out exactly that; the stores wrap their connections in ``sqlite_execute`` and
``postgres_execute``). So an entry is committed in the same transaction as the change it
records, or not at all.

Tables (in the ledger's SQLite file, or in the ledger's PostgreSQL schema; see
``migrations/postgres/0004_audit_log.sql``):

- ``audit_log (seq, kind, actor, payload, prev_hash, hash)``: the chain (``audit.chain``).
- ``audit_published (stream, seq)``: for each outbox reader (the event publisher), the last seq
  it delivered. Not part of the chain: it records no change of state, only delivery progress.

Appends are serialised: in SQLite by the write transaction itself (``BEGIN IMMEDIATE`` admits one
writer per file), in PostgreSQL by a transaction-level advisory lock taken before the head is
read, because several connections append (the ledger's, the payment records', the API tables').
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sco_settle.audit.chain import GENESIS_HASH, AuditEntry, AuditKind, Checkpoint, chain_entry
from sco_settle.audit.records import KEY_FIELDS, key_secret_digest

__all__ = [
    "SQLITE_DDL",
    "AuditTables",
    "Execute",
    "append_entry",
    "has_table",
    "iter_entries",
    "iter_payment_events",
    "postgres_execute",
    "published_seq",
    "read_cycle_rows",
    "read_entries",
    "read_head",
    "read_key_rows",
    "set_published_seq",
    "sqlite_execute",
]

Execute = Callable[..., list[tuple[Any, ...]]]  # (statement with ?, params=()) -> rows

SQLITE_DDL = """
CREATE TABLE IF NOT EXISTS audit_log (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    payload TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_published (
    stream TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
);
"""
_LOCK_NAMESPACE = "sco_settle.audit:"
PAGE_ROWS_MAX = 10_000  # Rows per page of a full scan: bounds memory.
_COLUMNS = "seq, kind, actor, payload, prev_hash, hash"


@dataclass(frozen=True, slots=True)
class AuditTables:
    """Where a database keeps its chain: the qualified table names, and for PostgreSQL the key
    of the advisory lock that orders appends."""

    prefix: str  # Qualifies the ledger's tables: "" in SQLite, '"<schema>".' in PostgreSQL.
    api_prefix: str  # The same for the API's tables (``server.db``: "<schema>_api").
    lock_key: str | None

    @property
    def log(self) -> str:
        return f"{self.prefix}audit_log"

    @property
    def published(self) -> str:
        return f"{self.prefix}audit_published"

    @classmethod
    def sqlite(cls) -> AuditTables:
        return cls("", "", None)

    @classmethod
    def postgres(cls, schema: str) -> AuditTables:
        # ``schema`` is checked by the stores against [a-z_][a-z0-9_]*: safe to quote as is.
        assert schema.replace("_", "").isalnum() and schema.islower(), schema
        return cls(f'"{schema}".', f'"{schema}_api".', _LOCK_NAMESPACE + schema)


def sqlite_execute(connection: Any) -> Execute:
    """An ``Execute`` on a ``sqlite3`` connection (in whatever transaction it has open)."""

    def execute(statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in connection.execute(statement, tuple(params)).fetchall()]

    return execute


def postgres_execute(cursor: Any) -> Execute:
    """An ``Execute`` on a psycopg cursor or connection (``?`` becomes ``%s``)."""

    def execute(statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        result = cursor.execute(statement.replace("?", "%s"), tuple(params))
        return [tuple(row) for row in result.fetchall()] if result.description else []

    return execute


def read_head(execute: Execute, tables: AuditTables) -> Checkpoint:
    rows = execute(f"SELECT seq, hash FROM {tables.log} ORDER BY seq DESC LIMIT 1")
    return Checkpoint(int(rows[0][0]), str(rows[0][1])) if rows else Checkpoint(0, GENESIS_HASH)


def append_entry(
    execute: Execute, tables: AuditTables, kind: AuditKind, actor: str, payload: Any
) -> AuditEntry:
    """Append one entry in the caller's open transaction; it commits with the change."""
    if tables.lock_key is not None:
        execute("SELECT 1 FROM pg_advisory_xact_lock(hashtextextended(?, 0))", (tables.lock_key,))
    entry = chain_entry(read_head(execute, tables), kind, actor, payload)
    execute(
        f"INSERT INTO {tables.log} ({_COLUMNS}) VALUES (?,?,?,?,?,?)",
        (entry.seq, entry.kind, entry.actor, entry.payload, entry.prev_hash, entry.hash),
    )
    return entry


def read_entries(
    execute: Execute, tables: AuditTables, *, after: int = 0, limit: int = 1000
) -> list[AuditEntry]:
    """Entries with seq above ``after``, in seq order, at most ``limit``."""
    rows = execute(
        f"SELECT {_COLUMNS} FROM {tables.log} WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
    )
    return [
        AuditEntry(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5])) for r in rows
    ]


def published_seq(execute: Execute, tables: AuditTables, stream: str) -> int:
    rows = execute(f"SELECT seq FROM {tables.published} WHERE stream = ?", (stream,))
    return int(rows[0][0]) if rows else 0


def set_published_seq(execute: Execute, tables: AuditTables, stream: str, seq: int) -> None:
    """Record that ``stream`` delivered every entry up to ``seq`` (never moves backwards)."""
    execute(
        f"INSERT INTO {tables.published} (stream, seq) VALUES (?, ?) ON CONFLICT (stream)"
        f" DO UPDATE SET seq = excluded.seq WHERE excluded.seq > {tables.published}.seq",
        (stream, seq),
    )


def iter_entries(execute: Execute, tables: AuditTables, *, after: int = 0) -> Iterator[AuditEntry]:
    """Every entry above ``after`` in seq order, page by page."""
    while True:
        page = read_entries(execute, tables, after=after, limit=PAGE_ROWS_MAX)
        yield from page
        if len(page) < PAGE_ROWS_MAX:
            return
        after = page[-1].seq


def has_table(execute: Execute, tables: AuditTables, name: str) -> bool:
    """Whether ``name`` (qualified by ``tables``' prefix for its kind) exists."""
    if tables.lock_key is None:
        return bool(execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)))
    prefix = tables.api_prefix if name.startswith("api_") else tables.prefix
    return bool(execute("SELECT to_regclass(?) IS NOT NULL", (f"{prefix}{name}",))[0][0])


def iter_payment_events(execute: Execute, tables: AuditTables) -> Iterator[tuple[Any, ...]]:
    """(payment_id, status, at, detail) of every payment event, by payment, in event order."""
    after: tuple[str, int] = ("", 0)
    while True:
        rows = execute(
            f"SELECT payment_id, seq, status, at, detail FROM {tables.prefix}payment_events"
            " WHERE payment_id > ? OR (payment_id = ? AND seq > ?)"
            " ORDER BY payment_id, seq LIMIT ?",
            (after[0], after[0], after[1], PAGE_ROWS_MAX),
        )
        for payment_id, _, status, at, detail in rows:
            yield payment_id, status, int(at), detail
        if len(rows) < PAGE_ROWS_MAX:
            return
        after = (rows[-1][0], int(rows[-1][1]))


def read_key_rows(execute: Execute, tables: AuditTables) -> list[tuple[Any, ...]]:
    """Each API key's ``KEY_FIELDS`` values and the digest of its secrets."""
    rows = execute(
        f"SELECT {', '.join(KEY_FIELDS)}, secret_hash, signing_secret"
        f" FROM {tables.api_prefix}api_keys ORDER BY key_id"
    )
    return [(*row[:-2], key_secret_digest(row[-2], row[-1])) for row in rows]


def read_cycle_rows(execute: Execute, tables: AuditTables) -> list[tuple[Any, ...]]:
    """Each recorded netting cycle, its ``currencies`` and ``report`` decoded from JSON."""
    rows = execute(
        "SELECT cycle_id, kind, currencies, requested_by, started_at, finished_at, report"
        f" FROM {tables.api_prefix}api_netting_cycles ORDER BY cycle_id"
    )
    return [(*row[:2], json.loads(row[2]), *row[3:6], json.loads(row[6])) for row in rows]
