"""Payment records in PostgreSQL: the tables ``payments``, ``payment_events`` and
``payment_intents`` in the ledger's schema, so a PostgreSQL deployment keeps all its state there.

The tables are laid out by the ledger store's migrations (``migrations/postgres/0002_*``), so the
schema is opened for writing by ``PostgresStore`` first (the server and the tests do); this
adapter only checks that they are there. It uses a connection of its own, separate from the
ledger's: a payment's records and its ledger chain are committed in separate transactions, and
the write-ahead intents (``payments.records``) make a crash between the two repairable.

Durability: each ``record``, ``begin`` and ``drop_intents`` is one transaction committed with
``synchronous_commit=on`` (set for this session, whatever the server default), so an outcome is
returned only once it is in the server's fsync'd WAL.

Writes are bulk: new payments, events and intents by binary COPY, outcomes of recorded payments
by one ``UPDATE`` over arrays, whatever the batch's size (row-by-row statements cost a round trip
and a plan each).

Single writer: the engine writes the records only while it holds the ledger's writer lock on the
same schema. A second writer could not corrupt them either: each payment's ``seq`` and each
event's number are read from what is stored, in the writing transaction, and kept unique by
indexes, so it would fail instead.

Readers (``readonly=True``: the API's read side, audits) run with
``default_transaction_read_only`` on.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg import sql

from sco_settle.audit.sql import AuditTables, Execute, postgres_execute
from sco_settle.storage.payment_records_sql import SqlPaymentRecords
from sco_settle.storage.postgres import copy_rows
from sco_settle.storage.sqlite import StoreFormatError

__all__ = ["PostgresPaymentRecords"]

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_TABLES = ("payment_events", "payment_intents", "payments")


class PostgresPaymentRecords(SqlPaymentRecords):
    """``PaymentRecords`` and ``PaymentQueries`` in the schema ``schema`` of ``dsn``."""

    # bigint sums are numeric in PostgreSQL: exact at any size.
    corridor_sum_sql = "coalesce(sum({column}), 0)"

    def __init__(self, dsn: str, *, schema: str = "sco_settle", readonly: bool = False) -> None:
        if not _SCHEMA_NAME.fullmatch(schema):
            raise ValueError(f"schema name {schema!r} must match {_SCHEMA_NAME.pattern}")
        self.schema = schema
        self.readonly = readonly
        role = "reader" if readonly else "writer"
        self.connection = psycopg.connect(
            dsn, autocommit=True, application_name=f"sco-settle payments {role} {schema}"
        )
        try:
            if readonly:
                self.connection.execute("SET default_transaction_read_only = on")
            else:
                self.connection.execute("SET synchronous_commit = on")
            self._check_tables()
            self.connection.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        except BaseException:
            self.connection.close()
            raise

    def _check_tables(self) -> None:
        rows = self.connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename = ANY(%s)",
            (self.schema, list(_TABLES)),
        ).fetchall()
        if tuple(sorted(name for (name,) in rows)) != _TABLES:
            raise StoreFormatError(
                f"schema {self.schema} holds no payment records; open it for writing as a"
                " ledger store first (PostgresStore lays them out)"
            )

    # -- SqlPaymentRecords hooks --------------------------------------------------------------

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        with self.connection.transaction():
            yield

    def _corridor_sum(self, values: Sequence[Any]) -> int:
        return int(values[0])

    def _audit(self) -> tuple[Execute, AuditTables]:
        return postgres_execute(self.connection), AuditTables.postgres(self.schema)

    # -- bulk writes: a few statements per batch, whatever its size --------------------------

    def _store(
        self, payments: Sequence[tuple[Any, ...]], events: Sequence[tuple[str, str, int, str]]
    ) -> None:
        """New payments and all events by binary COPY (several times faster than row inserts),
        recorded payments' outcomes by one ``UPDATE``. The numbers come from what is stored:
        the last ``seq``, and each payment's last event number (also of a payment whose row is
        gone, so a number is never taken twice)."""
        merged = _merge_repeats(payments)
        ids = [row[0] for row in merged]
        connection = self.connection
        # ``prepare=False`` for each ``= ANY(array)``: a prepared statement may get a generic plan
        # that scans the whole table against the array (see ``service._open_store``); unprepared,
        # each is planned for its own array.
        existing = {
            payment_id
            for (payment_id,) in connection.execute(
                "SELECT payment_id FROM payments WHERE payment_id = ANY(%s)", (ids,), prepare=False
            )
        }
        event_seq: dict[str, int] = dict(
            connection.execute(
                "SELECT payment_id, max(seq) FROM payment_events WHERE payment_id = ANY(%s)"
                " GROUP BY payment_id",
                (ids,),
                prepare=False,
            ).fetchall()
        )
        with connection.cursor() as cursor:
            new = [row for row in merged if row[0] not in existing]
            if new:
                row = cursor.execute("SELECT coalesce(max(seq), 0) FROM payments").fetchone()
                assert row is not None
                rows = ((*payment, row[0] + n) for n, payment in enumerate(new, 1))
                copy_rows(
                    cursor, "payments", f"{_PAYMENT_COLUMNS}, seq", (*_PAYMENT_TYPES, "int8"), rows
                )
            updated = [
                (row[0], *row[1:9], row[10], *row[16:18]) for row in merged if row[0] in existing
            ]
            if updated:
                cursor.execute(
                    _UPDATE_PAYMENTS, _columns(updated, len(_UPDATE_TYPES)), prepare=False
                )
            self._drop_intents(ids)
            numbered = []
            for payment_id, status, at, detail in events:
                event_seq[payment_id] = event_seq.get(payment_id, 0) + 1
                numbered.append((payment_id, event_seq[payment_id], status, at, detail))
            if numbered:
                copy_rows(cursor, "payment_events", _EVENT_COLUMNS, _EVENT_TYPES, numbered)

    def _store_intents(self, rows: Sequence[tuple[str, str, str, int]]) -> None:
        latest = {row[0]: row for row in rows}  # A repeat replaces, as upserts would.
        self._drop_intents(list(latest))
        with self.connection.cursor() as cursor:
            copy_rows(cursor, "payment_intents", _INTENT_COLUMNS, _INTENT_TYPES, latest.values())

    def _drop_intents(self, payment_ids: Sequence[str]) -> None:
        self.connection.execute(
            "DELETE FROM payment_intents WHERE payment_id = ANY(%s)",
            (list(payment_ids),),
            prepare=False,
        )


# The columns of the rows ``SqlPaymentRecords.record`` makes, in order, with their types.
_PAYMENT_COLUMNS = (
    "payment_id, body, status, reason, reason_text, delivered, route, transfer_ids, settled_at,"
    " received_at, queue_seq, debtor_agent, creditor_agent, currency, creditor_currency,"
    " amount_minor, sent, returned"
)
_PAYMENT_TYPES = (
    "text", "text", "text", "text", "text", "int8", "text", "text", "int8",
    "int8", "int8", "text", "text", "text", "text", "int8", "int8", "int8",
)  # fmt: skip
_UPDATE_TYPES = (
    "text", "text", "text", "text", "text", "int8", "text", "text", "int8", "int8", "int8",
    "int8",
)  # fmt: skip
_EVENT_COLUMNS = "payment_id, seq, status, at, detail"
_EVENT_TYPES = ("text", "int4", "text", "int8", "text")
_INTENT_COLUMNS = "payment_id, kind, body, at"
_INTENT_TYPES = ("text", "text", "text", "int8")
_UPDATE_PAYMENTS = (
    "UPDATE payments AS p"
    " SET body = (p.body::jsonb || jsonb_build_object('priority', u.body::jsonb -> 'priority'))"
    "::text, status = u.status, reason = u.reason,"
    " reason_text = u.reason_text, delivered = u.delivered, route = u.route,"
    " transfer_ids = u.transfer_ids, settled_at = u.settled_at, queue_seq = u.queue_seq,"
    " sent = u.sent, returned = u.returned"
    " FROM unnest(" + ", ".join(f"%s::{name}[]" for name in _UPDATE_TYPES) + ")"
    " AS u(payment_id, body, status, reason, reason_text, delivered, route, transfer_ids,"
    " settled_at,"
    ' queue_seq, sent, returned) WHERE p.payment_id = u.payment_id COLLATE "C"'
)


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows as ``width`` column lists, the parameters of an ``unnest`` of arrays."""
    assert all(len(row) == width for row in rows), width
    return [list(column) for column in zip(*rows, strict=True)]


def _merge_repeats(payments: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """One row per payment, as row-by-row upserts would leave it: the first row's instruction,
    time and filter columns, the last row's outcome and queue position. (The one part of an
    instruction a later record changes, its priority, changes only in a recorded payment's
    ``UPDATE``: the engine re-prioritises only payments it recorded before.)"""
    merged: dict[str, tuple[Any, ...]] = {}
    for row in payments:
        first = merged.get(row[0])
        merged[row[0]] = (
            row
            if first is None
            else (*first[:2], *row[2:9], first[9], row[10], *first[11:16], *row[16:18])
        )
    return list(merged.values())
