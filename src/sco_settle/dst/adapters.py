"""The stores of a simulated node, over its write-ahead log on the simulated disk.

Each adapter keeps the reference in-memory adapter as its index (what a database keeps in its
pages and caches) and logs every change before it applies it: the log is the truth, and a node
that restarts rebuilds each index by replaying the log's whole records.

- ``DiskStore``: the ledger's ``Store`` port. ``commit`` is durable when it returns (one record,
  fsynced), as ``SqliteStore``'s ``synchronous=FULL`` commit.
- ``DiskPaymentRecords``: the ``PaymentRecords`` port. ``record`` and ``drop_intents`` are
  durable when they return; ``begin`` is not fsynced, because it shares the log with the
  ledger and the ledger's next commit fsyncs it (``SqlitePaymentRecords(shares_wal_with_ledger)``).
- ``DiskStateDb``: the part of the server's ``StateDb`` that ``server.idempotency`` uses
  (``execute`` and ``transaction``), with SQLite in memory as its SQL engine and the log as its
  disk. A transaction is logged without an fsync unless it asks to be durable, as the server
  commits idempotency records (``synchronous=NORMAL``): a power cut may lose the last ones.

A change is applied to the index only after its record is written, so when a write fails, the
process never saw the change; whether it survives the next crash is up to the disk.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sco_settle.domain.account import AccountBalance
from sco_settle.domain.transfer import PendingStatus, Transfer
from sco_settle.dst.wal import TAG_API, TAG_LEDGER, TAG_RECORDS, Wal
from sco_settle.ledger.state_machine import Changes
from sco_settle.ledger.store import StoredAccount
from sco_settle.payments.model import Payment, PaymentOutcome
from sco_settle.payments.records import PaymentEvent, RecordEntry
from sco_settle.storage.memory import MemoryStore
from sco_settle.storage.payment_records_memory import MemoryPaymentRecords

# The server's idempotency table, as ``server/db.py`` lays it out (the columns
# ``server.idempotency`` reads and writes).
API_TABLES = """
CREATE TABLE api_idempotency (
    scope TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    media_type TEXT NOT NULL,
    body BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (scope, idempotency_key)
);
CREATE INDEX api_idempotency_by_age ON api_idempotency (created_at);
"""


class DiskStore:
    """The ledger's ``Store`` on the simulated log. Reads come from the index."""

    sync = True  # A test's broken store acknowledges before its commit is durable.

    def __init__(self, wal: Wal, records: Iterable[tuple[int, Any]]) -> None:
        self.wal = wal
        self.index = MemoryStore()
        self.batches: list[list[Transfer]] = []  # the transfers of each commit, for the auditor
        for tag, changes in records:
            if tag == TAG_LEDGER:
                self._apply(changes)

    def commit(self, changes: Changes) -> None:
        if not (
            changes.accounts_created or changes.transfers_created or changes.pending_resolutions
        ):
            return  # As the durable stores: a batch whose every event failed stores nothing.
        self.wal.append(TAG_LEDGER, changes, sync=self.sync)
        self._apply(changes)

    def _apply(self, changes: Changes) -> None:
        self.index.commit(changes)
        if changes.transfers_created:
            self.batches.append(list(changes.transfers_created))

    def load_accounts(self) -> Iterator[StoredAccount]:
        return self.index.load_accounts()

    def load_open_pending(self) -> Iterator[Transfer]:
        return self.index.load_open_pending()

    def last_timestamp(self) -> int:
        return self.index.last_timestamp()

    def get_transfers(self, ids: Collection[int]) -> dict[int, Transfer]:
        return self.index.get_transfers(ids)

    def get_pending_statuses(self, ids: Collection[int]) -> dict[int, PendingStatus]:
        return self.index.get_pending_statuses(ids)

    def get_account_transfers(
        self,
        account_id: int,
        *,
        timestamp_min: int = 0,
        timestamp_max: int = 2**63 - 1,
        limit: int = 100,
        reverse: bool = False,
    ) -> list[Transfer]:
        return self.index.get_account_transfers(
            account_id,
            timestamp_min=timestamp_min,
            timestamp_max=timestamp_max,
            limit=limit,
            reverse=reverse,
        )

    def get_account_history(
        self,
        account_id: int,
        *,
        timestamp_min: int = 0,
        timestamp_max: int = 2**63 - 1,
        limit: int = 100,
        reverse: bool = False,
    ) -> list[AccountBalance]:
        return self.index.get_account_history(
            account_id,
            timestamp_min=timestamp_min,
            timestamp_max=timestamp_max,
            limit=limit,
            reverse=reverse,
        )

    def iter_transfers(self) -> Iterator[Transfer]:
        return self.index.iter_transfers()

    def iter_pending_resolutions(self) -> Iterator[tuple[int, PendingStatus, int]]:
        return self.index.iter_pending_resolutions()

    def close(self) -> None:
        pass


class DiskPaymentRecords:
    """``PaymentRecords`` on the simulated log. Reads come from the index."""

    sync = True  # A test's broken records acknowledge before their writes are durable.

    def __init__(self, wal: Wal, records: Iterable[tuple[int, Any]]) -> None:
        self.wal = wal
        self.index = MemoryPaymentRecords()
        for tag, change in records:
            if tag == TAG_RECORDS:
                self._apply(change)

    def record(self, entries: Iterable[RecordEntry], at: int) -> None:
        change = ("record", list(entries), at)
        if change[1]:
            self.wal.append(TAG_RECORDS, change, sync=self.sync)
            self._apply(change)

    def begin(self, intents: Iterable[tuple[Payment, str]], at: int) -> None:
        change = ("begin", list(intents), at)
        if change[1]:
            self.wal.append(TAG_RECORDS, change, sync=False)  # The ledger's commit fsyncs it.
            self._apply(change)

    def drop_intents(self, payment_ids: Iterable[str]) -> None:
        change = ("drop", list(payment_ids), 0)
        if change[1]:
            self.wal.append(TAG_RECORDS, change, sync=self.sync)
            self._apply(change)

    def _apply(self, change: tuple[str, Any, int]) -> None:
        kind, items, at = change
        if kind == "record":
            self.index.record(items, at)
        elif kind == "begin":
            self.index.begin(items, at)
        else:
            assert kind == "drop", kind
            self.index.drop_intents(items)

    def get(self, payment_id: str) -> tuple[Payment, PaymentOutcome, int | None] | None:
        return self.index.get(payment_id)

    def get_many(
        self, payment_ids: Sequence[str]
    ) -> dict[str, tuple[Payment, PaymentOutcome, int | None]]:
        return self.index.get_many(payment_ids)

    def intents(self) -> list[tuple[Payment, str]]:
        return self.index.intents()

    def queued(self) -> Iterator[tuple[Payment, int]]:
        return self.index.queued()

    def events(self, payment_id: str, *, limit: int | None = None) -> list[PaymentEvent]:
        return self.index.events(payment_id, limit=limit)

    def records(self) -> Iterator[tuple[Payment, PaymentOutcome]]:
        return self.index.records()

    def counts(self) -> dict[str, int]:
        return self.index.counts()

    def close(self) -> None:
        pass


Execute = Callable[..., list[tuple[Any, ...]]]


class DiskStateDb:
    """What ``server.idempotency.IdempotencyStore`` needs of ``server.db.StateDb``: reads with
    ``execute`` and atomic writes with ``transaction``. SQLite in memory runs the statements;
    each transaction's writes are logged as one record and replayed at open."""

    def __init__(self, wal: Wal, records: Iterable[tuple[int, Any]]) -> None:
        self.wal = wal
        self.sql = sqlite3.connect(":memory:", isolation_level=None)
        self.sql.executescript(API_TABLES)
        self.last_end = 0  # where the last transaction's record ends in the log
        for tag, statements in records:
            if tag == TAG_API:
                self.sql.execute("BEGIN")
                for statement, params in statements:
                    self.sql.execute(statement, params)
                self.sql.execute("COMMIT")

    def execute(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return _rows(self.sql.execute(statement, tuple(params)))

    @contextmanager
    def transaction(self, *, durable: bool = False) -> Iterator[Execute]:
        written: list[tuple[str, tuple[Any, ...]]] = []

        def execute(statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
            rows = _rows(self.sql.execute(statement, tuple(params)))
            if not statement.lstrip().upper().startswith("SELECT"):
                written.append((statement, tuple(params)))
            return rows

        self.sql.execute("BEGIN")
        try:
            yield execute
            if written:
                self.last_end = self.wal.append(TAG_API, written, sync=durable)
        except BaseException:
            self.sql.execute("ROLLBACK")
            raise
        self.sql.execute("COMMIT")

    def close(self) -> None:
        self.sql.close()


def _rows(cursor: sqlite3.Cursor) -> list[tuple[Any, ...]]:
    if cursor.description is None:
        return []
    return [tuple(row) for row in cursor.fetchall()]
