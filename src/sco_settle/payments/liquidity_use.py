"""Liquidity needed gross against liquidity used: one definition for every report of it.

The simulator's reports (``sim/report.py``, ``liquidity.csv``) and the dashboard's liquidity
view (``server/dashboard/views.py``) both count with this module, so that "what the
liquidity-saving mechanism and netting saved" means the same on both. Per day and currency, in
minor units of that currency:

- gross: the sum of what settled payments paid in it, i.e. what payers would have to fund if
  every payment settled on its own;
- peak: for each participant, the largest cumulative net debit over the day (payments settled
  at once, in one ledger chain, are netted together), summed over participants. In RTGS this is
  the intraday liquidity actually used with the queue and the liquidity-saving mechanism;
- net (DNS): for each settlement (one chain: a cycle in DNS), each participant's net debit in
  it, summed over participants and settlements;
- used: net in DNS, peak in every other mode; saved: gross - used.

Positions restart at each day's start (intraday liquidity). Payments are given in settlement
order; consecutive payments with the same ``settled_at`` (the ledger timestamp of their chain)
settled at once. Pure and exact: integers only, no clock, no I/O.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from sco_settle.payments.modes import Mode


@dataclass(frozen=True, slots=True)
class SettledFlow:
    """One settled payment, as the liquidity count needs it."""

    day: int  # the day it settled on (any numbering; positions restart when it changes)
    settled_at: int  # the ledger timestamp of its chain: equal for payments settled at once
    debtor_agent: str
    currency: str
    amount_minor: int  # what the debtor agent paid, in ``currency``
    creditor_agent: str
    creditor_currency: str
    delivered_minor: int  # what the creditor agent received, in ``creditor_currency``


@dataclass(slots=True)
class LiquidityUse:
    """Gross, peak and net liquidity of one currency (minor units), as defined above."""

    gross_minor: int = 0
    peak_minor: int = 0
    net_minor: int = 0

    def used_minor(self, mode: Mode) -> int:
        return self.net_minor if mode is Mode.DNS else self.peak_minor

    def saved_minor(self, mode: Mode) -> int:
        return self.gross_minor - self.used_minor(mode)

    def add(self, other: LiquidityUse) -> None:
        self.gross_minor += other.gross_minor
        self.peak_minor += other.peak_minor
        self.net_minor += other.net_minor


def everyone(participant: str, currency: str) -> bool:
    return True


def settled_at_once(settled: Iterable[SettledFlow]) -> Iterator[list[SettledFlow]]:
    """The payments grouped by chain, in settlement order."""
    group: list[SettledFlow] = []
    for flow in settled:
        if group and group[0].settled_at != flow.settled_at:
            yield group
            group = []
        group.append(flow)
    if group:
        yield group


def liquidity_by_day(
    settled: Iterable[SettledFlow],
    counted: Callable[[str, str], bool] = everyone,
) -> dict[tuple[int, str], LiquidityUse]:
    """(day, currency) -> its use. ``counted(participant, currency)`` limits the count to some
    participants' positions (a participant's own, say); gross counts their payments paid."""
    cells: dict[tuple[int, str], LiquidityUse] = defaultdict(LiquidityUse)
    position: dict[tuple[str, str], int] = defaultdict(int)
    peak: dict[tuple[int, str, str], int] = defaultdict(int)
    current_day: int | None = None
    for group in settled_at_once(settled):
        day = group[0].day
        if day != current_day:  # Intraday liquidity: positions restart every morning.
            position.clear()
            current_day = day
        net: dict[tuple[str, str], int] = defaultdict(int)
        for flow in group:
            if counted(flow.debtor_agent, flow.currency):
                cells[(day, flow.currency)].gross_minor += flow.amount_minor
            net[(flow.debtor_agent, flow.currency)] -= flow.amount_minor
            net[(flow.creditor_agent, flow.creditor_currency)] += flow.delivered_minor
        for (bic, code), amount in sorted(net.items()):
            if not counted(bic, code):
                continue
            position[(bic, code)] += amount
            key = (day, bic, code)
            peak[key] = max(peak[key], -position[(bic, code)])
            if amount < 0:
                cells[(day, code)].net_minor += -amount
    for (day, _, code), value in peak.items():
        cells[(day, code)].peak_minor += value
    return dict(cells)


def liquidity_by_currency(
    settled: Iterable[SettledFlow],
    counted: Callable[[str, str], bool] = everyone,
) -> dict[str, LiquidityUse]:
    """currency -> its use summed over the days (as ``liquidity.csv``'s "all" rows)."""
    totals: dict[str, LiquidityUse] = defaultdict(LiquidityUse)
    for (_, code), use in sorted(liquidity_by_day(settled, counted).items()):
        totals[code].add(use)
    return dict(totals)
