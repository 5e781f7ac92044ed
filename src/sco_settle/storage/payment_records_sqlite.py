"""Payment records in SQLite: in the ledger's database file (or any file), or ``:memory:``.

``record`` and ``begin`` are each one ``BEGIN IMMEDIATE`` transaction, committed with
``synchronous=FULL`` for a file (``durable=False``: ``OFF``, for simulations), so an outcome is
returned to the submitter only after it is on disk. The tables are created when missing (see
``payment_records_sql`` for the layout), and a file of the earlier layout, whose API index was
the separate table ``api_payment_index``, is migrated when opened for writing.

Read-only (``readonly=True``: audits, the API's readers) never writes, not even the schema. It
opens a normal connection with ``query_only`` rather than ``mode=ro``: after a writer was killed
between writing a commit to the WAL and publishing it in the wal-index, a ``mode=ro`` connection
cannot run WAL recovery and reads an older snapshot (``storage.sqlite`` does the same).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sco_settle.audit.sql import SQLITE_DDL, AuditTables, Execute, sqlite_execute
from sco_settle.payments.model import Payment
from sco_settle.storage.payment_records_sql import INT64_MAX, SqlPaymentRecords

__all__ = ["SqlitePaymentRecords", "exact_sum", "exact_sum_sql"]

_TABLES = """
CREATE TABLE IF NOT EXISTS payments (
    payment_id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    reason_text TEXT NOT NULL,
    delivered INTEGER NOT NULL,
    route TEXT NOT NULL,
    transfer_ids TEXT NOT NULL,
    settled_at INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    queue_seq INTEGER,
    seq INTEGER NOT NULL,
    debtor_agent TEXT NOT NULL,
    creditor_agent TEXT NOT NULL,
    currency TEXT NOT NULL,
    creditor_currency TEXT NOT NULL,
    amount_minor INTEGER,
    sent INTEGER NOT NULL DEFAULT 0,
    returned INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS payment_intents (
    payment_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS payment_events (
    payment_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    at INTEGER NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (payment_id, seq)
) WITHOUT ROWID;
"""
_INDEXES = """
CREATE INDEX IF NOT EXISTS payments_by_status ON payments (status, queue_seq);
CREATE UNIQUE INDEX IF NOT EXISTS payments_by_seq ON payments (seq);
CREATE INDEX IF NOT EXISTS payments_by_debtor_agent ON payments (debtor_agent, seq);
CREATE INDEX IF NOT EXISTS payments_by_creditor_agent ON payments (creditor_agent, seq);
CREATE INDEX IF NOT EXISTS payments_by_currency ON payments (currency, seq);
CREATE INDEX IF NOT EXISTS payments_by_creditor_currency ON payments (creditor_currency, seq);
"""
# The columns the earlier layout lacked (it kept them in ``api_payment_index``).
_ADDED_COLUMNS = (
    ("seq", "INTEGER"),
    ("debtor_agent", "TEXT"),
    ("creditor_agent", "TEXT"),
    ("currency", "TEXT"),
    ("creditor_currency", "TEXT"),
    ("amount_minor", "INTEGER"),
)
_MIGRATION_ROWS_MAX = 10_000  # Rows per step of the migration: bounds memory on a large file.

# An exact SQL sum of a 64-bit integer column in two parts: its high 32 bits (arithmetic shift)
# and its low 32 bits. SQLite's ``sum`` of integers fails once a total passes 2^63 - 1 and
# ``total`` is a float, so neither is used on the column itself. Each part is below 2^32 in
# magnitude, so each total stays within int64 for up to 2^31 rows.
# ``value == (value >> 32) * 2^32 + (value & 0xFFFFFFFF)`` also for negative values.
_SUM_HIGH = "coalesce(sum(({column}) >> 32), 0)"
_SUM_LOW = "coalesce(sum(({column}) & 4294967295), 0)"


def exact_sum_sql(column: str) -> str:
    """Two SQL aggregates whose values ``exact_sum`` turns into the exact sum of ``column``."""
    return f"{_SUM_HIGH.format(column=column)}, {_SUM_LOW.format(column=column)}"


def exact_sum(high: int | None, low: int | None) -> int:
    """The sum from the two totals of ``exact_sum_sql`` (a Python int: no overflow)."""
    return (int(high or 0) << 32) + int(low or 0)


class SqlitePaymentRecords(SqlPaymentRecords):
    """``PaymentRecords`` and ``PaymentQueries`` in the SQLite file at ``path``."""

    corridor_sum_sql = f"{_SUM_HIGH}, {_SUM_LOW}"

    def __init__(
        self,
        path: str | os.PathLike[str] = ":memory:",
        *,
        durable: bool = True,
        readonly: bool = False,
        shares_wal_with_ledger: bool = False,
    ) -> None:
        """``shares_wal_with_ledger``: the file is the ledger store's own (one WAL). Intents are
        then committed without an fsync of their own: they precede the ledger commit in the WAL,
        and the ledger's commit (``synchronous=FULL``) fsyncs the WAL file, so every intent is
        durable before any chain it announces is (a chain that never commits needs no intent).
        Saves one fsync per engine batch. Never set it for a file the ledger does not use."""
        self.path = str(path)
        self.readonly = readonly
        self._synchronous = "FULL" if durable else "OFF"
        self.shares_wal_with_ledger = shares_wal_with_ledger and durable
        if readonly:
            if self.path == ":memory:" or not Path(self.path).exists():
                raise FileNotFoundError(f"no payment records at {self.path}")
            # Used by one thread at a time; a server's pool hands it between threads.
            self.connection = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False
            )
            self.connection.execute("PRAGMA query_only=ON")
            return
        self.connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            if self.path != ":memory:":
                self.connection.execute("PRAGMA journal_mode=WAL")
                self.connection.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
            with self._transaction():
                self._lay_out()
        except BaseException:
            self.connection.close()
            raise

    def begin(self, intents: Iterable[tuple[Payment, str]], at: int) -> None:
        if not self.shares_wal_with_ledger or self.path == ":memory:":
            super().begin(intents, at)
            return
        self.connection.execute("PRAGMA synchronous=NORMAL")
        try:
            super().begin(intents, at)
        finally:
            self.connection.execute(f"PRAGMA synchronous={self._synchronous}")

    def _lay_out(self) -> None:
        connection = self.connection
        for statement in (_TABLES + SQLITE_DDL).split(";"):
            if statement.strip():
                connection.execute(statement)
        columns = {row[1] for row in connection.execute("PRAGMA table_info(payments)")}
        if "seq" not in columns:
            _migrate_from_separate_index(connection)
        for added in ("sent", "returned"):  # Records from before returns were payments.
            if added not in columns:
                connection.execute(
                    f"ALTER TABLE payments ADD COLUMN {added} INTEGER NOT NULL DEFAULT 0"
                )
        for statement in _INDEXES.split(";"):
            if statement.strip():
                connection.execute(statement)

    # -- SqlPaymentRecords hooks --------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        connection = self.connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def _execute_many(self, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        self.connection.executemany(statement, rows)

    def _corridor_sum(self, values: Sequence[Any]) -> int:
        return exact_sum(values[0], values[1])

    def _audit(self) -> tuple[Execute, AuditTables]:
        return sqlite_execute(self.connection), AuditTables.sqlite()


def _migrate_from_separate_index(connection: sqlite3.Connection) -> None:
    """Bring a ``payments`` table of the earlier layout to this one, in the open transaction.

    The new columns are filled from each payment's instruction. ``seq`` keeps the value the
    payment had in ``api_payment_index``, so a client's list cursor stays valid; payments the
    index had not reached yet (the newest) follow in arrival (rowid) order. The index table is
    then dropped: what it held is now in ``payments``.
    """
    for name, kind in _ADDED_COLUMNS:
        connection.execute(f"ALTER TABLE payments ADD COLUMN {name} {kind}")
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    if "api_payment_index" in tables:
        connection.execute(
            "UPDATE payments SET seq = (SELECT i.seq FROM api_payment_index i"
            " WHERE i.payment_id = payments.payment_id)"
        )
    row = connection.execute("SELECT coalesce(max(seq), 0) FROM payments").fetchone()
    next_seq = int(row[0]) + 1
    after = -1
    while True:
        rows = connection.execute(
            "SELECT rowid, body, seq FROM payments WHERE rowid > ? ORDER BY rowid LIMIT ?",
            (after, _MIGRATION_ROWS_MAX),
        ).fetchall()
        if not rows:
            break
        updates = []
        for rowid, body, seq in rows:
            fields = json.loads(body)
            amount = fields.get("amount_minor")
            fits = isinstance(amount, int) and -INT64_MAX - 1 <= amount <= INT64_MAX
            if seq is None:
                seq, next_seq = next_seq, next_seq + 1
            updates.append(
                (
                    seq,
                    str(fields.get("debtor_agent", "")),
                    str(fields.get("creditor_agent", "")),
                    str(fields.get("currency", "")),
                    str(fields.get("creditor_currency", "")),
                    amount if fits else None,
                    rowid,
                )
            )
        connection.executemany(
            "UPDATE payments SET seq = ?, debtor_agent = ?, creditor_agent = ?, currency = ?,"
            " creditor_currency = ?, amount_minor = ? WHERE rowid = ?",
            updates,
        )
        after = rows[-1][0]
    connection.execute("DROP TABLE IF EXISTS api_payment_index")
