"""PostgreSQL store: the same Store port as ``SqliteStore``, in one schema of a PostgreSQL database.

Durability: every batch is one transaction, committed with ``synchronous_commit=on`` (set by the
store for its own session, whatever the server default), so a batch whose results were returned
is in the server's fsync'd WAL, and a batch that was not committed leaves no trace. A connection
lost during COMMIT leaves the outcome unknown to the ledger: it closes itself, and reopening reads
whichever state the server has; resubmitting the batch is safe because transfer ids are
idempotency keys.

Single writer: the ledger keeps balances in memory, so two writers on one schema would diverge.
Two mechanisms keep it to one:

- A writer holds a session-level advisory lock keyed on the schema name for its lifetime
  (``pg_try_advisory_lock``; the server releases it when the session ends, even if the process
  dies). A second writer is refused with ``StoreLockedError``.
- Fencing, for when the lock is lost while the session lives on (an operator's
  ``pg_advisory_unlock_all()``, a transaction-pooling proxy that does not keep sessions): at open
  a writer increments ``meta.writer_epoch`` and remembers the value; every commit reads the epoch
  ``FOR SHARE`` in the same transaction and aborts with ``StoreFencedError`` if it moved. The row
  lock orders each commit strictly before or after a newer writer's open, so a commit either lands
  before the newer writer loads its state, or not at all.

Readers (``readonly=True``: export, verify) take no lock and run with
``default_transaction_read_only`` on.

Ids are 16-byte big-endian ``bytea`` (as the SQLite BLOBs; byte order is numeric order), checked
to be 16 bytes long. Amounts, counters and timestamps are ``bigint``. Batches are written with
binary COPY; balances with one ``UPDATE ... FROM unnest(...)``. The layout is created and migrated
by the numbered SQL files in ``migrations/postgres/``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Collection, Iterable, Iterator, Sequence
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.string import BytesBinaryDumper

from sco_settle.audit.chain import LEDGER_ACTOR, AuditKind
from sco_settle.audit.ledger_rows import ledger_batch_payload
from sco_settle.audit.sql import AuditTables, append_entry, postgres_execute
from sco_settle.domain.account import Account, AccountBalance
from sco_settle.domain.transfer import PendingStatus, Transfer
from sco_settle.ledger.state_machine import Changes
from sco_settle.ledger.store import StoredAccount
from sco_settle.storage.sqlite import StoreFormatError, StoreLockedError

__all__ = ["PostgresStore", "StoreFencedError", "StoreFormatError", "StoreLockedError"]

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_LOCK_NAMESPACE = "sco_settle.store:"  # Prefix of the advisory lock key, hashed with the schema.
_PAGE_ROWS_MAX = 10_000  # Rows per page of the journal scans: bounds client memory.

_TRANSFER_COLUMNS = (
    "id, debit_account, credit_account, amount, flags, pending_id, timeout, code, ref, timestamp,"
    " currency"
)
_TRANSFER_TYPES = (
    "bytea",
    "bytea",
    "bytea",
    "int8",
    "int4",
    "bytea",
    "int4",
    "int4",
    "text",
    "int8",
    "text",
)
_ACCOUNT_COLUMNS = (
    "id, participant, currency, kind, flags, credit_limit, code, ref, timestamp,"
    " debits_pending, debits_posted, credits_pending, credits_posted"
)
_ACCOUNT_TYPES = (
    "bytea",
    "text",
    "text",
    "text",
    "int4",
    "int8",
    "int4",
    "text",
    "int8",
    "int8",
    "int8",
    "int8",
    "int8",
)
_HISTORY_COLUMNS = (
    "account_id, timestamp, debits_pending, debits_posted, credits_pending, credits_posted"
)
_HISTORY_TYPES = ("bytea", "int8", "int8", "int8", "int8", "int8")


class StoreFencedError(StoreLockedError):
    """A newer writer opened the schema after this one: this writer may no longer commit."""


def _to_bytes(number: int) -> bytes:
    return number.to_bytes(16, "big")


def _transfer_from_row(row: Sequence[Any]) -> Transfer:
    return Transfer(
        int.from_bytes(row[0], "big"),
        int.from_bytes(row[1], "big"),
        int.from_bytes(row[2], "big"),
        row[3],
        row[4],
        int.from_bytes(row[5], "big") if row[5] is not None else 0,
        row[6],
        row[7],
        row[8],
        row[9],
        row[10],
    )


def _transfer_to_row(t: Transfer) -> tuple[Any, ...]:
    return (
        t[0].to_bytes(16, "big"),
        t[1].to_bytes(16, "big"),
        t[2].to_bytes(16, "big"),
        t[3],
        t[4],
        t[5].to_bytes(16, "big") if t[5] else None,
        t[6],
        t[7],
        t[8],
        t[9],
        t[10],
    )


def migrations() -> list[tuple[int, str]]:
    """The (version, SQL text) of every migration, in order; the last version is current."""
    folder = resources.files("sco_settle.storage").joinpath("migrations", "postgres")
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    found.sort()
    assert [version for version, _ in found] == list(range(1, len(found) + 1)), found
    return found


SCHEMA_VERSION = len(migrations())


class PostgresStore:
    """A Store in the schema ``schema`` of the database at ``dsn`` (created if absent)."""

    def __init__(self, dsn: str, *, schema: str = "sco_settle", readonly: bool = False) -> None:
        if not _SCHEMA_NAME.fullmatch(schema):
            raise ValueError(f"schema name {schema!r} must match {_SCHEMA_NAME.pattern}")
        self.schema = schema
        self.readonly = readonly
        self.writer_epoch = 0
        role = "reader" if readonly else "writer"
        self.connection = psycopg.connect(
            dsn, autocommit=True, application_name=f"sco-settle {role} {schema}"
        )
        # COPY picks dumpers by type oid, and psycopg's DB-API ``Binary`` wrapper registers a
        # slower pure-Python dumper for bytea; register the plain (C) bytes dumper again.
        self.connection.adapters.register_dumper(bytes, BytesBinaryDumper)
        try:
            self._open_session()
        except BaseException:
            self.connection.close()
            raise

    # -- setup ------------------------------------------------------------------------------

    def _open_session(self) -> None:
        connection = self.connection
        # Once psycopg prepares ``id = ANY($1)`` the server may keep a generic plan that scans
        # the whole table against the whole array (seconds per batch on a grown table): plan
        # every execution for its own array instead.
        connection.execute("SET plan_cache_mode = force_custom_plan")
        if self.readonly:
            connection.execute("SET default_transaction_read_only = on")
            self._check_schema()
        else:
            connection.execute("SET synchronous_commit = on")
            self._take_writer_lock()
            # Created only when missing: CREATE SCHEMA needs the CREATE privilege on the database
            # even with IF NOT EXISTS, which a writer of an existing schema need not have.
            exists = connection.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)
            ).fetchone()
            if exists is None:
                connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema)))
            with connection.transaction():
                self._migrate()
                self.writer_epoch = self._bump_writer_epoch()
        connection.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))

    def _take_writer_lock(self) -> None:
        row = self.connection.execute(
            "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (_LOCK_NAMESPACE + self.schema,)
        ).fetchone()
        assert row is not None
        if not row[0]:
            raise StoreLockedError(f"schema {self.schema} is open for writing by another session")

    def _tables(self) -> set[str]:
        rows = self.connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (self.schema,)
        )
        return {name for (name,) in rows}

    def _stored_version(self) -> int | None:
        """The schema version recorded in ``meta``, or None if the schema holds no tables."""
        tables = self._tables()
        if not tables:
            return None
        if "meta" not in tables:
            raise StoreFormatError(f"schema {self.schema} holds tables but not an SCO Settle store")
        row = self.connection.execute(
            sql.SQL("SELECT value FROM {}.meta WHERE key = 'schema_version'").format(
                sql.Identifier(self.schema)
            )
        ).fetchone()
        if row is None or not 1 <= row[0] <= SCHEMA_VERSION:
            raise StoreFormatError(f"schema {self.schema}: unsupported schema version {row}")
        return int(row[0])

    def _check_schema(self) -> None:
        version = self._stored_version()
        if version is None:
            raise StoreFormatError(f"schema {self.schema} holds no SCO Settle store")
        if version != SCHEMA_VERSION:
            raise StoreFormatError(
                f"schema {self.schema} is at version {version}, this code reads {SCHEMA_VERSION};"
                " open it for writing once to migrate it"
            )

    def _migrate(self) -> None:
        """Apply the migrations the schema lacks; runs in the open transaction, under the lock."""
        connection = self.connection
        version = self._stored_version()
        connection.execute(
            sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(self.schema))
        )
        for number, text in migrations():
            if version is None or number > version:
                connection.execute(text)
        if version is None:
            connection.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', %s),"
                " ('last_timestamp', 0), ('writer_epoch', 0)",
                (SCHEMA_VERSION,),
            )
        else:
            connection.execute(
                "UPDATE meta SET value = %s WHERE key = 'schema_version'", (SCHEMA_VERSION,)
            )

    def _bump_writer_epoch(self) -> int:
        row = self.connection.execute(
            "UPDATE meta SET value = value + 1 WHERE key = 'writer_epoch' RETURNING value"
        ).fetchone()
        assert row is not None and row[0] > 0, row
        return int(row[0])

    # -- Store port: loading ----------------------------------------------------------------

    def load_accounts(self) -> Iterator[StoredAccount]:
        query = f"SELECT {_ACCOUNT_COLUMNS} FROM accounts ORDER BY timestamp"
        with self.connection.cursor(binary=True) as cursor:
            rows = cursor.execute(query).fetchall()
        for row in rows:
            account = Account(int.from_bytes(row[0], "big"), *row[1:9])
            yield StoredAccount(account, *row[9:13])

    iter_accounts = load_accounts

    def load_open_pending(self) -> Iterator[Transfer]:
        query = (
            f"SELECT {_TRANSFER_COLUMNS} FROM transfers t WHERE flags & 2 <> 0 AND timestamp > %s"
            " AND NOT EXISTS (SELECT 1 FROM pending_resolutions r WHERE r.pending_id = t.id)"
            " ORDER BY timestamp LIMIT %s"
        )
        for row in self._pages(query, key_column=9):
            yield _transfer_from_row(row)

    def last_timestamp(self) -> int:
        row = self.connection.execute(
            "SELECT value FROM meta WHERE key = 'last_timestamp'"
        ).fetchone()
        assert row is not None
        return int(row[0])

    # -- Store port: prefetch ---------------------------------------------------------------

    def get_transfers(self, ids: Collection[int]) -> dict[int, Transfer]:
        if not ids:
            return {}
        query = f"SELECT {_TRANSFER_COLUMNS} FROM transfers WHERE id = ANY(%b::bytea[])"
        found: dict[int, Transfer] = {}
        with self.connection.cursor(binary=True) as cursor:
            for row in cursor.execute(query, ([_to_bytes(i) for i in ids],)):
                transfer = _transfer_from_row(row)
                found[transfer.id] = transfer
        return found

    def get_pending_statuses(self, ids: Collection[int]) -> dict[int, PendingStatus]:
        if not ids:
            return {}
        query = (
            "SELECT pending_id, status FROM pending_resolutions WHERE pending_id = ANY(%b::bytea[])"
        )
        found: dict[int, PendingStatus] = {}
        with self.connection.cursor(binary=True) as cursor:
            for raw, status in cursor.execute(query, ([_to_bytes(i) for i in ids],)):
                found[int.from_bytes(raw, "big")] = PendingStatus(status)
        return found

    # -- Store port: commit -----------------------------------------------------------------

    def commit(self, changes: Changes) -> None:
        if self.readonly:
            raise PermissionError(f"schema {self.schema} is open read-only")
        if not (
            changes.accounts_created or changes.transfers_created or changes.pending_resolutions
        ):
            return  # Nothing durable changed: every event of the batch failed.
        with self.connection.transaction(), self.connection.cursor() as cursor:
            self._check_writer_epoch(cursor)
            if changes.accounts_created:
                accounts = (
                    (_to_bytes(a.id), *a[1:9], 0, 0, 0, 0) for a in changes.accounts_created
                )
                copy_rows(cursor, "accounts", _ACCOUNT_COLUMNS, _ACCOUNT_TYPES, accounts)
            if changes.transfers_created:
                transfers = map(_transfer_to_row, changes.transfers_created)
                copy_rows(cursor, "transfers", _TRANSFER_COLUMNS, _TRANSFER_TYPES, transfers)
            if changes.balances:
                self._update_balances(cursor, changes.balances)
            if changes.pending_resolutions:
                resolutions = (
                    (_to_bytes(i), int(s), ts) for i, s, ts in changes.pending_resolutions
                )
                columns = "pending_id, status, timestamp"
                copy_rows(
                    cursor, "pending_resolutions", columns, ("bytea", "int2", "int8"), resolutions
                )
            if changes.history:
                history = ((_to_bytes(h[0]), *h[1:]) for h in changes.history)
                copy_rows(cursor, "account_history", _HISTORY_COLUMNS, _HISTORY_TYPES, history)
            cursor.execute(
                "UPDATE meta SET value = %s WHERE key = 'last_timestamp'",
                (changes.last_timestamp,),
            )
            assert cursor.rowcount == 1
            payload = ledger_batch_payload(changes).as_dict()
            tables = AuditTables.postgres(self.schema)
            append_entry(
                postgres_execute(cursor), tables, AuditKind.LEDGER_BATCH, LEDGER_ACTOR, payload
            )

    def _check_writer_epoch(self, cursor: psycopg.Cursor[Any]) -> None:
        # FOR SHARE waits for a newer writer's epoch increment to commit and then sees it.
        row = cursor.execute(
            "SELECT value FROM meta WHERE key = 'writer_epoch' FOR SHARE"
        ).fetchone()
        assert row is not None
        if row[0] != self.writer_epoch:
            raise StoreFencedError(
                f"schema {self.schema}: writer epoch is {row[0]}, this writer opened at"
                f" {self.writer_epoch}; a newer writer took over, reopen the ledger"
            )

    def _update_balances(
        self, cursor: psycopg.Cursor[Any], balances: Sequence[tuple[int, int, int, int, int]]
    ) -> None:
        columns = list(zip(*balances, strict=True))
        cursor.execute(
            "UPDATE accounts AS a SET debits_pending = u.dp, debits_posted = u.dpo,"
            " credits_pending = u.cp, credits_posted = u.cpo"
            " FROM unnest(%b::bytea[], %b::int8[], %b::int8[], %b::int8[], %b::int8[])"
            " AS u(id, dp, dpo, cp, cpo) WHERE a.id = u.id",
            ([_to_bytes(i) for i in columns[0]], *(list(c) for c in columns[1:])),
        )
        # Each touched account appears once in ``balances`` and exists: one row each.
        assert cursor.rowcount == len(balances), (cursor.rowcount, len(balances))

    # -- Store port: reads ------------------------------------------------------------------

    def get_account_transfers(
        self,
        account_id: int,
        *,
        timestamp_min: int = 0,
        timestamp_max: int = 2**63 - 1,
        limit: int = 100,
        reverse: bool = False,
    ) -> list[Transfer]:
        # Each side reads its own (account, timestamp) index in order and stops at ``limit``; a
        # transfer never debits and credits the same account, so the union has no duplicates.
        order = "DESC" if reverse else "ASC"
        side = (
            f"(SELECT {_TRANSFER_COLUMNS} FROM transfers WHERE {{}} = %(id)s"
            f" AND timestamp BETWEEN %(min)s AND %(max)s ORDER BY timestamp {order}"
            " LIMIT %(limit)s)"
        )
        query = (
            f"{side.format('debit_account')} UNION ALL {side.format('credit_account')}"
            f" ORDER BY timestamp {order} LIMIT %(limit)s"
        )
        params = {
            "id": _to_bytes(account_id),
            "min": timestamp_min,
            "max": timestamp_max,
            "limit": limit,
        }
        with self.connection.cursor(binary=True) as cursor:
            return [_transfer_from_row(row) for row in cursor.execute(query, params)]

    def get_account_history(
        self,
        account_id: int,
        *,
        timestamp_min: int = 0,
        timestamp_max: int = 2**63 - 1,
        limit: int = 100,
        reverse: bool = False,
    ) -> list[AccountBalance]:
        order = "DESC" if reverse else "ASC"
        query = (
            "SELECT timestamp, debits_pending, debits_posted, credits_pending, credits_posted"
            " FROM account_history WHERE account_id = %s AND timestamp BETWEEN %s AND %s"
            f" ORDER BY timestamp {order} LIMIT %s"
        )
        params = (_to_bytes(account_id), timestamp_min, timestamp_max, limit)
        with self.connection.cursor(binary=True) as cursor:
            return [AccountBalance(account_id, *row) for row in cursor.execute(query, params)]

    def iter_transfers(self) -> Iterator[Transfer]:
        query = (
            f"SELECT {_TRANSFER_COLUMNS} FROM transfers WHERE timestamp > %s"
            " ORDER BY timestamp LIMIT %s"
        )
        for row in self._pages(query, key_column=9):
            yield _transfer_from_row(row)

    def iter_pending_resolutions(self) -> Iterator[tuple[int, PendingStatus, int]]:
        query = (
            "SELECT pending_id, status, timestamp FROM pending_resolutions WHERE timestamp > %s"
            " ORDER BY timestamp LIMIT %s"
        )
        for raw, status, timestamp in self._pages(query, key_column=2):
            yield int.from_bytes(raw, "big"), PendingStatus(status), timestamp

    def transfers_between(self, timestamp_min: int, timestamp_max: int) -> list[Transfer]:
        """The transfers of a timestamp range (an audited batch's), in timestamp order."""
        query = (
            f"SELECT {_TRANSFER_COLUMNS} FROM transfers WHERE timestamp BETWEEN %s AND %s"
            " ORDER BY timestamp"
        )
        with self.connection.cursor(binary=True) as cursor:
            rows = cursor.execute(query, (timestamp_min, timestamp_max)).fetchall()
        return [_transfer_from_row(row) for row in rows]

    def resolutions_between(
        self, timestamp_min: int, timestamp_max: int
    ) -> list[tuple[int, PendingStatus, int]]:
        """The pending resolutions of a timestamp range, in timestamp order."""
        query = (
            "SELECT pending_id, status, timestamp FROM pending_resolutions"
            " WHERE timestamp BETWEEN %s AND %s ORDER BY timestamp"
        )
        with self.connection.cursor(binary=True) as cursor:
            rows = cursor.execute(query, (timestamp_min, timestamp_max)).fetchall()
        return [(int.from_bytes(raw, "big"), PendingStatus(s), ts) for raw, s, ts in rows]

    def count_transfers(self) -> int:
        row = self.connection.execute("SELECT count(*) FROM transfers").fetchone()
        assert row is not None
        return int(row[0])

    def close(self) -> None:
        # Release the advisory lock explicitly before disconnecting: the server frees a session's
        # locks only when its backend process exits, after the client has already moved on, so a
        # writer reopening at once could find its own old lock still held.
        if not self.readonly and not self.connection.closed:
            with contextlib.suppress(psycopg.Error):
                self.connection.rollback()
                self.connection.execute("SELECT pg_advisory_unlock_all()")
                self.connection.commit()
        self.connection.close()

    # -- internals --------------------------------------------------------------------------

    def _pages(self, query: str, *, key_column: int) -> Iterator[Sequence[Any]]:
        """Rows of ``query`` (which takes ``key > %s ... ORDER BY key LIMIT %s``) page by page.

        Keyset pages, not a server-side cursor: each page is one short statement, so several
        scans can interleave on the one connection (``verify`` merges two) and none holds a
        transaction open between pages.
        """
        after = -1
        while True:
            with self.connection.cursor(binary=True) as cursor:
                rows = cursor.execute(query, (after, _PAGE_ROWS_MAX)).fetchall()
            yield from rows
            if len(rows) < _PAGE_ROWS_MAX:
                return
            assert rows[-1][key_column] > after
            after = rows[-1][key_column]


def copy_rows(
    cursor: psycopg.Cursor[Any],
    table: str,
    columns: str,
    types: Sequence[str],
    rows: Iterable[Sequence[Any]],
) -> None:
    """Binary COPY of ``rows`` into ``table``: the fastest way in (docs/reference/storage.md)."""
    statement = f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)"
    with cursor.copy(statement) as copy:
        copy.set_types(list(types))
        for row in rows:
            copy.write_row(row)
