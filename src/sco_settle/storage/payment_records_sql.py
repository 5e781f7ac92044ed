"""What the SQLite and PostgreSQL payment records share: the layout, the JSON encoding of an
instruction, and every statement but the connection handling and the corridor sums.

Tables (the same columns in both databases; see ``payments.records`` for the guarantees):

- ``payments``: one row per payment. ``body`` is the instruction as JSON. ``seq`` is the arrival
  order: ``max(seq) + 1`` at the first record, never changed (a single writer keeps it unique;
  the unique index catches a second one). The columns the API filters on are copied out of the
  instruction at the first record (``debtor_agent``, ``creditor_agent``, ``currency``,
  ``creditor_currency``, ``amount_minor``), so reads need no other table.
- ``payment_events``: ``(payment_id, seq)``, where ``seq`` counts the payment's events from 1.
  Each event's number comes from the payment's stored maximum, read in the writing transaction,
  so no count is kept in memory that a rolled-back transaction could leave wrong.
- ``payment_intents``: one row per outstanding intent (the write-ahead note).

Statements are written with ``?`` placeholders; the PostgreSQL adapter rewrites them to ``%s``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

from sco_settle.audit.chain import PAYMENTS_ACTOR, AuditKind
from sco_settle.audit.records import PaymentChange, PaymentRecordsPayload
from sco_settle.audit.sql import AuditTables, Execute, append_entry
from sco_settle.payments.model import Payment, PaymentOutcome, PaymentStatus, Reason
from sco_settle.payments.records import (
    CorridorGroup,
    CorridorTotals,
    PaymentEvent,
    PaymentFilter,
    RecordedPayment,
    RecordEntry,
    corridor_totals,
    payment_fields,
    payment_from_fields,
)
from sco_settle.storage.fx_quotes_sql import SqlFxQuotes

INT64_MAX = 2**63 - 1
_IDS_PER_QUERY = 500  # ids per ``IN (...)`` read (SQLite allows 32,766 parameters)
PAGE_ROWS_MAX = 10_000  # Rows per page of a full scan (``records``): bounds client memory.

_OUTCOME_COLUMNS = (
    "status, reason, reason_text, delivered, route, transfer_ids, settled_at, sent, returned"
)
_OUTCOME_WIDTH = len(_OUTCOME_COLUMNS.split(","))
_RECORDED_COLUMNS = f"seq, payment_id, body, {_OUTCOME_COLUMNS}, received_at"
# What a payment debited from its debtor agent: recorded once settled; before (and in records
# older than the column) a SEND payment's fixed amount, which is the same.
_SENT = "CASE WHEN sent > 0 THEN sent ELSE amount_minor END"
_UPSERT = (
    "INSERT INTO payments (payment_id, seq, body, status, reason, reason_text, delivered, route,"
    " transfer_ids, settled_at, received_at, queue_seq, debtor_agent, creditor_agent, currency,"
    " creditor_currency, amount_minor, sent, returned)"
    " VALUES (?, (SELECT coalesce(max(seq), 0) + 1 FROM payments),"
    " ?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
    " ON CONFLICT (payment_id) DO UPDATE SET"
    " body = json_set(body, '$.priority', json_extract(excluded.body, '$.priority')),"
    " status = excluded.status,"
    " reason = excluded.reason, reason_text = excluded.reason_text,"
    " delivered = excluded.delivered, route = excluded.route,"
    " transfer_ids = excluded.transfer_ids, settled_at = excluded.settled_at,"
    " queue_seq = excluded.queue_seq, sent = excluded.sent, returned = excluded.returned"
)
_ADD_EVENT = (
    "INSERT INTO payment_events (payment_id, seq, status, at, detail)"
    " SELECT ?, coalesce(max(seq), 0) + 1, ?, ?, ? FROM payment_events WHERE payment_id = ?"
)
_CLEAR_INTENT = "DELETE FROM payment_intents WHERE payment_id = ?"
_BEGIN = (
    "INSERT INTO payment_intents (payment_id, kind, body, at) VALUES (?,?,?,?)"
    " ON CONFLICT (payment_id) DO UPDATE SET kind = excluded.kind, body = excluded.body,"
    " at = excluded.at"
)


def payment_to_json(payment: Payment) -> str:
    return json.dumps(payment_fields(payment), sort_keys=True)


def payment_from_json(text: str) -> Payment:
    return payment_from_fields(json.loads(text))


def filter_columns(payment: Payment) -> tuple[str, str, str, str, int | None]:
    """The columns readers filter and sum on. An amount outside int64 (refused by the engine
    with AM02, but recorded) is kept as NULL: only settled amounts are ever summed."""
    amount = payment.amount_minor
    fits = isinstance(amount, int) and -INT64_MAX - 1 <= amount <= INT64_MAX
    return (
        payment.debtor_agent,
        payment.creditor_agent,
        payment.currency,
        payment.creditor_currency,
        amount if fits else None,
    )


def outcome_from_row(payment_id: str, row: Sequence[Any]) -> PaymentOutcome:
    """A ``PaymentOutcome`` from the ``_OUTCOME_COLUMNS`` of a row."""
    status, reason, reason_text, delivered, route, transfer_ids, settled_at, sent, returned = row
    return PaymentOutcome(
        payment_id=payment_id,
        status=PaymentStatus(status),
        reason=Reason(reason) if reason else None,
        reason_text=reason_text,
        amount_delivered_minor=delivered,
        route=tuple(json.loads(route)),
        transfer_ids=tuple(int(i) for i in json.loads(transfer_ids)),
        settled_at=settled_at,
        amount_sent_minor=sent,
        amount_returned_minor=returned,
    )


def visible_sql(visible: PaymentFilter) -> tuple[str, tuple[str, ...]]:
    """``visible`` as a condition on ``payments`` and its parameters."""
    if visible.everything:
        return "1 = 1", ()
    clauses: list[str] = []
    params: list[str] = []
    for party in visible.parties:
        clauses += ["debtor_agent = ?", "creditor_agent = ?"]
        params += [party, party]
    for code in visible.currencies:
        clauses += ["currency = ?", "creditor_currency = ?"]
        params += [code, code]
    if not clauses:
        return "1 = 0", ()
    return "(" + " OR ".join(clauses) + ")", tuple(params)


class SqlPaymentRecords(SqlFxQuotes):
    """``PaymentRecords`` and ``PaymentQueries`` over a DB-API connection; the adapters supply
    the transaction, the placeholder style, the corridor sums and how rows are written."""

    connection: Any
    readonly: bool
    # Two SQL aggregates per summed column (``{column}``), and how to combine their values.
    corridor_sum_sql: str

    # -- what an adapter provides -----------------------------------------------------------

    def _transaction(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _execute_many(self, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        raise NotImplementedError

    def _sql(self, statement: str) -> str:
        return statement

    def _corridor_sum(self, values: Sequence[Any]) -> int:
        raise NotImplementedError

    def _audit(self) -> tuple[Execute, AuditTables]:
        """The statement callable of the open write transaction, and the audit tables."""
        raise NotImplementedError

    # -- helpers ------------------------------------------------------------------------------

    def _fetch(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.connection.execute(self._sql(statement), params)]

    def _writable(self) -> None:
        if self.readonly:
            raise PermissionError("the payment records are open read-only")

    def close(self) -> None:
        self.connection.close()

    # -- PaymentRecords: writes ---------------------------------------------------------------

    def record(self, entries: Iterable[RecordEntry], at: int) -> None:
        """Upsert outcomes, append their events and clear their intents, atomically."""
        self._writable()
        payments: list[tuple[Any, ...]] = []
        events: list[tuple[str, str, int, str]] = []
        changes: list[PaymentChange] = []
        for payment, outcome, queue_seq, steps in entries:
            changes.append(_change(payment, outcome, steps))
            payments.append(
                (
                    payment.payment_id,
                    payment_to_json(payment),
                    outcome.status.value,
                    outcome.reason.value if outcome.reason else None,
                    outcome.reason_text,
                    outcome.amount_delivered_minor,
                    json.dumps(list(outcome.route)),
                    json.dumps([str(i) for i in outcome.transfer_ids]),
                    outcome.settled_at,
                    at,
                    queue_seq,
                    *filter_columns(payment),
                    outcome.amount_sent_minor,
                    outcome.amount_returned_minor,
                )
            )
            events += [(payment.payment_id, status.value, at, detail) for status, detail in steps]
        if not payments:
            return
        payload = PaymentRecordsPayload(at, tuple(changes)).as_dict()
        with self._transaction():
            self._store(payments, events)
            execute, tables = self._audit()
            append_entry(execute, tables, AuditKind.PAYMENT_RECORDS, PAYMENTS_ACTOR, payload)

    def begin(self, intents: Iterable[tuple[Payment, str]], at: int) -> None:
        """Durably note that these payments' chains (of kind ``settle``, ``return`` or a
        cycle's) are about to go to the ledger; ``record`` clears each."""
        self._writable()
        rows = [(p.payment_id, kind, payment_to_json(p), at) for p, kind in intents]
        if not rows:
            return
        with self._transaction():
            self._store_intents(rows)

    def drop_intents(self, payment_ids: Iterable[str]) -> None:
        self._writable()
        chosen = list(payment_ids)
        if not chosen:
            return
        with self._transaction():
            self._drop_intents(chosen)

    # Row by row, in the open transaction: cheap where the database runs in the process
    # (SQLite). ``PostgresPaymentRecords`` writes in bulk instead.

    def _store(
        self, payments: Sequence[tuple[Any, ...]], events: Sequence[tuple[str, str, int, str]]
    ) -> None:
        """``payments``: rows of ``_UPSERT``'s values; ``events``: (id, status, at, detail)."""
        self._execute_many(_UPSERT, payments)
        self._drop_intents([row[0] for row in payments])
        self._execute_many(_ADD_EVENT, [(*event, event[0]) for event in events])

    def _store_intents(self, rows: Sequence[tuple[str, str, str, int]]) -> None:
        self._execute_many(_BEGIN, rows)

    def _drop_intents(self, payment_ids: Sequence[str]) -> None:
        self._execute_many(_CLEAR_INTENT, [(payment_id,) for payment_id in payment_ids])

    # -- PaymentRecords: reads ----------------------------------------------------------------

    def get(self, payment_id: str) -> tuple[Payment, PaymentOutcome, int | None] | None:
        rows = self._fetch(
            f"SELECT body, {_OUTCOME_COLUMNS}, queue_seq FROM payments WHERE payment_id = ?",
            (payment_id,),
        )
        if not rows:
            return None
        row = rows[0]
        end = 1 + _OUTCOME_WIDTH
        return payment_from_json(row[0]), outcome_from_row(payment_id, row[1:end]), row[end]

    def get_many(
        self, payment_ids: Sequence[str]
    ) -> dict[str, tuple[Payment, PaymentOutcome, int | None]]:
        found = {}
        unique = list(dict.fromkeys(payment_ids))
        for start in range(0, len(unique), _IDS_PER_QUERY):
            chunk = unique[start : start + _IDS_PER_QUERY]
            marks = ",".join("?" * len(chunk))
            for row in self._fetch(
                f"SELECT payment_id, body, {_OUTCOME_COLUMNS}, queue_seq FROM payments"
                f" WHERE payment_id IN ({marks})",
                chunk,
            ):
                found[row[0]] = (
                    payment_from_json(row[1]),
                    outcome_from_row(row[0], row[2 : 2 + _OUTCOME_WIDTH]),
                    row[2 + _OUTCOME_WIDTH],
                )
        return found

    def intents(self) -> list[tuple[Payment, str]]:
        return [
            (payment_from_json(body), kind)
            for body, kind in self._fetch(
                "SELECT body, kind FROM payment_intents ORDER BY at, payment_id"
            )
        ]

    def queued(self) -> Iterator[tuple[Payment, int]]:
        rows = self._fetch(
            "SELECT body, queue_seq FROM payments WHERE status = ? ORDER BY queue_seq",
            (PaymentStatus.QUEUED.value,),
        )
        for body, queue_seq in rows:
            yield payment_from_json(body), queue_seq

    def events(self, payment_id: str, *, limit: int | None = None) -> list[PaymentEvent]:
        rows = self._fetch(
            "SELECT status, at, detail FROM payment_events WHERE payment_id = ? ORDER BY seq"
            " LIMIT ?",
            (payment_id, INT64_MAX if limit is None else limit),
        )
        return [PaymentEvent(*row) for row in rows]

    def records(self) -> Iterator[tuple[Payment, PaymentOutcome]]:
        """Every payment with its outcome, by payment id, page by page (keyset pages: each is
        one short statement, so nothing stays open between pages)."""
        after = ""
        while True:
            rows = self._fetch(
                f"SELECT payment_id, body, {_OUTCOME_COLUMNS} FROM payments"
                " WHERE payment_id > ? ORDER BY payment_id LIMIT ?",
                (after, PAGE_ROWS_MAX),
            )
            for row in rows:
                yield payment_from_json(row[1]), outcome_from_row(row[0], row[2:])
            if len(rows) < PAGE_ROWS_MAX:
                return
            after = rows[-1][0]

    def counts(self) -> dict[str, int]:
        return {
            status: int(count)
            for status, count in self._fetch(
                "SELECT status, count(*) FROM payments GROUP BY status"
            )
        }

    # -- PaymentQueries -----------------------------------------------------------------------

    def payment(self, payment_id: str) -> RecordedPayment | None:
        rows = self._fetch(
            f"SELECT {_RECORDED_COLUMNS} FROM payments WHERE payment_id = ?", (payment_id,)
        )
        return _recorded(rows[0]) if rows else None

    def list_payments(
        self,
        visible: PaymentFilter,
        *,
        after: int = 0,
        limit: int = 100,
        status: PaymentStatus | None = None,
    ) -> list[RecordedPayment]:
        where, params = visible_sql(visible)
        if status is not None:
            where, params = f"{where} AND status = ?", (*params, status.value)
        rows = self._fetch(
            f"SELECT {_RECORDED_COLUMNS} FROM payments WHERE seq > ? AND {where}"
            " ORDER BY seq LIMIT ?",
            (after, *params, limit),
        )
        return [_recorded(row) for row in rows]

    def corridors(
        self, visible: PaymentFilter, *, received_min: int = 0, received_max: int = INT64_MAX
    ) -> list[CorridorTotals]:
        where, params = visible_sql(visible)
        sums = ", ".join(
            self.corridor_sum_sql.format(column=column) for column in (_SENT, "delivered")
        )
        rows = self._fetch(
            "SELECT substr(debtor_agent, 5, 2), substr(creditor_agent, 5, 2), currency,"
            f" creditor_currency, status, count(*), {sums} FROM payments"
            f" WHERE {where} AND received_at BETWEEN ? AND ? GROUP BY 1, 2, 3, 4, 5",
            (*params, received_min, received_max),
        )
        half = (len(rows[0]) - 6) // 2 if rows else 0
        return corridor_totals(
            CorridorGroup(
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                int(row[5]),
                self._corridor_sum(row[6 : 6 + half]),
                self._corridor_sum(row[6 + half :]),
            )
            for row in rows
        )


def _change(
    payment: Payment, outcome: PaymentOutcome, steps: Sequence[tuple[PaymentStatus, str]]
) -> PaymentChange:
    """What the audit chain keeps of one payment's record (``audit.records``)."""
    return PaymentChange(
        payment.payment_id,
        outcome.status.value,
        outcome.reason.value if outcome.reason else None,
        payment.debtor_agent,
        payment.creditor_agent,
        payment.currency,
        payment.creditor_currency,
        outcome.amount_sent_minor,
        outcome.amount_delivered_minor,
        outcome.amount_returned_minor,
        tuple((status.value, detail) for status, detail in steps),
    )


def _recorded(row: Sequence[Any]) -> RecordedPayment:
    seq, payment_id, body, *outcome, received_at = row
    return RecordedPayment(
        int(seq), payment_from_json(body), outcome_from_row(payment_id, outcome), received_at
    )
