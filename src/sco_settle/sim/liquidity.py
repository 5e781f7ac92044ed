"""The simulator's central banks: each morning they draw swap-line tranches when their FX
facility runs low; each evening they repay maturing tranches with interest, or roll them over
when the facility still needs the money.

The policy is an ASSUMPTION of the simulation (no source says how SCO central banks size their
drawings), stated once here:
- A central bank draws only on an agreement drawable that day (``SwapLinePolicy``) and only if
  its state trades in the simulated corridors with the partner's state.
- At opening, when what its facility holds of the partner's currency is below
  ``threshold_share`` of the agreed size, it draws ``draw_share`` of the size (within the
  headroom) for ``months`` months at ``interest_rate`` a year.
- At end of day it repays each tranche maturing that day or earlier with interest; when its
  facility would then fall below the threshold, or cannot pay, it rolls the tranche over instead.
- The run starts mid-cycle: on the first day each such central bank holds one tranche drawn
  ``opening_age_days`` before (so a month's run sees maturities, repayments and rollovers).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

from sco_settle.domain.account_key import AccountKey
from sco_settle.domain.participants import ParticipantKind
from sco_settle.domain.transfer import Transfer
from sco_settle.ledger import BATCH_EVENTS_MAX, Ledger
from sco_settle.network import Network
from sco_settle.payments.fx import RateTable
from sco_settle.payments.plan import transfer_id_for
from sco_settle.payments.swap_lines import (
    Agreement,
    DrawRefused,
    SwapLineDesk,
    TrancheState,
)


@dataclass(frozen=True)
class DrawingPolicy:
    threshold_share: Fraction = Fraction(1, 10)
    draw_share: Fraction = Fraction(1, 10)
    months: int = 3
    interest_rate: Decimal = Decimal("0.025")
    opening_age_days: int = 75


@dataclass(frozen=True)
class TrancheEvent:
    """One drawing, repayment or rollover, as the report lists it."""

    day: int
    action: str  # draw | repay | rollover | refused
    drawer: str
    provider: str
    currency: str
    tranche_id: str
    principal_minor: int
    interest_minor: int  # in the drawer's currency
    detail: str = ""


@dataclass
class LineDay:
    """One side of a line at the end of one day."""

    day: int
    drawer: str
    provider: str
    currency: str
    size_minor: int
    drawn_minor: int
    facility_minor: int
    accrued_interest_minor: int  # in the drawer's currency
    status: str


@dataclass
class SwapLineOperator:
    desk: SwapLineDesk
    trading_countries: frozenset[frozenset[str]]
    policy: DrawingPolicy = field(default_factory=DrawingPolicy)
    events: list[TrancheEvent] = field(default_factory=list)
    days: list[LineDay] = field(default_factory=list)

    def _sides(self) -> list[Agreement]:
        return [
            side
            for side in self.desk.sides()
            if frozenset((side.drawer[4:6], side.provider[4:6])) in self.trading_countries
        ]

    def open_day(self, day: int, date: dt.date, rates: RateTable) -> None:
        """Draw where a facility runs low (on the first day, a tranche drawn earlier)."""
        for side in self._sides():
            value_date = date
            if day == 0:
                value_date = date - dt.timedelta(days=self.policy.opening_age_days)
            state = self.desk.state(side, date)
            threshold = side.size_minor * self.policy.threshold_share
            if not state.drawable or state.facility_minor >= threshold:
                continue
            wanted = side.size_minor * self.policy.draw_share
            principal = min(wanted.numerator // wanted.denominator, state.headroom_minor)
            if principal <= 0:
                continue
            try:
                terms = self.desk.draw(
                    side.drawer,
                    side.provider,
                    principal,
                    value_date,
                    self.policy.months,
                    self.policy.interest_rate,
                    rates,
                )
            except DrawRefused as refused:
                self._refused(day, side, refused)
                continue
            self.events.append(
                TrancheEvent(
                    day,
                    "draw",
                    side.drawer,
                    side.provider,
                    side.provider_currency,
                    terms.tranche_id,
                    principal,
                    0,
                    f"matures {terms.maturity}",
                )
            )

    def close_day(self, day: int, date: dt.date, rates: RateTable) -> None:
        """Repay or roll over what matures, then record every side's state."""
        for side in self._sides():
            state = self.desk.state(side, date)
            threshold = side.size_minor * self.policy.threshold_share
            held = state.facility_minor
            for tranche in state.tranches:
                terms = tranche.terms
                if tranche.state is not TrancheState.OUTSTANDING or terms.maturity > date:
                    continue
                due = terms.principal_minor  # the interest is paid in the drawer's own currency
                keep = held - due >= threshold and state.drawable
                try:
                    if held >= due and (keep or not state.drawable):
                        self.desk.repay(side.drawer, side.provider, terms.tranche_id, date)
                        held -= due
                        action, tranche_id = "repay", terms.tranche_id
                    else:
                        new = self.desk.rollover(
                            side.drawer,
                            side.provider,
                            terms.tranche_id,
                            date,
                            self.policy.months,
                            self.policy.interest_rate,
                            rates,
                        )
                        action, tranche_id = "rollover", new.tranche_id
                except DrawRefused as refused:
                    self._refused(day, side, refused)
                    continue
                self.events.append(
                    TrancheEvent(
                        day,
                        action,
                        side.drawer,
                        side.provider,
                        side.provider_currency,
                        tranche_id,
                        terms.principal_minor,
                        terms.interest_minor(date),
                    )
                )
            self._record(day, side, date)

    def _record(self, day: int, side: Agreement, date: dt.date) -> None:
        state = self.desk.state(side, date)
        accrued = sum(
            tranche.terms.interest_minor(date)
            for tranche in state.tranches
            if tranche.state is TrancheState.OUTSTANDING
        )
        self.days.append(
            LineDay(
                day,
                side.drawer,
                side.provider,
                side.provider_currency,
                side.size_minor,
                state.drawn_minor,
                state.facility_minor,
                accrued,
                state.status.value,
            )
        )

    def _refused(self, day: int, side: Agreement, refused: DrawRefused) -> None:
        self.events.append(
            TrancheEvent(
                day,
                "refused",
                side.drawer,
                side.provider,
                side.provider_currency,
                "",
                0,
                0,
                f"{refused.code}: {refused}",
            )
        )


CODE_OVERNIGHT = 19  # a central bank's overnight operation (not a payment: no payment record)


def overnight_operations(
    ledger: Ledger, network: Network, opening: Mapping[AccountKey, int], day: int
) -> int:
    """Each central bank returns its commercial banks' reserves to their opening level for the
    night: it lends to a bank that ended short (repo) and absorbs what a bank holds beyond it
    (deposit facility), in its own currency. An ASSUMPTION of the simulation standing in for
    the money market and the central banks' daily operations, which keep reserves steady from
    one day to the next; interest is not modelled. Foreign-currency accounts (nostros) are not
    touched: their imbalances carry over. Returns how many operations were booked."""
    transfers = []
    for key, level in opening.items():
        account = network.accounts_by_key[key]
        state = ledger.lookup_account(account.id)
        assert state is not None, key
        gap = level - (state.credits_posted - state.debits_posted)
        if gap == 0:
            continue
        issuance = network.accounts_by_key[
            AccountKey.issuance(network.currency_settlement_agent(key.currency), key.currency)
        ]
        debit, credit = (issuance.id, account.id) if gap > 0 else (account.id, issuance.id)
        transfers.append(
            Transfer(
                transfer_id_for(f"overnight:{day}:{key}"),
                debit,
                credit,
                abs(gap),
                code=CODE_OVERNIGHT,
                ref=f"overnight {'repo' if gap > 0 else 'deposit'} day {day}",
            )
        )
    for start in range(0, len(transfers), BATCH_EVENTS_MAX):
        results = ledger.create_transfers(transfers[start : start + BATCH_EVENTS_MAX])
        assert all(result == "ok" for result in results), results
    return len(transfers)


def reserve_levels(ledger: Ledger, network: Network) -> dict[AccountKey, int]:
    """Every commercial bank's home-currency settlement balance (its reserves) now."""
    levels = {}
    for entry in network.participants:
        if entry.kind is not ParticipantKind.COMMERCIAL_BANK:
            continue
        key = AccountKey.settlement(entry.bic, network.home_currency(entry.bic))
        state = ledger.lookup_account(network.accounts_by_key[key].id)
        if state is not None:
            levels[key] = state.credits_posted - state.debits_posted
    return levels
