"""The payment journal: every payment, its current outcome and every step of its life.

SQLite (a file beside the ledger, or the same file) or ``:memory:``. ``record`` writes a batch of
outcomes and their events in one transaction; an outcome is returned to the submitter only after
that transaction committed (``synchronous=FULL`` for a file).

Crash consistency with the ledger: before the engine sends a payment's chain to the ledger it
writes the payment's *intent* durably (``begin``: kind ``settle`` or ``return``); ``record`` clears
the intents of the payments it records, in the same transaction. After a crash the outstanding
intents name exactly the payments whose chain may be in the ledger without a record, and
``payments.recovery`` settles each from what the ledger holds (chain ids are derived from the
payment id, in a range no client can write).
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from sco_settle.payments.model import (
    Party,
    Payment,
    PaymentOutcome,
    PaymentStatus,
    Priority,
    Reason,
)

_PAYMENT_FIELDS = tuple(field.name for field in dataclasses.fields(Payment))

_SCHEMA = """
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
    queue_seq INTEGER
);
CREATE INDEX IF NOT EXISTS payments_by_status ON payments (status, queue_seq);
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


def payment_to_json(payment: Payment) -> str:
    # Field by field (dataclasses.asdict deep-copies recursively: a hot spot per payment).
    fields = {name: getattr(payment, name) for name in _PAYMENT_FIELDS}
    fields["debtor"] = {"name": payment.debtor.name, "account": payment.debtor.account}
    fields["creditor"] = {"name": payment.creditor.name, "account": payment.creditor.account}
    fields["priority"] = payment.priority.value
    return json.dumps(fields, sort_keys=True)


def payment_from_json(text: str) -> Payment:
    data = json.loads(text)
    data["debtor"] = Party(**data["debtor"])
    data["creditor"] = Party(**data["creditor"])
    data["priority"] = Priority(data["priority"])
    return Payment(**data)


class PaymentJournal:
    def __init__(
        self, path: str | Path = ":memory:", *, durable: bool = True, readonly: bool = False
    ) -> None:
        self._event_seq: dict[str, int] = {}
        if readonly:  # For audits: never writes, not even the schema.
            uri = f"file:{Path(path).resolve()}?mode=ro"
            self.connection = sqlite3.connect(uri, uri=True, isolation_level=None)
            return
        self.connection = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        if str(path) != ":memory:":
            self.connection.execute("PRAGMA journal_mode=WAL")
            self.connection.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
        self.connection.execute("BEGIN IMMEDIATE")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                self.connection.execute(statement)
        self.connection.execute("COMMIT")
        self._event_seq: dict[str, int] = {}

    def get(self, payment_id: str) -> tuple[Payment, PaymentOutcome, int | None] | None:
        row = self.connection.execute(
            "SELECT body, status, reason, reason_text, delivered, route, transfer_ids, settled_at,"
            " queue_seq FROM payments WHERE payment_id=?",
            (payment_id,),
        ).fetchone()
        if row is None:
            return None
        return payment_from_json(row[0]), _outcome(payment_id, row[1:8]), row[8]

    def record(
        self,
        entries: Iterable[
            tuple[Payment, PaymentOutcome, int | None, list[tuple[PaymentStatus, str]]]
        ],
        at: int,
    ) -> None:
        """Upsert outcomes and append their events, atomically and durably."""
        connection = self.connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            for payment, outcome, queue_seq, events in entries:
                connection.execute(
                    "INSERT INTO payments VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(payment_id) DO"
                    " UPDATE SET status=excluded.status, reason=excluded.reason,"
                    " reason_text=excluded.reason_text, delivered=excluded.delivered,"
                    " route=excluded.route, transfer_ids=excluded.transfer_ids,"
                    " settled_at=excluded.settled_at, queue_seq=excluded.queue_seq",
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
                    ),
                )
                connection.execute(
                    "DELETE FROM payment_intents WHERE payment_id=?", (payment.payment_id,)
                )
                for status, detail in events:
                    seq = self._next_seq(payment.payment_id)
                    connection.execute(
                        "INSERT INTO payment_events VALUES (?,?,?,?,?)",
                        (payment.payment_id, seq, status.value, at, detail),
                    )
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            self._event_seq.clear()
            raise

    def begin(self, intents: Iterable[tuple[Payment, str]], at: int) -> None:
        """Durably note that these payments' chains (kind ``settle`` or ``return``) are about
        to go to the ledger; ``record`` clears each when it records the payment."""
        rows = [(p.payment_id, kind, payment_to_json(p), at) for p, kind in intents]
        if not rows:
            return
        connection = self.connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(
                "INSERT INTO payment_intents VALUES (?,?,?,?) ON CONFLICT(payment_id) DO UPDATE"
                " SET kind=excluded.kind, body=excluded.body, at=excluded.at",
                rows,
            )
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def intents(self) -> list[tuple[Payment, str]]:
        return [
            (payment_from_json(body), kind)
            for body, kind in self.connection.execute(
                "SELECT body, kind FROM payment_intents ORDER BY at, payment_id"
            )
        ]

    def drop_intents(self, payment_ids: Iterable[str]) -> None:
        connection = self.connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(
                "DELETE FROM payment_intents WHERE payment_id=?", [(i,) for i in payment_ids]
            )
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def records(self) -> Iterator[tuple[Payment, PaymentOutcome]]:
        """Every payment with its outcome (for the reconciliation audit)."""
        for row in self.connection.execute(
            "SELECT payment_id, body, status, reason, reason_text, delivered, route,"
            " transfer_ids, settled_at FROM payments ORDER BY payment_id"
        ):
            yield payment_from_json(row[1]), _outcome(row[0], row[2:9])

    def _next_seq(self, payment_id: str) -> int:
        seq = self._event_seq.get(payment_id)
        if seq is None:
            row = self.connection.execute(
                "SELECT max(seq) FROM payment_events WHERE payment_id=?", (payment_id,)
            ).fetchone()
            seq = row[0] if row[0] is not None else 0
        seq += 1
        self._event_seq[payment_id] = seq
        return seq

    def events(self, payment_id: str) -> list[tuple[str, int, str]]:
        return list(
            self.connection.execute(
                "SELECT status, at, detail FROM payment_events WHERE payment_id=? ORDER BY seq",
                (payment_id,),
            )
        )

    def queued(self) -> Iterator[tuple[Payment, int]]:
        for body, seq in self.connection.execute(
            "SELECT body, queue_seq FROM payments WHERE status=? ORDER BY queue_seq",
            (PaymentStatus.QUEUED.value,),
        ):
            yield payment_from_json(body), seq

    def in_flight(self) -> Iterator[Payment]:
        """Payments recorded as routed: their chain may or may not be in the ledger."""
        for (body,) in self.connection.execute(
            "SELECT body FROM payments WHERE status=?", (PaymentStatus.ROUTED.value,)
        ):
            yield payment_from_json(body)

    def counts(self) -> dict[str, int]:
        return dict(
            self.connection.execute("SELECT status, count(*) FROM payments GROUP BY status")
        )

    def close(self) -> None:
        self.connection.close()


def _outcome(payment_id: str, row: tuple) -> PaymentOutcome:  # type: ignore[type-arg]
    status, reason, reason_text, delivered, route, transfer_ids, settled_at = row
    return PaymentOutcome(
        payment_id=payment_id,
        status=PaymentStatus(status),
        reason=Reason(reason) if reason else None,
        reason_text=reason_text,
        amount_delivered_minor=delivered,
        route=tuple(json.loads(route)),
        transfer_ids=tuple(int(i) for i in json.loads(transfer_ids)),
        settled_at=settled_at,
    )
