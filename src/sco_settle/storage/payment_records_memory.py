"""Payment records in memory: the reference adapter, for tests and the simulator.

Nothing is durable and nothing is encoded: the instruction given to the first ``record`` is the
one kept (``Payment`` is frozen). Reads and their orders are those the SQL adapters give, kept
equal by the contract in ``tests/storage/test_payment_records_contract.py``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from sco_settle.payments.model import Payment, PaymentOutcome, PaymentStatus
from sco_settle.payments.quote_records import MemoryFxQuotes
from sco_settle.payments.records import (
    CorridorGroup,
    CorridorTotals,
    PaymentEvent,
    PaymentFilter,
    RecordedPayment,
    RecordEntry,
    corridor_totals,
)

__all__ = ["MemoryPaymentRecords"]


@dataclass
class _Row:
    seq: int
    payment: Payment
    outcome: PaymentOutcome
    queue_seq: int | None
    received_at: int
    events: list[PaymentEvent] = field(default_factory=list)


class MemoryPaymentRecords(MemoryFxQuotes):
    """``PaymentRecords`` and ``PaymentQueries`` in dictionaries."""

    def __init__(self) -> None:
        super().__init__()
        self._rows: dict[str, _Row] = {}  # In arrival order (dicts keep insertion order).
        self._intents: dict[str, tuple[Payment, str, int]] = {}
        self._seq_last = 0

    # -- PaymentRecords -----------------------------------------------------------------------

    def record(self, entries: Iterable[RecordEntry], at: int) -> None:
        for payment, outcome, queue_seq, steps in entries:
            row = self._rows.get(payment.payment_id)
            if row is None:
                self._seq_last += 1
                row = _Row(self._seq_last, payment, outcome, queue_seq, at)
                self._rows[payment.payment_id] = row
            else:
                row.outcome, row.queue_seq = outcome, queue_seq
                row.payment = replace(row.payment, priority=payment.priority)
            row.events.extend(PaymentEvent(status.value, at, detail) for status, detail in steps)
            self._intents.pop(payment.payment_id, None)

    def begin(self, intents: Iterable[tuple[Payment, str]], at: int) -> None:
        for payment, kind in intents:
            self._intents[payment.payment_id] = (payment, kind, at)

    def drop_intents(self, payment_ids: Iterable[str]) -> None:
        for payment_id in payment_ids:
            self._intents.pop(payment_id, None)

    def get(self, payment_id: str) -> tuple[Payment, PaymentOutcome, int | None] | None:
        row = self._rows.get(payment_id)
        return None if row is None else (row.payment, row.outcome, row.queue_seq)

    def get_many(
        self, payment_ids: Sequence[str]
    ) -> dict[str, tuple[Payment, PaymentOutcome, int | None]]:
        found = {}
        for payment_id in payment_ids:
            row = self._rows.get(payment_id)
            if row is not None:
                found[payment_id] = (row.payment, row.outcome, row.queue_seq)
        return found

    def intents(self) -> list[tuple[Payment, str]]:
        ordered = sorted(self._intents.items(), key=lambda item: (item[1][2], item[0]))
        return [(payment, kind) for _, (payment, kind, _) in ordered]

    def queued(self) -> Iterator[tuple[Payment, int]]:
        queued = [
            (row.queue_seq, row.payment)
            for row in self._rows.values()
            if row.outcome.status is PaymentStatus.QUEUED and row.queue_seq is not None
        ]
        for queue_seq, payment in sorted(queued, key=lambda item: item[0]):
            yield payment, queue_seq

    def events(self, payment_id: str, *, limit: int | None = None) -> list[PaymentEvent]:
        row = self._rows.get(payment_id)
        return [] if row is None else list(row.events[:limit])

    def records(self) -> Iterator[tuple[Payment, PaymentOutcome]]:
        for payment_id in sorted(self._rows):
            row = self._rows[payment_id]
            yield row.payment, row.outcome

    def counts(self) -> dict[str, int]:
        return dict(Counter(row.outcome.status.value for row in self._rows.values()))

    def close(self) -> None:
        return None

    # -- PaymentQueries -----------------------------------------------------------------------

    def payment(self, payment_id: str) -> RecordedPayment | None:
        row = self._rows.get(payment_id)
        return None if row is None else _recorded(row)

    def list_payments(
        self,
        visible: PaymentFilter,
        *,
        after: int = 0,
        limit: int = 100,
        status: PaymentStatus | None = None,
    ) -> list[RecordedPayment]:
        found: list[RecordedPayment] = []
        for row in self._rows.values():  # In seq order.
            if len(found) == limit:
                break
            if row.seq <= after or not visible.admits(row.payment):
                continue
            if status is None or row.outcome.status is status:
                found.append(_recorded(row))
        return found

    def corridors(
        self, visible: PaymentFilter, *, received_min: int = 0, received_max: int = 2**63 - 1
    ) -> list[CorridorTotals]:
        groups: dict[tuple[str, str, str, str, str], list[int]] = {}
        for row in self._rows.values():
            payment = row.payment
            if not visible.admits(payment) or not received_min <= row.received_at <= received_max:
                continue
            key = (
                payment.debtor_agent[4:6],
                payment.creditor_agent[4:6],
                payment.currency,
                payment.creditor_currency,
                row.outcome.status.value,
            )
            totals = groups.setdefault(key, [0, 0, 0])
            totals[0] += 1
            totals[1] += row.outcome.amount_sent_minor or payment.amount_minor
            totals[2] += row.outcome.amount_delivered_minor
        return corridor_totals(CorridorGroup(*key, *totals) for key, totals in groups.items())


def _recorded(row: _Row) -> RecordedPayment:
    return RecordedPayment(row.seq, row.payment, row.outcome, row.received_at)
