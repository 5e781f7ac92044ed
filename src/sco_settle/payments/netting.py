"""Netting: multilateral and bilateral net positions, and deferral under net debit limits.

Two shapes of input share one core:
- ``PaymentBatch``: one payer, one payee and one currency per instruction (``NettingInstruction``),
  positions per (participant, currency); ``net_with_caps`` defers under per-participant caps.
- ``NettingLegs``: each instruction is one or more legs between *position holders* (for deferred
  net settlement, ``payments.dns``: the ledger accounts of a payment's planned chain), and each
  holder belongs to a (participant, currency) pair; ``net_legs`` defers under per-holder
  capacities and per-(participant, currency) caps.

Deferral rule (the only one: ``net_with_caps`` and ``net_legs`` both run it, and so does every
deferred-net-settlement cycle). A *limit* is the largest net debit allowed to one holder (its
capacity: for a ledger account, its available balance plus its credit limit) or to one
participant's holders in one currency together (its cap). An instruction *debits* a limit when
its legs leave that limit's holders a net debit; an instruction that only passes through a
holder (credited and debited alike) does not, so deferring it could not help and it never is.
1. Net every instruction. While some limit is breached, take the worst breach: the largest
   shortfall; ties go to holders' capacities before participants' caps, then to the lowest index
   (holders, and (participant, currency) pairs, are indexed in sorted order).
2. Defer the instructions still settling that debit it, in removal order - the lowest
   ``priority`` first, and among equal priorities the latest in the batch first - until that
   breach is cured.
3. A deferred instruction no longer pays the holders it credited, which may breach their limits
   in turn: repeat from 1.
Each round defers at least one instruction, so there are at most as many rounds as instructions,
and deferring every instruction that debits a limit always cures it (limits are >= 0). In a
``PaymentBatch`` each (participant, currency) is one holder whose capacity is its cap.

Invariants:
- Net positions sum to zero in every currency: netting moves no value in or out of the network.
  Checked on every result with an explicit check that raises ``InvariantViolation`` (not an
  ``assert``, which ``python -O`` would strip).
- Amounts are int64 minor units. A batch's total value is at most ``AMOUNT_MAX``, and so is each
  currency's total of a ``NettingLegs`` (checked exactly on construction), so no int64 sum inside
  netting can overflow.
- Deferral loses nothing: every instruction is either in the settled set or returned as
  deferred, exactly once, and the positions are exactly those of the settled set, within every
  limit (checked, ``InvariantViolation``).
- Results depend only on the input: participants, currencies, holders and limits are indexed in
  sorted order and every tie is broken by index, never by hash or memory order.

A net position is *incoming minus outgoing*: positive means the participant (or holder) receives
at settlement, negative means it pays (a net debit).
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


class NettingInstruction(NamedTuple):
    """One instruction to net (payer pays payee an amount in a currency): the row form of a
    ``PaymentBatch``. Not a payment of the engine (``payments.model.Payment``), only what netting
    needs of one.

    ``priority``: larger settles in preference (is deferred last). Order in the batch is the
    submission order: among equal priorities, later instructions are deferred first.
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
    def from_instructions(cls, instructions: Iterable[NettingInstruction]) -> PaymentBatch:
        """Build a batch from rows (convenient; use ``from_arrays`` for millions of them)."""
        rows = [NettingInstruction(*row) for row in instructions]
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

    Which payments are deferred is the module's deferral rule, with each (participant, currency)
    as one holder whose capacity is its cap: the worst breach first (ties: lowest participant
    index, then currency index), that participant's outgoing payments in that currency in removal
    order until its breach is cured, and repeat. Currencies never interact, so the result equals
    running the same procedure one currency at a time.
    """
    columns = len(batch.currencies)
    caps_array = _caps_array(batch, caps_minor, cap_default_minor)
    holders = len(caps_array)
    # Each (participant, currency) is a holder (index participant * columns + currency, which is
    # also the sorted order of the pairs) and its own group; the caps are the holders' limits.
    # The batch was validated when it was built, so its legs need no second check.
    legs = NettingLegs(
        holders=tuple(range(holders)),
        groups=tuple((bic, code) for bic in batch.participants for code in batch.currencies),
        holder_group=np.arange(holders, dtype=np.int64),
        instruction=np.arange(len(batch), dtype=np.int64),
        debit=batch.payer * columns + batch.currency,
        credit=batch.payee * columns + batch.currency,
        amount_minor=batch.amount_minor,
        priority=batch.priority,
    )
    uncapped_groups = np.full(holders, AMOUNT_MAX, dtype=np.int64)
    deferral = _defer_over_limits(legs, np.concatenate([caps_array, uncapped_groups]))
    settled = np.ones(len(batch), dtype=bool)
    deferral_order = np.array(deferral.order, dtype=np.int64)
    settled[deferral_order] = False
    return _capped_result(batch, settled, deferral_order, caps_array, deferral.rounds)


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
        _check_limit(cap, f"cap for {participant}/{code}")
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


# -- netting legs between position holders (deferred net settlement) -------------------------


class NettingLeg(NamedTuple):
    """One leg of an instruction: ``amount_minor`` moves from the debit holder to the credit
    holder (holders are ids, e.g. ledger account ids; both in one currency)."""

    instruction: int
    debit_holder: int
    credit_holder: int
    amount_minor: int


@dataclass(frozen=True, slots=True, eq=False)
class NettingLegs:
    """Instructions as legs between position holders, columnar.

    Constraints (checked by ``from_arrays``):
    - ``holders`` are distinct ints in sorted order; ``groups`` distinct (participant, currency)
      pairs in sorted order, each currency an ISO 4217 code; ``holder_group[h]`` is the index of
      the group of ``holders[h]``.
    - Legs: ``instruction`` indexes ``priority`` (one entry per instruction; an instruction may
      have no legs); ``debit``/``credit`` index ``holders``, differ, and are in the same currency;
      ``amount_minor > 0``; each currency's total value <= ``AMOUNT_MAX``.
    """

    holders: tuple[int, ...]
    groups: tuple[tuple[str, str], ...]
    holder_group: np.ndarray
    instruction: np.ndarray
    debit: np.ndarray
    credit: np.ndarray
    amount_minor: np.ndarray
    priority: np.ndarray

    def __len__(self) -> int:
        """The number of instructions."""
        return int(self.priority.shape[0])

    @property
    def holder_currency(self) -> tuple[str, ...]:
        return tuple(self.groups[g][1] for g in self.holder_group.tolist())

    @classmethod
    def from_legs(
        cls,
        legs: Iterable[NettingLeg | tuple[int, int, int, int]],
        *,
        priority: Sequence[int],
        group_of: Mapping[int, tuple[str, str]],
    ) -> NettingLegs:
        """Build from rows. ``priority[i]`` is instruction ``i``'s (larger settles in preference;
        the order of ``priority`` is the batch order); ``group_of[holder]`` its (participant,
        currency). Raises ``ValueError`` on bad input."""
        rows = [NettingLeg(*leg) for leg in legs]
        for row in rows:
            if not isinstance(row.amount_minor, int) or isinstance(row.amount_minor, bool):
                raise ValueError(f"amount_minor must be an int, got {row.amount_minor!r}")
        holders = sorted({row.debit_holder for row in rows} | {row.credit_holder for row in rows})
        missing = [holder for holder in holders if holder not in group_of]
        if missing:
            raise ValueError(f"holders {missing} have no (participant, currency)")
        groups = sorted({group_of[holder] for holder in holders})
        holder_index = {holder: index for index, holder in enumerate(holders)}
        group_index = {group: index for index, group in enumerate(groups)}

        def column(values: Iterable[int], count: int) -> np.ndarray:
            return np.fromiter(values, dtype=np.int64, count=count)

        return cls.from_arrays(
            holders,
            groups,
            holder_group=column((group_index[group_of[h]] for h in holders), len(holders)),
            instruction=column((row.instruction for row in rows), len(rows)),
            debit=column((holder_index[row.debit_holder] for row in rows), len(rows)),
            credit=column((holder_index[row.credit_holder] for row in rows), len(rows)),
            amount_minor=column((row.amount_minor for row in rows), len(rows)),
            priority=column(priority, len(priority)),
        )

    @classmethod
    def from_arrays(
        cls,
        holders: Sequence[int],
        groups: Sequence[tuple[str, str]],
        *,
        holder_group: np.ndarray,
        instruction: np.ndarray,
        debit: np.ndarray,
        credit: np.ndarray,
        amount_minor: np.ndarray,
        priority: np.ndarray,
    ) -> NettingLegs:
        """Validate columns (vectorised) and build. Raises ``ValueError`` on bad input."""
        holders, groups = tuple(holders), tuple((str(p), str(c)) for p, c in groups)
        if list(holders) != sorted(set(holders)):
            raise ValueError("holders must be distinct and sorted")
        if list(groups) != sorted(set(groups)):
            raise ValueError("groups must be distinct and sorted")
        for participant, code in groups:
            if not participant:
                raise ValueError("a group's participant must not be empty")
            _currency_check(code)
        columns = [np.asarray(c) for c in (instruction, debit, credit, amount_minor)]
        extra = [np.asarray(holder_group), np.asarray(priority)]
        if any(c.ndim != 1 or c.shape != columns[0].shape for c in columns):
            raise ValueError("leg columns must be one-dimensional and of equal length")
        if any(c.ndim != 1 for c in extra) or extra[0].shape != (len(holders),):
            raise ValueError(
                "holder_group needs one entry per holder; priority one per instruction"
            )
        if any(c.dtype.kind not in "iu" for c in columns + extra):
            raise ValueError("netting columns must be integer arrays (amounts in minor units)")
        instruction, debit, credit, amount_minor = (c.astype(np.int64, copy=False) for c in columns)
        holder_group, priority = (c.astype(np.int64, copy=False) for c in extra)
        _check_indices(holder_group, len(groups), "holder_group")
        _check_indices(instruction, len(priority), "instruction")
        _check_indices(debit, len(holders), "debit")
        _check_indices(credit, len(holders), "credit")
        if len(debit) and bool(np.any(debit == credit)):
            raise ValueError("a leg's debit and credit holders must differ")
        codes = sorted({code for _, code in groups})
        group_currency = np.array([codes.index(c) for _, c in groups], dtype=np.int64)
        leg_currency = group_currency[holder_group[debit]] if len(debit) else debit
        if len(debit) and bool(np.any(leg_currency != group_currency[holder_group[credit]])):
            raise ValueError("a leg's debit and credit holders must be in the same currency")
        if len(amount_minor) and int(amount_minor.min()) <= 0:
            raise ValueError("every amount_minor must be positive")
        for index, code in enumerate(codes):
            if exact_total(amount_minor[leg_currency == index]) > AMOUNT_MAX:
                raise ValueError(f"the legs' total value in {code} exceeds AMOUNT_MAX")
        if len(priority) * (len(holders) + len(groups)) >= 2**62:
            raise ValueError("too many instructions and limits for one netting: split it")
        return cls(
            holders, groups, holder_group, instruction, debit, credit, amount_minor, priority
        )


class NetDebitLimit(NamedTuple):
    """A limit of the deferral rule: ``holder``'s capacity (``participant``/``currency`` are its
    group), or, when ``holder`` is None, the cap of ``participant`` in ``currency``."""

    participant: str
    currency: str
    holder: int | None


@dataclass(frozen=True, slots=True, eq=False)
class LegNetting:
    """The settled set of a ``NettingLegs`` under its limits, and the instructions deferred.

    ``settled`` is a boolean mask over the instructions; ``deferral_order`` the deferred ones in
    the order they were deferred, each for the limit at the same place of ``deferral_limits``;
    ``net_minor[h]`` is the net position of ``holders[h]`` over the settled set, within every
    limit.
    """

    legs: NettingLegs
    settled: np.ndarray
    deferral_order: np.ndarray
    deferral_limits: tuple[NetDebitLimit, ...]
    net_minor: np.ndarray
    rounds: int

    def positions(self) -> dict[int, int]:
        """Every holder's net position (zero included), by holder id."""
        return dict(zip(self.legs.holders, self.net_minor.tolist(), strict=True))

    def net_debit_minor(self) -> dict[str, int]:
        """Per currency, the sum of the net debits: the liquidity net settlement moves."""
        totals: dict[str, int] = {}
        for code, position in zip(self.legs.holder_currency, self.net_minor.tolist(), strict=True):
            if position < 0:
                totals[code] = totals.get(code, 0) - position
        return dict(sorted(totals.items()))

    def gross_minor(self) -> dict[str, int]:
        """Per currency, the value of the settled instructions' legs."""
        legs = self.legs
        kept = self.settled[legs.instruction]
        currencies = legs.holder_currency
        totals: dict[str, int] = {}
        for debit, amount in zip(
            legs.debit[kept].tolist(), legs.amount_minor[kept].tolist(), strict=True
        ):
            totals[currencies[debit]] = totals.get(currencies[debit], 0) + amount
        return dict(sorted(totals.items()))


def net_legs(
    legs: NettingLegs,
    capacity_minor: Mapping[int, int],
    caps_minor: Mapping[tuple[str, str], int],
) -> LegNetting:
    """Net the legs per holder, deferring instructions (the module's deferral rule) until every
    holder's net debit is within its capacity and every (participant, currency)'s within its cap.

    ``capacity_minor[holder]`` and ``caps_minor[(participant, currency)]`` are the largest net
    debits allowed (ints in 0..``AMOUNT_MAX``); holders and pairs not listed are unlimited, and
    entries for holders or pairs the legs do not name are ignored.
    """
    holder_index = {holder: index for index, holder in enumerate(legs.holders)}
    group_index = {group: index for index, group in enumerate(legs.groups)}
    limit = np.full(len(legs.holders) + len(legs.groups), AMOUNT_MAX, dtype=np.int64)
    for holder, capacity in capacity_minor.items():
        _check_limit(capacity, f"capacity of holder {holder}")
        if holder in holder_index:
            limit[holder_index[holder]] = capacity
    for (participant, code), cap in caps_minor.items():
        _check_limit(cap, f"cap for {participant}/{code}")
        if (participant, code) in group_index:
            limit[len(legs.holders) + group_index[(participant, code)]] = cap
    deferral = _defer_over_limits(legs, limit)
    settled = np.ones(len(legs), dtype=bool)
    deferral_order = np.array(deferral.order, dtype=np.int64)
    settled[deferral_order] = False
    net = _holder_positions(legs, settled)
    _check_leg_result(legs, settled, deferral_order, net, limit)
    described = tuple(_describe_limit(legs, index) for index in deferral.limits)
    return LegNetting(legs, settled, deferral_order, described, net, deferral.rounds)


def _check_limit(value: int, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= AMOUNT_MAX:
        raise ValueError(f"{what} must be an int in 0..AMOUNT_MAX, got {value!r}")


def _describe_limit(legs: NettingLegs, index: int) -> NetDebitLimit:
    if index < len(legs.holders):
        participant, code = legs.groups[int(legs.holder_group[index])]
        return NetDebitLimit(participant, code, legs.holders[index])
    participant, code = legs.groups[index - len(legs.holders)]
    return NetDebitLimit(participant, code, None)


def _holder_positions(legs: NettingLegs, settled: np.ndarray) -> np.ndarray:
    kept = settled[legs.instruction]
    net = np.zeros(len(legs.holders), dtype=np.int64)
    np.add.at(net, legs.debit[kept], -legs.amount_minor[kept])
    np.add.at(net, legs.credit[kept], legs.amount_minor[kept])
    return net


def _check_leg_result(
    legs: NettingLegs,
    settled: np.ndarray,
    deferral_order: np.ndarray,
    net: np.ndarray,
    limit: np.ndarray,
) -> None:
    """Raise ``InvariantViolation`` unless the positions conserve value per currency, respect
    every limit, and settled plus deferred is every instruction exactly once."""
    groups = np.zeros(len(legs.groups), dtype=np.int64)
    np.add.at(groups, legs.holder_group, net)
    by_currency: dict[str, int] = {}
    for (_, code), total in zip(legs.groups, groups.tolist(), strict=True):
        by_currency[code] = by_currency.get(code, 0) + total
    if any(by_currency.values()):
        raise InvariantViolation(f"net positions do not sum to zero per currency: {by_currency}")
    if bool(np.any(-np.concatenate([net, groups]) > limit)):
        raise InvariantViolation("a net debit limit is breached after deferral")
    unique = len(np.unique(deferral_order)) == len(deferral_order)
    if not unique or int(settled.sum()) + len(deferral_order) != len(legs):
        raise InvariantViolation("deferral lost or duplicated an instruction")


class _Deferral(NamedTuple):
    order: list[int]  # instructions, in the order deferred
    limits: list[int]  # for each, the index of the limit it was deferred for
    rounds: int


def _defer_over_limits(legs: NettingLegs, limit: np.ndarray) -> _Deferral:
    """The deferral rule over ``limit`` (per limit index: the holders, then the groups; a limit
    of ``AMOUNT_MAX`` can never be breached, since no net debit exceeds a currency's total)."""
    active = limit < AMOUNT_MAX
    instruction, limit_of, delta = _effects(legs, active)
    positions = np.zeros(len(limit), dtype=np.int64)
    np.add.at(positions, limit_of, delta)
    # Removal order inside each limit: priority ascending, then instruction index descending.
    debits = delta < 0
    candidate, candidate_limit = instruction[debits], limit_of[debits]
    order = np.lexsort((-candidate, legs.priority[candidate], candidate_limit))
    candidate, candidate_limit = candidate[order], candidate_limit[order]
    breached = np.flatnonzero(active & (-positions > limit)).tolist()
    return _defer_loop(
        breached,
        positions.tolist(),
        limit.tolist(),
        candidate.tolist(),
        np.searchsorted(candidate_limit, np.arange(len(limit) + 1)).tolist(),
        np.searchsorted(instruction, np.arange(len(legs) + 1)).tolist(),
        limit_of.tolist(),
        delta.tolist(),
        len(legs),
    )


def _effects(legs: NettingLegs, active: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What each instruction does to each active limit: (instruction, limit index, net change),
    one row per pair with a non-zero change, sorted by instruction."""
    holders, count = len(legs.holders), len(active)
    groups_active = bool(active[holders:].any())
    single = len(legs.instruction) == len(legs) and bool(
        np.all(legs.instruction == np.arange(len(legs)))
    )
    if single and not groups_active:
        # One leg per instruction, in order (a ``PaymentBatch``): its debit and credit holders
        # differ, so no (instruction, limit) pair repeats and nothing needs adding up or sorting.
        instruction = np.repeat(legs.instruction, 2)
        limit_of = np.column_stack([legs.debit, legs.credit]).reshape(-1)
        delta = np.column_stack([-legs.amount_minor, legs.amount_minor]).reshape(-1)
        keep = active[limit_of]
        return instruction[keep], limit_of[keep], delta[keep]
    instruction = np.concatenate([legs.instruction, legs.instruction])
    limit_of = np.concatenate([legs.debit, legs.credit])
    delta = np.concatenate([-legs.amount_minor, legs.amount_minor])
    if groups_active:  # A holder's legs count for its group's cap too.
        limit_of = np.concatenate([limit_of, holders + legs.holder_group[limit_of]])
        instruction, delta = np.tile(instruction, 2), np.tile(delta, 2)
    keep = active[limit_of]
    key = instruction[keep] * count + limit_of[keep]
    order = np.argsort(key, kind="stable")
    key, delta = key[order], delta[keep][order]
    if not len(key):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    starts = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
    summed = np.add.reduceat(delta, starts)
    nonzero = summed != 0
    instruction, limit_of = np.divmod(key[starts][nonzero], count)
    return instruction, limit_of, summed[nonzero]


def _defer_loop(
    breached: list[int],
    positions: list[int],
    limit: list[int],
    candidate: list[int],
    candidate_start: list[int],
    effect_start: list[int],
    effect_limit: list[int],
    effect_delta: list[int],
    instructions: int,
) -> _Deferral:
    """Steps 1-3 of the deferral rule, on Python ints: exact, and far cheaper per step than numpy
    calls. ``candidate[candidate_start[k]:candidate_start[k + 1]]`` are the instructions that
    debit limit ``k``, in removal order; ``effect_*[effect_start[i]:effect_start[i + 1]]`` what
    instruction ``i`` adds to each limit's position."""
    cursor = candidate_start[:-1]
    # Max-heap of breaches as (-shortfall, limit index): the worst first, ties by lowest index.
    heap = [(positions[k] + limit[k], k) for k in breached]
    heapq.heapify(heap)
    push, pop = heapq.heappush, heapq.heappop
    deferred = bytearray(instructions)
    order: list[int] = []
    limits: list[int] = []
    rounds = 0
    while heap:
        key, worst = pop(heap)
        position, bound = positions[worst], -limit[worst]
        if key != position - bound or key >= 0:
            continue  # Stale: this limit's position changed since it was queued.
        rounds += 1
        start, end = cursor[worst], candidate_start[worst + 1]
        while position < bound:
            if start >= end:
                raise InvariantViolation("deferring every debit of a limit must cure its breach")
            chosen = candidate[start]
            start += 1
            if deferred[chosen]:
                continue  # Deferred earlier, for another limit.
            deferred[chosen] = 1
            order.append(chosen)
            limits.append(worst)
            for effect in range(effect_start[chosen], effect_start[chosen + 1]):
                touched = effect_limit[effect]
                if touched == worst:
                    position -= effect_delta[effect]
                    continue
                moved = positions[touched] - effect_delta[effect]
                positions[touched] = moved
                if moved < -limit[touched]:
                    push(heap, (moved + limit[touched], touched))
        positions[worst], cursor[worst] = position, start
    if rounds > instructions:
        raise InvariantViolation("each round of deferral defers at least one instruction")
    return _Deferral(order, limits, rounds)
