"""Multilateral and bilateral netting of a payment batch, with net debit caps.

Invariants:
- Net positions sum to zero in every currency: netting moves no value in or out of the network.
  Checked on every result with an explicit check that raises ``InvariantViolation`` (not an
  ``assert``, which ``python -O`` would strip).
- Amounts are int64 minor units. A batch's total value is at most ``AMOUNT_MAX`` (checked exactly
  on construction), so no int64 sum inside netting can overflow.
- Deferral under caps loses nothing: every payment is either in the settled set or returned as
  deferred, and the positions are exactly those of the settled set.
- Results depend only on the batch: participants and currencies are indexed in sorted order and
  every tie is broken by index, never by hash or memory order.

A net position is *incoming minus outgoing*: positive means the participant receives at settlement,
negative means it pays (a net debit).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from sco_settle.domain.money import AMOUNT_MAX, currency
from sco_settle.domain.participants import parse_bic
from sco_settle.ledger import InvariantViolation

# A broken invariant raises the ledger's ``InvariantViolation`` (one error for every layer): a
# programmer error, never caught.


class Payment(NamedTuple):
    """One payment instruction, the row form of a ``PaymentBatch``.

    ``priority``: larger settles in preference (is deferred last). Order in the batch is the
    submission order: among equal priorities, later payments are deferred first.
    """

    payer: str
    payee: str
    currency: str
    amount_minor: int
    priority: int = 0


@dataclass(frozen=True, slots=True, eq=False)
class PaymentBatch:
    """A columnar batch: participant and currency indices plus int64 amounts.

    Constraints (checked by ``from_arrays``):
    - ``participants`` are distinct BICs in sorted order; ``currencies`` distinct ISO 4217 codes in
      sorted order. Index ``i`` of ``payer``/``payee`` names ``participants[i]``.
    - ``payer != payee`` for every payment; ``amount_minor > 0``; total value <= ``AMOUNT_MAX``.
    """

    participants: tuple[str, ...]
    currencies: tuple[str, ...]
    payer: np.ndarray
    payee: np.ndarray
    currency: np.ndarray
    amount_minor: np.ndarray
    priority: np.ndarray

    def __len__(self) -> int:
        return int(self.amount_minor.shape[0])

    @classmethod
    def from_payments(cls, payments: Iterable[Payment]) -> PaymentBatch:
        """Build a batch from rows (convenient; use ``from_arrays`` for millions of payments)."""
        rows = [Payment(*row) for row in payments]
        participants = sorted({row.payer for row in rows} | {row.payee for row in rows})
        currencies = sorted({row.currency for row in rows})
        participant_index = {bic: index for index, bic in enumerate(participants)}
        currency_index = {code: index for index, code in enumerate(currencies)}

        def column(values: Iterable[int]) -> np.ndarray:
            return np.fromiter(values, dtype=np.int64, count=len(rows))

        for row in rows:
            if not isinstance(row.amount_minor, int) or isinstance(row.amount_minor, bool):
                raise ValueError(f"amount_minor must be an int, got {row.amount_minor!r}")
        return cls.from_arrays(
            participants,
            currencies,
            payer=column(participant_index[row.payer] for row in rows),
            payee=column(participant_index[row.payee] for row in rows),
            currency=column(currency_index[row.currency] for row in rows),
            amount_minor=column(row.amount_minor for row in rows),
            priority=column(row.priority for row in rows),
        )

    @classmethod
    def from_arrays(
        cls,
        participants: Sequence[str],
        currencies: Sequence[str],
        *,
        payer: np.ndarray,
        payee: np.ndarray,
        currency: np.ndarray,
        amount_minor: np.ndarray,
        priority: np.ndarray | None = None,
    ) -> PaymentBatch:
        """Validate columns (vectorised) and build a batch. Raises ``ValueError`` on bad input."""
        participants = tuple(participants)
        currencies = tuple(currencies)
        if list(participants) != sorted(set(participants)):
            raise ValueError("participants must be distinct and sorted")
        if list(currencies) != sorted(set(currencies)):
            raise ValueError("currencies must be distinct and sorted")
        for bic in participants:
            if parse_bic(bic) != bic:
                raise ValueError(f"participant {bic!r} is not a canonical BIC")
        for code in currencies:
            _currency_check(code)
        if priority is None:
            priority = np.zeros(len(amount_minor), dtype=np.int64)
        columns = [np.asarray(c) for c in (payer, payee, currency, amount_minor, priority)]
        if any(c.ndim != 1 or c.shape != columns[0].shape for c in columns):
            raise ValueError("batch columns must be one-dimensional and of equal length")
        if any(c.dtype.kind not in "iu" for c in columns):
            raise ValueError("batch columns must be integer arrays (amounts in minor units)")
        payer, payee, currency, amount_minor, priority = (
            c.astype(np.int64, copy=False) for c in columns
        )
        _check_indices(payer, len(participants), "payer")
        _check_indices(payee, len(participants), "payee")
        _check_indices(currency, len(currencies), "currency")
        if len(payer) and bool(np.any(payer == payee)):
            raise ValueError("a payment's payer and payee must differ")
        if len(amount_minor) and int(amount_minor.min()) <= 0:
            raise ValueError("every amount_minor must be positive")
        if exact_total(amount_minor) > AMOUNT_MAX:
            raise ValueError("the batch's total value exceeds AMOUNT_MAX: split the batch")
        return cls(participants, currencies, payer, payee, currency, amount_minor, priority)


def _currency_check(code: str) -> None:
    currency(code)


def _check_indices(values: np.ndarray, size: int, field: str) -> None:
    if len(values) and (int(values.min()) < 0 or int(values.max()) >= size):
        raise ValueError(f"{field} index out of range 0..{size - 1}")


def exact_total(amount_minor: np.ndarray) -> int:
    """The exact sum of non-negative int64 amounts as a Python int (no int64 overflow).

    Each amount is split into 32-bit halves, whose int64 sums cannot overflow below 2**31 rows.
    """
    amounts = np.asarray(amount_minor, dtype=np.int64)
    assert len(amounts) < 2**31, len(amounts)
    assert not len(amounts) or int(amounts.min()) >= 0
    high = int(np.sum(amounts >> 32, dtype=np.int64))
    low = int(np.sum(amounts & 0xFFFFFFFF, dtype=np.int64))
    return (high << 32) + low


@dataclass(frozen=True, slots=True, eq=False)
class NetPositions:
    """Per (participant, currency) totals; arrays are shaped (participants, currencies).

    ``net_minor = incoming_minor - outgoing_minor``.
    """

    participants: tuple[str, ...]
    currencies: tuple[str, ...]
    net_minor: np.ndarray
    outgoing_minor: np.ndarray
    incoming_minor: np.ndarray

    def position(self, participant: str, currency_code: str) -> int:
        row = self.participants.index(participant)
        column = self.currencies.index(currency_code)
        return int(self.net_minor[row, column])

    def liquidity(self) -> dict[str, LiquidityNeed]:
        """Per currency: gross value versus the liquidity multilateral netting needs."""
        gross = self.outgoing_minor.sum(axis=0)
        net_debit = (-np.minimum(self.net_minor, 0)).sum(axis=0)
        return {
            code: LiquidityNeed(gross_minor=int(gross[c]), net_debit_minor=int(net_debit[c]))
            for c, code in enumerate(self.currencies)
        }


class LiquidityNeed(NamedTuple):
    """``gross_minor``: liquidity to settle every payment one by one with no incoming funds
    recycled (the batch's value). ``net_debit_minor``: the sum of net debit positions, which is what
    multilateral net settlement needs."""

    gross_minor: int
    net_debit_minor: int


def check_zero_sum(net_minor: np.ndarray, currencies: Sequence[str]) -> None:
    """Raise ``InvariantViolation`` unless every currency's column of positions sums to zero."""
    totals = net_minor.sum(axis=0)
    if bool(np.any(totals != 0)):
        broken = {currencies[int(c)]: int(totals[c]) for c in np.flatnonzero(totals)}
        raise InvariantViolation(f"net positions do not sum to zero per currency: {broken}")


def multilateral_net(batch: PaymentBatch, settled: np.ndarray | None = None) -> NetPositions:
    """Net every participant's payments per currency (vectorised with ``np.add.at``, int64).

    ``settled`` is an optional boolean mask: net only those payments.
    """
    payer, payee, code, amount = batch.payer, batch.payee, batch.currency, batch.amount_minor
    if settled is not None:
        payer, payee, code, amount = payer[settled], payee[settled], code[settled], amount[settled]
    shape = (len(batch.participants), len(batch.currencies))
    columns = shape[1]
    outgoing = np.zeros(shape[0] * columns, dtype=np.int64)
    incoming = np.zeros(shape[0] * columns, dtype=np.int64)
    np.add.at(outgoing, payer * columns + code, amount)
    np.add.at(incoming, payee * columns + code, amount)
    outgoing, incoming = outgoing.reshape(shape), incoming.reshape(shape)
    net = incoming - outgoing
    check_zero_sum(net, batch.currencies)
    assert int(outgoing.sum()) == int(incoming.sum()) == exact_total(amount)
    return NetPositions(batch.participants, batch.currencies, net, outgoing, incoming)


@dataclass(frozen=True, slots=True, eq=False)
class BilateralPositions:
    """One row per (first < second, currency) pair that exchanged payments.

    ``net_minor > 0``: ``first`` owes ``second`` that much; ``< 0``: ``second`` owes ``first``.
    Rows are sorted by (first, second, currency) index.
    """

    participants: tuple[str, ...]
    currencies: tuple[str, ...]
    first: np.ndarray
    second: np.ndarray
    currency: np.ndarray
    net_minor: np.ndarray

    def liquidity_minor(self) -> dict[str, int]:
        """Per currency, the liquidity bilateral net settlement needs: the sum of |net|."""
        totals = np.zeros(len(self.currencies), dtype=np.int64)
        np.add.at(totals, self.currency, np.abs(self.net_minor))
        return {code: int(totals[c]) for c, code in enumerate(self.currencies)}


def bilateral_net(batch: PaymentBatch) -> BilateralPositions:
    """Net each pair of participants per currency (sort-based grouping, vectorised)."""
    count = len(batch.participants)
    columns = len(batch.currencies)
    first = np.minimum(batch.payer, batch.payee)
    second = np.maximum(batch.payer, batch.payee)
    key = (first * count + second) * columns + batch.currency
    keys, inverse = np.unique(key, return_inverse=True)
    signed = np.where(batch.payer == first, batch.amount_minor, -batch.amount_minor)
    net = np.zeros(len(keys), dtype=np.int64)
    np.add.at(net, inverse.reshape(-1), signed)
    pair, code = np.divmod(keys, columns)
    first_out, second_out = np.divmod(pair, count)
    assert bool(np.all(first_out < second_out))
    return BilateralPositions(
        batch.participants, batch.currencies, first_out, second_out, code, net
    )


@dataclass(frozen=True, slots=True, eq=False)
class CappedNetting:
    """The settled set under net debit caps and the payments deferred to a later cycle.

    ``settled`` is a boolean mask over the batch; ``deferred`` the indices not settled, ascending,
    in the order they were deferred available as ``deferral_order``. ``positions`` are the net
    positions of the settled set, which respect every cap.
    """

    settled: np.ndarray
    deferred: np.ndarray
    deferral_order: np.ndarray
    positions: NetPositions
    rounds: int


def net_with_caps(
    batch: PaymentBatch,
    caps_minor: Mapping[tuple[str, str], int],
    *,
    cap_default_minor: int | None = None,
) -> CappedNetting:
    """Net the batch, deferring payments until every net debit is within its cap.

    ``caps_minor[(participant, currency)]`` is the largest net debit allowed (>= 0). Pairs not
    listed get ``cap_default_minor``; None means uncapped.

    Deferral algorithm (deterministic): while some (participant, currency) position is below
    ``-cap``, take the worst breach (largest shortfall; ties: lowest participant index, then
    currency index); defer that participant's settled outgoing payments in that currency in
    removal order - lowest ``priority`` first, then latest in the batch first - until its own breach
    is cured; deferring lowers each payee's position, so repeat. Each round defers at least one
    payment, so there are at most ``len(batch)`` rounds. Currencies never interact, so the result
    equals running the same procedure one currency at a time.
    """
    count, columns = len(batch.participants), len(batch.currencies)
    caps_array = _caps_array(batch, caps_minor, cap_default_minor)
    flat_payer = batch.payer * columns + batch.currency
    # Removal order inside each (payer, currency) group: priority ascending, then index descending.
    index = np.arange(len(batch), dtype=np.int64)
    order = np.lexsort((-index, batch.priority, flat_payer))
    group_start = np.searchsorted(flat_payer[order], np.arange(count * columns + 1)).tolist()
    # The loop runs on Python ints: exact, and far cheaper per step than numpy calls.
    positions = multilateral_net(batch).net_minor.reshape(-1).tolist()
    caps = caps_array.tolist()
    removal = order.tolist()
    amounts = batch.amount_minor.tolist()
    flat_payee = (batch.payee * columns + batch.currency).tolist()
    cursor = group_start[:-1]
    # Max-heap of breaches as (-shortfall, flat index): the worst first, ties by lowest index.
    heap = [(positions[i] + caps[i], i) for i in range(len(caps)) if -positions[i] > caps[i]]
    heapq.heapify(heap)
    deferred: list[int] = []
    rounds = 0
    while heap:
        key, worst = heapq.heappop(heap)
        if key != positions[worst] + caps[worst] or key >= 0:
            continue  # stale: this participant's shortfall changed since it was queued
        rounds += 1
        position, start, end = positions[worst], cursor[worst], group_start[worst + 1]
        while position < -caps[worst]:
            assert start < end, "deferring all outgoing payments always cures a breach"
            payment = removal[start]
            start += 1
            position += amounts[payment]
            payee = flat_payee[payment]
            positions[payee] -= amounts[payment]
            if -positions[payee] > caps[payee]:
                heapq.heappush(heap, (positions[payee] + caps[payee], payee))
            deferred.append(payment)
        positions[worst], cursor[worst] = position, start
    assert rounds <= len(batch), "each round defers at least one payment"
    settled = np.ones(len(batch), dtype=bool)
    deferral_order = np.array(deferred, dtype=np.int64)
    settled[deferral_order] = False
    return _capped_result(batch, settled, deferral_order, caps_array, rounds)


def _caps_array(
    batch: PaymentBatch, caps_minor: Mapping[tuple[str, str], int], cap_default_minor: int | None
) -> np.ndarray:
    columns = len(batch.currencies)
    # A net debit can never exceed the batch's total value (<= AMOUNT_MAX): that is "uncapped".
    default = AMOUNT_MAX if cap_default_minor is None else cap_default_minor
    caps = np.full(len(batch.participants) * columns, default, dtype=np.int64)
    participant_index = {bic: i for i, bic in enumerate(batch.participants)}
    currency_index = {code: c for c, code in enumerate(batch.currencies)}
    for (participant, code), cap in caps_minor.items():
        if not isinstance(cap, int) or isinstance(cap, bool) or not 0 <= cap <= AMOUNT_MAX:
            raise ValueError(f"cap for {participant}/{code} must be an int in 0..AMOUNT_MAX")
        if participant in participant_index and code in currency_index:
            caps[participant_index[participant] * columns + currency_index[code]] = cap
    if int(caps.min(initial=0)) < 0:
        raise ValueError("cap_default_minor must be >= 0")
    return caps


def _capped_result(
    batch: PaymentBatch,
    settled: np.ndarray,
    deferral_order: np.ndarray,
    caps: np.ndarray,
    rounds: int,
) -> CappedNetting:
    positions = multilateral_net(batch, settled)
    # The caps hold, and nothing was lost: settled + deferred is the whole batch, exactly once.
    if bool(np.any(positions.net_minor.reshape(-1) < -caps)):
        raise InvariantViolation("a net debit cap is breached after deferral")
    unique = len(np.unique(deferral_order)) == len(deferral_order)
    if not unique or int(settled.sum()) + len(deferral_order) != len(batch):
        raise InvariantViolation("deferral lost or duplicated a payment")
    settled_value = exact_total(batch.amount_minor[settled])
    deferred_value = exact_total(batch.amount_minor[deferral_order])
    assert settled_value + deferred_value == exact_total(batch.amount_minor)
    return CappedNetting(settled, np.sort(deferral_order), deferral_order, positions, rounds)
