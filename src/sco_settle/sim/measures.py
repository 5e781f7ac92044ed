"""The comparison's measures of value and liquidity: one definition, used by every table of it.

Every measure is per currency, in its minor units, and counts payments at payment level: the
payer is debited what it pays, the payee credited what it receives. Both sides are valued at the
calibration's exact mid rates (``Rates.convert_minor``, floored): a fixed sent amount delivers
its mid equivalent, a fixed received amount costs its mid equivalent. So a mode's figures depend
only on *which* payments settled and *when*, never on its FX providers' spreads; what
intermediaries (FX providers, correspondents, swap-line facilities) hold is not counted.

- **gross**: the sum of what payers pay in the currency.
- **multilateral net** (``net``): for each participant, its net debit in the currency over the
  day (paid minus received, when positive), summed over participants (and over days). Not the
  per-cycle ``net`` of ``liquidity.csv`` (``payments.liquidity_use``), which adds each DNS
  cycle's net debits.
- **liquidity used**: for each participant, the largest cumulative net debit over the day in the
  order payments settled, summed over participants (and over days). Payments settled in one
  chain together (an LSM chain, a netting cycle) count together; payments settled gross count
  one after another, even when they went to the ledger in one batch.
- **upper bound** (BoF-PSS2): liquidity used when every payment of the workload settles alone
  at its arrival (arrival order, ties by payment id): what each participant needs to settle all
  its payments at once in RTGS with no queue, i.e. the largest cumulative net outflow over the day.
- **lower bound** (BoF-PSS2): liquidity used when all of a day's payments settle together at
  the end of the day: each participant's end-of-day multilateral net debit, i.e. ``net`` of the
  whole workload.

All four are ``payments.liquidity_use`` counts (its ``gross_minor`` and ``peak_minor``) of
flows timed as said above, so that the bounds and the modes are measured by one implementation.
Positions restart every morning (intraday liquidity).

Invariants (per participant, hence per currency): lower bound <= upper bound; and for any
settled set, net <= liquidity used (the end-of-day position is one of the cumulative positions).
Not invariants, and why: a mode's liquidity used can pass the upper bound when it delays a
participant's incoming payments more than its outgoing ones (queued incoming, or a cycle after
the payer's gross payments); and it can fall below the lower bound when it settles fewer
payments than the workload holds (rejections), being then a measure of another set of payments.
The comparison therefore reports each mode's settled share and its own ``net`` next to it.
Pure, exact and deterministic: integers only, no clock, no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from sco_settle.payments.liquidity_use import SettledFlow, liquidity_by_currency
from sco_settle.payments.model import PaymentStatus
from sco_settle.sim.calibration import Rates
from sco_settle.sim.run import EPOCH_NS, NS_PER_SECOND, SimResult
from sco_settle.sim.workload import CROSS_BORDER, DOMESTIC, SECONDS_PER_DAY, SimPayment

DAY_NS = SECONDS_PER_DAY * NS_PER_SECOND


class Scope(enum.StrEnum):
    """Which payments a headline counts: every headline is given for each."""

    ALL = "all"
    CROSS_BORDER = CROSS_BORDER
    DOMESTIC = DOMESTIC

    def includes(self, sim: SimPayment) -> bool:
        return self is Scope.ALL or sim.kind == self.value


@dataclass(frozen=True, slots=True)
class Liquidity:
    """One currency's measures of a settled set (minor units), as the module docstring defines
    them; ``net_minor`` and ``upper_minor`` are that set's own lower and upper bounds."""

    gross_minor: int
    net_minor: int
    used_minor: int
    upper_minor: int


@dataclass(frozen=True, slots=True)
class Bounds:
    """One currency's BoF-PSS2 bounds on a workload (minor units)."""

    gross_minor: int
    lower_minor: int
    upper_minor: int


def valued(sim: SimPayment, rates: Rates, day: int, settled_at: int) -> SettledFlow:
    """``sim`` as a flow at mid value, settled on ``day`` in the chain ``settled_at``."""
    payment = sim.payment
    if payment.fixed_currency == payment.currency:  # a fixed sent amount
        paid = payment.amount_minor
        received = rates.convert_minor(paid, payment.currency, payment.creditor_currency)
    else:  # a fixed received amount
        received = payment.amount_minor
        paid = rates.convert_minor(received, payment.creditor_currency, payment.currency)
    return SettledFlow(
        day,
        settled_at,
        payment.debtor_agent,
        payment.currency,
        paid,
        payment.creditor_agent,
        payment.creditor_currency,
        received,
    )


def workload_bounds(
    payments: Iterable[SimPayment], rates: Rates, scope: Scope
) -> dict[str, Bounds]:
    """Currency -> the bounds of the payments of ``scope`` (all of them, settled or not)."""
    chosen = sorted(
        (sim for sim in payments if scope.includes(sim)),
        key=lambda sim: (sim.arrival_s, sim.payment.payment_id),
    )
    alone = [valued(sim, rates, sim.day, order) for order, sim in enumerate(chosen)]
    together = [valued(sim, rates, sim.day, sim.day) for sim in chosen]
    upper = liquidity_by_currency(alone)
    lower = liquidity_by_currency(together)
    return {
        code: Bounds(use.gross_minor, lower[code].peak_minor, use.peak_minor)
        for code, use in sorted(upper.items())
    }


def liquidity_used(result: SimResult, rates: Rates, scope: Scope) -> dict[str, Liquidity]:
    """Currency -> gross, net and liquidity used of the payments of ``scope`` that settled in
    ``result``, in the order and groups they settled in."""
    meta = {sim.payment.payment_id: sim for sim in result.payments}
    flows: list[SettledFlow] = []
    settled: list[SimPayment] = []
    for order, payment_id in enumerate(result.settled_order):
        sim, final = meta[payment_id], result.finals[payment_id]
        assert final.status is PaymentStatus.SETTLED, payment_id
        if not scope.includes(sim):
            continue
        day = (final.at_ns - EPOCH_NS) // DAY_NS
        # Payments settled alone get a chain of their own; the others share their chain's.
        chain = -1 - order if final.alone else final.settled_at
        flows.append(valued(sim, rates, day, chain))
        settled.append(sim)
    used = liquidity_by_currency(flows)
    # The settled set's own bounds: the same payments, at their arrival (a payment settles on
    # the day it arrives: the run rejects what is left at closing).
    own = workload_bounds(settled, rates, Scope.ALL)
    return {
        code: Liquidity(
            use.gross_minor, own[code].lower_minor, use.peak_minor, own[code].upper_minor
        )
        for code, use in sorted(used.items())
    }


def in_cny(values: dict[str, int], rates: Rates) -> int:
    """Currency -> minor units, added up as CNY fen at the mid (each floored)."""
    return sum(rates.to_cny_minor(amount, code) for code, amount in sorted(values.items()))


__all__ = [
    "Bounds",
    "Liquidity",
    "Scope",
    "in_cny",
    "liquidity_used",
    "valued",
    "workload_bounds",
]
