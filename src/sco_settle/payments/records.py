"""The payment records port: every payment, its outcome, every step of its life, and the
write-ahead intents that make a crash between the ledger and the records repairable.

``payments`` does no I/O. The engine is given a ``PaymentRecords``; the API's read side is given a
``PaymentQueries``. The adapters live in ``storage`` and implement both: ``MemoryPaymentRecords``
(the reference, for tests and the simulator), ``SqlitePaymentRecords`` (in the ledger's SQLite
file) and ``PostgresPaymentRecords`` (in the ledger's PostgreSQL schema). Each keeps the contract
in ``tests/storage/test_payment_records_contract.py``.

The records and the ledger are written in separate transactions, and the write-ahead intents make
that safe. Before the engine sends a payment's chain to the ledger, it writes the payment's intent
durably (``begin``; kind ``settle``, ``return`` or a cycle's). ``record`` clears the intents of the
payments it records, in its own transaction. After a crash, the intents still outstanding name
exactly the payments whose chain may be in the ledger without a record. ``payments.recovery``
settles each of them from what the ledger holds.

Guarantees (every adapter):

- ``record`` is atomic, and durable when it returns (durable adapters). The outcomes, their events
  and the clearing of their payments' intents are all written, or none is.
- ``begin`` is durable when it returns. An intent stays until ``record`` records its payment or
  ``drop_intents`` drops it. A second ``begin`` for the same payment replaces the first.
- A payment's instruction and ``received_at`` are those of its first record. A later record
  replaces the outcome and the queue position, and of the instruction only its priority (a
  waiting payment may be re-prioritised by its debtor agent); never anything else of it.
- A payment's events are kept in the order they were written, across records.
- Every payment has a ``seq``. Seqs increase in the order payments were first recorded and never
  change, so a reader paging with ``after=seq`` never misses a payment recorded later. They are
  the API's list cursors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from sco_settle.payments.model import (
    AmountType,
    Party,
    Payment,
    PaymentOutcome,
    PaymentStatus,
    Priority,
)

__all__ = [
    "CorridorGroup",
    "CorridorTotals",
    "PaymentEvent",
    "PaymentFilter",
    "PaymentQueries",
    "PaymentRecords",
    "RecordEntry",
    "RecordedPayment",
    "corridor_totals",
    "payment_fields",
    "payment_from_fields",
]

# One payment to record: the instruction, its outcome, its queue position (None: not queued) and
# the events to add to its life, each (status, detail).
RecordEntry = tuple[Payment, PaymentOutcome, int | None, list[tuple[PaymentStatus, str]]]

_PAYMENT_FIELDS = tuple(
    field.name
    for field in dataclasses.fields(Payment)
    if field.name not in ("amount_type", "fx_quote_id")
)
# The statuses the corridor report counts separately. Other states (routed, received, ...) are
# counted only in the corridor's total.
_COUNTED_STATUSES = ("settled", "queued", "rejected", "returned")
# The counts and sums of ``CorridorTotals``, in the order of its fields.
_TOTALS = (
    "payments",
    *(f"{status}_count" for status in _COUNTED_STATUSES),
    "settled_value_minor",
    "delivered_value_minor",
)


class PaymentEvent(NamedTuple):
    """One step of a payment's life. ``at`` is the record's time (ledger ns)."""

    status: str
    at: int
    detail: str


@dataclass(frozen=True, slots=True)
class RecordedPayment:
    """A payment as the records hold it, for readers."""

    seq: int  # Arrival order; the API's list cursor.
    payment: Payment
    outcome: PaymentOutcome
    received_at: int  # The time of its first record (ledger ns).


@dataclass(frozen=True, slots=True)
class PaymentFilter:
    """Which payments a reader may see.

    With ``everything``, every payment. Otherwise, a payment is visible when one of ``parties`` is
    its debtor or creditor agent, or one of ``currencies`` is its currency or its creditor
    currency. A filter with neither parties nor currencies sees nothing.
    """

    parties: tuple[str, ...] = ()
    currencies: tuple[str, ...] = ()
    everything: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "parties", tuple(self.parties))
        object.__setattr__(self, "currencies", tuple(self.currencies))

    def admits(self, payment: Payment) -> bool:
        if self.everything:
            return True
        return bool(
            {payment.debtor_agent, payment.creditor_agent}.intersection(self.parties)
            or {payment.currency, payment.creditor_currency}.intersection(self.currencies)
        )


@dataclass(frozen=True, slots=True)
class CorridorTotals:
    """Counts and values of the payments of one corridor and currency pair.

    A corridor is (the debtor agent's country, the creditor agent's country), both taken from the
    BICs. Counts are by current status. The values sum the settled payments only: the instructed
    amounts (in ``currency``) and the delivered amounts (in ``creditor_currency``). Sums are
    exact integers of any size.
    """

    corridor: str
    debtor_country: str
    creditor_country: str
    currency: str
    creditor_currency: str
    payments: int = 0
    settled_count: int = 0
    queued_count: int = 0
    rejected_count: int = 0
    returned_count: int = 0
    settled_value_minor: int = 0
    delivered_value_minor: int = 0


class CorridorGroup(NamedTuple):
    """What an adapter aggregates per (corridor, currencies, status); see ``corridor_totals``."""

    debtor_country: str
    creditor_country: str
    currency: str
    creditor_currency: str
    status: str
    payments: int  # How many.
    instructed_minor: int  # The sum of the payments' instructed amounts.
    delivered_minor: int  # The sum of their delivered amounts.


def corridor_totals(groups: Iterable[CorridorGroup]) -> list[CorridorTotals]:
    """The report rows from per-status groups, sorted by corridor and currencies."""
    found: dict[tuple[str, str, str, str], list[int]] = {}
    for group in groups:
        key = (
            group.debtor_country,
            group.creditor_country,
            group.currency,
            group.creditor_currency,
        )
        totals = found.setdefault(key, [0] * len(_TOTALS))
        totals[_TOTALS.index("payments")] += group.payments
        if group.status in _COUNTED_STATUSES:
            totals[_TOTALS.index(f"{group.status}_count")] += group.payments
        if group.status == PaymentStatus.SETTLED.value:
            totals[_TOTALS.index("settled_value_minor")] += group.instructed_minor
            totals[_TOTALS.index("delivered_value_minor")] += group.delivered_minor
    return [CorridorTotals(f"{key[0]}-{key[1]}", *key, *found[key]) for key in sorted(found)]


def payment_fields(payment: Payment) -> dict[str, Any]:
    """The instruction as plain JSON values (what the records store and the API shows)."""
    # Field by field: ``dataclasses.asdict`` deep-copies recursively, a hot spot per payment.
    fields = {name: getattr(payment, name) for name in _PAYMENT_FIELDS}
    fields["debtor"] = {"name": payment.debtor.name, "account": payment.debtor.account}
    fields["creditor"] = {"name": payment.creditor.name, "account": payment.creditor.account}
    fields["priority"] = payment.priority.value
    if payment.amount_type is not AmountType.SEND:  # Older records have no such field.
        fields["amount_type"] = payment.amount_type.value
    if payment.fx_quote_id:  # Likewise: only payments at a firm quote have one.
        fields["fx_quote_id"] = payment.fx_quote_id
    return fields


def payment_from_fields(fields: dict[str, Any]) -> Payment:
    """The inverse of ``payment_fields``."""
    data = dict(fields)
    data["debtor"] = Party(**data["debtor"])
    data["creditor"] = Party(**data["creditor"])
    data["priority"] = Priority(data["priority"])
    data["amount_type"] = AmountType(data.get("amount_type", AmountType.SEND))
    return Payment(**data)


class PaymentRecords(Protocol):
    """What the payment engine reads and writes. See the module's guarantees."""

    def get(self, payment_id: str) -> tuple[Payment, PaymentOutcome, int | None] | None:
        """The payment, its outcome and its queue position (None: not queued)."""
        ...

    def get_many(
        self, payment_ids: Sequence[str]
    ) -> dict[str, tuple[Payment, PaymentOutcome, int | None]]:
        """``get`` for many ids in one read (a batch's resubmission check)."""
        ...

    def record(self, entries: Iterable[RecordEntry], at: int) -> None:
        """Upsert outcomes, append their events, clear their payments' intents; atomically."""
        ...

    def begin(self, intents: Iterable[tuple[Payment, str]], at: int) -> None:
        """Durably note that these payments' chains (of the given kind) go to the ledger next."""
        ...

    def intents(self) -> list[tuple[Payment, str]]:
        """The outstanding intents, in the order of their time, then payment id."""
        ...

    def drop_intents(self, payment_ids: Iterable[str]) -> None:
        """Forget these intents (their chains never reached the ledger)."""
        ...

    def queued(self) -> Iterator[tuple[Payment, int]]:
        """The payments recorded as queued, with their queue positions, in queue order."""
        ...

    def events(self, payment_id: str, *, limit: int | None = None) -> list[PaymentEvent]:
        """The payment's events in the order written (the first ``limit``)."""
        ...

    def records(self) -> Iterator[tuple[Payment, PaymentOutcome]]:
        """Every payment with its outcome, by payment id (for the reconciliation audit)."""
        ...

    def counts(self) -> dict[str, int]:
        """How many payments are in each status."""
        ...

    def close(self) -> None: ...


class PaymentQueries(Protocol):
    """What the API reads: payments by visibility, page by page, and totals per corridor."""

    def payment(self, payment_id: str) -> RecordedPayment | None: ...

    def events(self, payment_id: str, *, limit: int | None = None) -> list[PaymentEvent]: ...

    def list_payments(
        self,
        visible: PaymentFilter,
        *,
        after: int = 0,
        limit: int = 100,
        status: PaymentStatus | None = None,
    ) -> list[RecordedPayment]:
        """The visible payments with ``seq > after`` (and ``status``), by seq, at most ``limit``."""
        ...

    def corridors(
        self, visible: PaymentFilter, *, received_min: int = 0, received_max: int = 2**63 - 1
    ) -> list[CorridorTotals]:
        """Totals of the visible payments received in ``[received_min, received_max]``."""
        ...

    def close(self) -> None: ...
