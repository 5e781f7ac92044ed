"""The payment queue: payments waiting for liquidity (RTGS) or for their cycle (DNS).

A queued payment keeps its arrival sequence number, so the queue's order survives a restart
(the sequence is recorded with the payment). Order of service: urgent before normal, then
arrival (``QueuedPayment.rank``). Every settlement mode reads the queue through a ``Selection``
(the payments a cycle takes part in), never by swapping the queue out.

Pure: no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sco_settle.payments.model import Payment, Priority


@dataclass
class QueuedPayment:
    payment: Payment
    seq: int  # arrival order, recorded with the payment
    enqueued_at: int  # ledger clock (ns) when it joined the queue (or the engine started)

    @property
    def rank(self) -> tuple[int, int]:
        return (level(self.payment.priority), self.seq)


def level(priority: Priority) -> int:
    """0 for urgent, 1 for normal: lower is served first."""
    return 0 if priority is Priority.URGENT else 1


@dataclass(frozen=True)
class Selection:
    """Which queued payments a cycle takes part in: those whose instructed and creditor
    currencies are both in ``currencies``, and whose debtor or creditor agent is in
    ``participants`` (None: no restriction)."""

    currencies: frozenset[str] | None = None
    participants: frozenset[str] | None = None

    def admits(self, payment: Payment) -> bool:
        if self.currencies is not None and not (
            payment.currency in self.currencies and payment.creditor_currency in self.currencies
        ):
            return False
        return self.participants is None or bool(
            {payment.debtor_agent, payment.creditor_agent} & self.participants
        )


EVERYTHING = Selection()
FIFO_TEXT = "queued behind an earlier payment of the same payer (FIFO)"


class PaymentQueue:
    """Queued payments by payment id, with each payer's count (for its quota)."""

    def __init__(self, items: Iterable[QueuedPayment] = ()) -> None:
        self._items: dict[str, QueuedPayment] = {}
        self.by_payer: Counter[str] = Counter()
        self._by_level: Counter[tuple[str, int]] = Counter()
        for queued in items:
            self.add(queued)

    def add(self, queued: QueuedPayment) -> None:
        payment_id = queued.payment.payment_id
        if payment_id in self._items:
            self.remove(payment_id)
        self._items[payment_id] = queued
        self.by_payer[queued.payment.debtor_agent] += 1
        self._by_level[(queued.payment.debtor_agent, queued.rank[0])] += 1

    def remove(self, payment_id: str) -> QueuedPayment:
        queued = self._items.pop(payment_id)
        self.by_payer[queued.payment.debtor_agent] -= 1
        self._by_level[(queued.payment.debtor_agent, queued.rank[0])] -= 1
        return queued

    def blocks(self, payment: Payment) -> bool:
        """FIFO (TARGET2): a payment may not settle while an earlier payment of the same payer
        with the same or a higher priority waits in the queue."""
        payer = payment.debtor_agent
        return any(self._by_level[(payer, lvl)] > 0 for lvl in range(level(payment.priority) + 1))

    def get(self, payment_id: str) -> QueuedPayment | None:
        return self._items.get(payment_id)

    def select(self, selection: Selection = EVERYTHING) -> list[QueuedPayment]:
        """The selected payments in order of service (rank)."""
        chosen = (q for q in self._items.values() if selection.admits(q.payment))
        return sorted(chosen, key=lambda queued: queued.rank)

    def entries(self) -> Iterable[QueuedPayment]:
        """Every queued payment, in no particular order (``select`` sorts; this does not)."""
        return self._items.values()

    def ids(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, payment_id: object) -> bool:
        return payment_id in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)
