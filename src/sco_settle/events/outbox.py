"""The audit chain read as a transactional outbox: committed entries in, messages out.

An entry is in the chain only if the transaction of its change committed, and every committed
change has its entry: so publishing what the chain holds publishes an event if and only if its
change committed. The reader keeps its progress in ``audit_published`` (the last seq whose
messages JetStream acknowledged), written only after the acknowledgements, so a crash between
the two publishes some messages again; their stable ids make JetStream drop the copies.

Reads go through a read-only session of the ledger store (SQLite file or PostgreSQL schema);
the progress and the configuration entries through a small connection of their own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sco_settle.audit.chain import AuditEntry, AuditKind, Checkpoint
from sco_settle.audit.ledger_rows import LedgerBatchPayload
from sco_settle.audit.records import PaymentRecordsPayload
from sco_settle.audit.sql import (
    AuditTables,
    Execute,
    append_entry,
    postgres_execute,
    published_seq,
    read_entries,
    read_head,
    set_published_seq,
    sqlite_execute,
)
from sco_settle.domain.transfer import PendingStatus
from sco_settle.events.messages import (
    AccountOwner,
    EventMessage,
    payment_messages,
    transfer_messages,
)

__all__ = ["DEFAULT_READER", "Outbox", "OutboxBatch"]

_T = TypeVar("_T")
DEFAULT_READER = "nats"  # The name of the publisher's progress row in ``audit_published``.


@dataclass(frozen=True, slots=True)
class OutboxBatch:
    """One entry's messages (none for entries that publish nothing, such as key changes)."""

    seq: int
    messages: list[EventMessage]


class Outbox:
    """The outbox of the ledger at ``db`` (a SQLite path or a ``postgresql://`` DSN).

    Its connections live on one thread of its own (a SQLite connection belongs to the thread
    that opened it): every public method runs there, whichever thread calls it.
    """

    def __init__(self, db: str, *, schema: str = "sco_settle", reader: str = DEFAULT_READER):
        self.reader = reader
        self._owners: dict[int, AccountOwner] = {}
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sco-outbox")
        try:
            self._thread.submit(self._open, db, schema).result()
        except BaseException:
            self._thread.shutdown()
            raise

    def _on_thread(self, function: Callable[..., _T], *args: Any) -> _T:
        return self._thread.submit(function, *args).result()

    def _open(self, db: str, schema: str) -> None:
        if db.startswith(("postgresql://", "postgres://")):
            import psycopg

            from sco_settle.storage.postgres import PostgresStore

            self.store: Any = PostgresStore(db, schema=schema, readonly=True)
            self._writer: Any = psycopg.connect(db, autocommit=True)
            self.tables = AuditTables.postgres(schema)
            self._read = postgres_execute(self.store.connection)
            self._postgres = True
        else:
            from sco_settle.storage.sqlite import SqliteStore

            path = db.removeprefix("sqlite:///")
            self.store = SqliteStore(path, readonly=True)
            self._writer = sqlite3.connect(path, isolation_level=None, timeout=30)
            self.tables = AuditTables.sqlite()
            self._read = sqlite_execute(self.store.connection)
            self._postgres = False

    def close(self) -> None:
        self._on_thread(self.store.close)
        self._on_thread(self._writer.close)
        self._thread.shutdown()

    # -- progress -----------------------------------------------------------------------------

    def published(self) -> int:
        return self._on_thread(published_seq, self._read, self.tables, self.reader)

    def head(self) -> Checkpoint:
        return self._on_thread(read_head, self._read, self.tables)

    def mark_published(self, seq: int) -> None:
        def mark() -> None:
            with self._write() as execute:
                set_published_seq(execute, self.tables, self.reader, seq)

        self._on_thread(mark)

    def append(self, kind: AuditKind, actor: str, payload: Any) -> AuditEntry:
        """Append an entry of its own (a server's configuration at start) in one transaction."""

        def append() -> AuditEntry:
            with self._write() as execute:
                return append_entry(execute, self.tables, kind, actor, payload)

        return self._on_thread(append)

    @contextmanager
    def _write(self) -> Iterator[Execute]:
        if self._postgres:
            with self._writer.transaction():
                yield postgres_execute(self._writer)
            return
        self._writer.execute("BEGIN IMMEDIATE")
        try:
            yield sqlite_execute(self._writer)
            self._writer.execute("COMMIT")
        except BaseException:
            if self._writer.in_transaction:
                self._writer.execute("ROLLBACK")
            raise

    # -- messages -----------------------------------------------------------------------------

    def read(self, after: int, limit: int = 100) -> list[OutboxBatch]:
        """The messages of the entries above ``after`` (at most ``limit`` entries)."""

        def read() -> list[OutboxBatch]:
            entries = read_entries(self._read, self.tables, after=after, limit=limit)
            return [OutboxBatch(entry.seq, self._messages(entry)) for entry in entries]

        return self._on_thread(read)

    def _messages(self, entry: AuditEntry) -> list[EventMessage]:
        if entry.kind == AuditKind.LEDGER_BATCH:
            batch = LedgerBatchPayload.from_dict(entry.data())
            low, high = batch.timestamp_min, batch.timestamp_max
            transfers = self.store.transfers_between(low, high)
            resolutions = self.store.resolutions_between(low, high)
            wanted = {t.pending_id for t in transfers if t.pending_id}
            wanted |= {r[0] for r in resolutions if r[1] is PendingStatus.EXPIRED}
            pendings = self.store.get_transfers(wanted) if wanted else {}
            accounts = {a for t in transfers for a in (t.debit_account, t.credit_account)}
            accounts |= {a for p in pendings.values() for a in (p.debit_account, p.credit_account)}
            return transfer_messages(
                entry.seq, transfers, resolutions, pendings, self._owners_of(accounts)
            )
        if entry.kind == AuditKind.PAYMENT_RECORDS:
            return payment_messages(entry.seq, PaymentRecordsPayload.from_dict(entry.data()))
        return []

    def _owners_of(self, accounts: set[int]) -> dict[int, AccountOwner]:
        if not accounts <= self._owners.keys():  # New accounts since the last look: reload.
            self._owners = {
                stored.account.id: AccountOwner(stored.account.participant, stored.account.currency)
                for stored in self.store.iter_accounts()
            }
        return self._owners


def configuration_payload(settings: dict[str, Any]) -> dict[str, Any]:
    """A configuration entry's payload: the settings, as JSON values (``str`` for the rest)."""
    return {name: _plain(value) for name, value in sorted(settings.items())}


def _plain(value: Any) -> Any:
    return value if isinstance(value, bool | int | float | None) else str(value)
