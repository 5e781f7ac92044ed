"""Swap lines as central banks run them: agreements, tranches drawn on them, repayment with
interest, rollover.

A payment never draws on a swap line. A central bank *draws a tranche* (an operator action: the
API, the CLI, or the simulator's drawing policy): the provider's currency is delivered to the
drawer's account at the provider central bank, where it funds the drawer's FX facility for its
own banks (``payments/network_view.py``), and the drawer's currency is deposited with the
provider as counter-value. At maturity the drawer repays the principal with interest and takes
its counter-value back, or rolls the tranche over into a new one.

Ledger bookings (one linked chain per event; ``D`` drawer, ``P`` provider, ``p`` and ``d`` their
currencies):

| event | dr | cr | amount |
|---|---|---|---|
| draw | swap-line:D:P:p | settlement:D:p | principal (utilisation: the debit balance) |
| draw | issuance:D:d | settlement:P:d | counter-value at the drawing's rate |
| repay | settlement:D:p | swap-line:D:P:p | principal |
| repay | issuance:D:d | swap-interest:P:d | interest, in the drawer's currency |
| repay | settlement:P:d | issuance:D:d | counter-value |

Invariants:
- Utilisation counts gross in the provider's currency (the principal pair) and never passes the
  agreed size: the swap-line account's credit limit is the size, so the ledger refuses a draw
  beyond it (``exceeds_credits``).
- A tranche is drawn only on an agreement drawable on its value date under the deployment's
  policy (``SwapLinePolicy``), for 3, 6 or 12 months, maturing no later than an agreement that is
  in force expires.
- The ledger is the book of record: a draw transfer's ``ref`` carries the tranche's terms
  (``TrancheTerms.ref``) and its ids derive from the tranche id, so tranches are read back from
  the swap-line account's transfers (``tranche_book``), also after a restart.
- Interest is simple, ACT/360, on the counter-value (the principal at the drawing's rate),
  rounded up to the minor unit (in favour of the provider, as every rounding of a conversion
  is), and paid in the drawer's own currency to the provider's account with the drawer, as a
  central bank can always pay in its own currency; repaying the principal needs the drawn
  currency back in the facility.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from fractions import Fraction

from sco_settle.domain.account_key import AccountKey
from sco_settle.domain.results import CreateTransferResult as TR
from sco_settle.domain.transfer import Transfer, TransferFlags
from sco_settle.ledger import Ledger
from sco_settle.network import Network, SwapLine
from sco_settle.network.model import AgreementStatus
from sco_settle.payments.fx import RateTable
from sco_settle.payments.network_view import NetworkView
from sco_settle.payments.plan import AccountLookup, transfer_id_for

# Not payment codes (``recovery.PAYMENT_CODES``): a tranche is no payment's leg. (Code 11,
# ``plan.CODE_SWAP_DRAW``, is a swap-line leg of a route on a graph built by hand.)
CODE_TRANCHE_DRAW = 17
CODE_TRANCHE_REPAY = 18
TENORS_MONTHS = frozenset({3, 6, 12})
DAY_COUNT = 360
_LINKED = int(TransferFlags.LINKED)
_REF = re.compile(
    r"tranche (?P<id>\S+) v=(?P<value>\d{4}-\d\d-\d\d) m=(?P<maturity>\d{4}-\d\d-\d\d)"
    r" r=(?P<rate>[0-9.]+) x=(?P<counter>\d+)"
)


class DrawRefused(ValueError):
    """A drawing, repayment or rollover the agreement or the ledger does not allow; ``code`` is
    machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class TrancheState(enum.StrEnum):
    OUTSTANDING = "outstanding"
    REPAID = "repaid"


@dataclass(frozen=True, slots=True)
class TrancheTerms:
    """One drawing: ``principal_minor`` of the provider's currency to the drawer, against
    ``counter_minor`` of the drawer's currency, from ``value_date`` to ``maturity`` at the annual
    ``interest_rate`` (a ``Decimal`` fraction: 0.025 is 2.5 %), paid in the drawer's currency."""

    tranche_id: str
    drawer: str
    provider: str
    principal_minor: int
    counter_minor: int
    value_date: dt.date
    maturity: dt.date
    interest_rate: Decimal

    @property
    def ref(self) -> str:
        return (
            f"tranche {self.tranche_id} v={self.value_date.isoformat()}"
            f" m={self.maturity.isoformat()} r={self.interest_rate} x={self.counter_minor}"
        )

    def interest_minor(self, until: dt.date | None = None) -> int:
        """Interest in the drawer's currency from the value date to ``until`` (default:
        maturity) on the counter-value, rounded up."""
        days = max(((until or self.maturity) - self.value_date).days, 0)
        exact = Fraction(self.counter_minor) * Fraction(self.interest_rate) * days / DAY_COUNT
        return -(-exact.numerator // exact.denominator)


@dataclass(frozen=True, slots=True)
class Tranche:
    terms: TrancheTerms
    state: TrancheState
    drawn_at: int  # ledger timestamp of the draw
    repaid_at: int = 0
    interest_paid_minor: int = 0


@dataclass(frozen=True, slots=True)
class Agreement:
    """A swap line seen from one side: ``drawer`` draws ``provider``'s currency."""

    line: SwapLine
    drawer: str
    provider: str
    drawer_currency: str
    provider_currency: str

    @property
    def size_minor(self) -> int:
        return self.line.size_minor(self.provider_currency) or 0

    def status_on(self, day: dt.date) -> AgreementStatus:
        return self.line.status_on(day)


def agreement(network: Network, drawer: str, provider: str) -> Agreement:
    """The swap line between ``drawer`` and ``provider``; ``DrawRefused`` if there is none."""
    for line in network.swap_lines:
        if set(line.central_banks) == {drawer, provider} and drawer != provider:
            return Agreement(
                line,
                drawer,
                provider,
                network.home_currency(drawer),
                network.home_currency(provider),
            )
    raise DrawRefused("no_agreement", f"no swap line between {drawer} and {provider}")


def add_months(day: dt.date, months: int) -> dt.date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return dt.date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError(day)


def check_drawing(
    network: Network, found: Agreement, principal_minor: int, value_date: dt.date, months: int
) -> dt.date:
    """The maturity of a drawing the agreement and the deployment's policy allow; else
    ``DrawRefused`` with the reason."""
    if months not in TENORS_MONTHS:
        raise DrawRefused("tenor_invalid", f"a tranche runs 3, 6 or 12 months, not {months}")
    if not isinstance(principal_minor, int) or principal_minor <= 0:
        raise DrawRefused("amount_invalid", "the principal must be a positive amount")
    if found.size_minor <= 0:
        raise DrawRefused(
            "size_unknown",
            f"the agreed size in {found.provider_currency} is unknown: nothing can be drawn",
        )
    status = found.status_on(value_date)
    if not network.swap_line_policy.drawable(status):
        raise DrawRefused(
            f"agreement_{status.value}",
            f"the agreement between {found.drawer} and {found.provider} is {status.value} on"
            f" {value_date} (computed expiry {found.line.expiry}); the deployment's policy does"
            " not allow drawing on it",
        )
    maturity = add_months(value_date, months)
    if status is AgreementStatus.IN_FORCE and maturity > found.line.expiry:
        raise DrawRefused(
            "maturity_after_expiry",
            f"the tranche would mature on {maturity}, after the agreement expires on"
            f" {found.line.expiry}",
        )
    return maturity


def draw_transfers(terms: TrancheTerms, found: Agreement, lookup: AccountLookup) -> list[Transfer]:
    bookings = [
        (
            AccountKey.swap_line(terms.drawer, terms.provider, found.provider_currency),
            AccountKey.settlement(terms.drawer, found.provider_currency),
            terms.principal_minor,
        ),
        (
            AccountKey.issuance(terms.drawer, found.drawer_currency),
            AccountKey.settlement(terms.provider, found.drawer_currency),
            terms.counter_minor,
        ),
    ]
    return _chain(f"swap:{terms.tranche_id}:draw", bookings, CODE_TRANCHE_DRAW, terms.ref, lookup)


def repay_transfers(
    terms: TrancheTerms, found: Agreement, lookup: AccountLookup, repaid_on: dt.date
) -> list[Transfer]:
    provider_ccy, drawer_ccy = found.provider_currency, found.drawer_currency
    bookings = [
        (
            AccountKey.settlement(terms.drawer, provider_ccy),
            AccountKey.swap_line(terms.drawer, terms.provider, provider_ccy),
            terms.principal_minor,
        ),
        (
            AccountKey.issuance(terms.drawer, drawer_ccy),
            AccountKey.swap_interest(terms.provider, drawer_ccy),
            terms.interest_minor(max(repaid_on, terms.value_date)),
        ),
        (
            AccountKey.settlement(terms.provider, drawer_ccy),
            AccountKey.issuance(terms.drawer, drawer_ccy),
            terms.counter_minor,
        ),
    ]
    ref = f"tranche {terms.tranche_id} repaid {repaid_on.isoformat()}"
    return _chain(f"swap:{terms.tranche_id}:repay", bookings, CODE_TRANCHE_REPAY, ref, lookup)


def _chain(
    prefix: str,
    bookings: Sequence[tuple[AccountKey, AccountKey, int]],
    code: int,
    ref: str,
    lookup: AccountLookup,
) -> list[Transfer]:
    transfers = []
    for position, (debit_key, credit_key, amount) in enumerate(bookings):
        if amount <= 0:
            continue
        debit, credit = lookup(debit_key), lookup(credit_key)
        if debit is None or credit is None:
            missing = debit_key if debit is None else credit_key
            raise DrawRefused("account_missing", f"the network has no account {missing}")
        transfers.append(
            Transfer(
                transfer_id_for(f"{prefix}:{position}"),
                debit,
                credit,
                amount,
                _LINKED,
                code=code,
                ref=ref[:140],
            )
        )
    transfers[-1] = transfers[-1]._replace(flags=0)
    return transfers


def parse_ref(ref: str, drawer: str, provider: str) -> TrancheTerms | None:
    """The terms a draw transfer's ``ref`` carries (None if it carries none)."""
    match = _REF.fullmatch(ref)
    if match is None:
        return None
    return TrancheTerms(
        tranche_id=match["id"],
        drawer=drawer,
        provider=provider,
        principal_minor=0,  # filled in from the transfer's amount
        counter_minor=int(match["counter"]),
        value_date=dt.date.fromisoformat(match["value"]),
        maturity=dt.date.fromisoformat(match["maturity"]),
        interest_rate=Decimal(match["rate"]),
    )


def tranche_book(ledger: Ledger, found: Agreement, account_id: int) -> list[Tranche]:
    """Every tranche ``found.drawer`` has drawn on the line, from the swap-line account's
    transfers (``account_id``), oldest first."""
    transfers = []
    timestamp_min = 0
    while True:
        page = ledger.get_account_transfers(account_id, timestamp_min=timestamp_min, limit=1000)
        transfers += page
        if len(page) < 1000:
            break
        timestamp_min = page[-1].timestamp + 1
    draws: dict[str, Tranche] = {}
    for transfer in transfers:
        if transfer.code == CODE_TRANCHE_DRAW and transfer.debit_account == account_id:
            terms = parse_ref(transfer.ref, found.drawer, found.provider)
            if terms is not None:
                terms = replace(terms, principal_minor=transfer.amount)
                draws[terms.tranche_id] = Tranche(
                    terms, TrancheState.OUTSTANDING, transfer.timestamp
                )
        elif transfer.code == CODE_TRANCHE_REPAY and transfer.credit_account == account_id:
            tranche_id = transfer.ref.split(" ")[1] if transfer.ref.startswith("tranche ") else ""
            drawn = draws.get(tranche_id)
            if drawn is not None:
                draws[tranche_id] = Tranche(
                    drawn.terms, TrancheState.REPAID, drawn.drawn_at, transfer.timestamp
                )
    return list(draws.values())


def counter_value(found: Agreement, principal_minor: int, rates: RateTable) -> int:
    """The drawer's counter-value of ``principal_minor``: at the provider's mid quote, rounded
    up (in favour of the provider); ``DrawRefused`` when the provider quotes no rate."""
    quote = rates.best(found.provider_currency, found.drawer_currency, provider=found.provider)
    if quote is None:
        raise DrawRefused(
            "no_rate",
            f"{found.provider} quotes no {found.provider_currency}/{found.drawer_currency} rate",
        )
    counter = quote.mid_factor * principal_minor
    return -(-counter.numerator // counter.denominator)


@dataclass(frozen=True, slots=True)
class LineState:
    """One side of a swap line on a day: what is drawn of what is agreed, and its tranches."""

    agreement: Agreement
    status: AgreementStatus
    drawable: bool
    drawn_minor: int
    facility_minor: int  # what the drawer holds of the provider's currency (its FX facility)
    tranches: tuple[Tranche, ...]

    @property
    def headroom_minor(self) -> int:
        return max(self.agreement.size_minor - self.drawn_minor, 0)

    def as_dict(self, *, confidential: bool = True) -> dict[str, object]:
        """As the CLI (``--json``) and the API show it. ``confidential=False``: the agreement
        only (public facts), without what is drawn and held, which only its two central banks,
        the network operator and auditors see."""
        found = self.agreement
        shown: dict[str, object] = {
            "drawer": found.drawer,
            "provider": found.provider,
            "currency": found.provider_currency,
            "status": self.status.value,
            "drawable": self.drawable,
            "size_minor": found.size_minor,
        }
        if not confidential:
            return shown
        return shown | {
            "drawn_minor": self.drawn_minor,
            "facility_minor": self.facility_minor,
            "tranches": [
                {
                    "tranche": t.terms.tranche_id,
                    "state": t.state.value,
                    "principal_minor": t.terms.principal_minor,
                    "counter_minor": t.terms.counter_minor,
                    "value_date": t.terms.value_date.isoformat(),
                    "maturity": t.terms.maturity.isoformat(),
                    "interest_rate": str(t.terms.interest_rate),
                    "interest_due_minor": t.terms.interest_minor(),
                }
                for t in self.tranches
            ],
        }


class SwapLineDesk:
    """Draws, repays and rolls over tranches on a network's swap lines, through the ledger.

    Not thread-safe: call it where the ledger is written (the server's writer, the simulator)."""

    def __init__(self, ledger: Ledger, view: NetworkView) -> None:
        self.ledger, self.view, self.network = ledger, view, view.network

    def sides(self) -> list[Agreement]:
        """Both sides of every swap line, in file order."""
        found = []
        for line in self.network.swap_lines:
            first, second = line.central_banks
            found += [
                agreement(self.network, first, second),
                agreement(self.network, second, first),
            ]
        return found

    def state(self, found: Agreement, day: dt.date) -> LineState:
        line_account = self._id(
            AccountKey.swap_line(found.drawer, found.provider, found.provider_currency)
        )
        balances = self.ledger.lookup_account(line_account)
        drawn = 0 if balances is None else max(balances.debits_posted - balances.credits_posted, 0)
        facility_id = self.view.account_id(
            AccountKey.settlement(found.drawer, found.provider_currency)
        )
        facility = self.ledger.lookup_account(facility_id) if facility_id is not None else None
        held = 0 if facility is None else facility.credits_posted - facility.debits_posted
        status = found.status_on(day)
        return LineState(
            found,
            status,
            self.network.swap_line_policy.drawable(status) and found.size_minor > 0,
            drawn,
            held,
            tuple(tranche_book(self.ledger, found, line_account)),
        )

    def draw(
        self,
        drawer: str,
        provider: str,
        principal_minor: int,
        value_date: dt.date,
        months: int,
        interest_rate: Decimal,
        rates: RateTable,
        tranche_id: str = "",
    ) -> TrancheTerms:
        """Draw a tranche; its counter-value is the principal at the provider's mid quote."""
        found = agreement(self.network, drawer, provider)
        maturity = check_drawing(self.network, found, principal_minor, value_date, months)
        counter = counter_value(found, principal_minor, rates)
        if not tranche_id:
            line_state = self.state(found, value_date)
            tranche_id = f"{drawer}.{provider}.{value_date:%Y%m%d}.{len(line_state.tranches) + 1}"
        terms = TrancheTerms(
            tranche_id,
            drawer,
            provider,
            principal_minor,
            counter,
            value_date,
            maturity,
            interest_rate,
        )
        self._apply(draw_transfers(terms, found, self._lookup), "draw")
        return terms

    def repay(self, drawer: str, provider: str, tranche_id: str, on: dt.date) -> Tranche:
        found = agreement(self.network, drawer, provider)
        tranche = self._outstanding(found, tranche_id, on)
        self._apply(repay_transfers(tranche.terms, found, self._lookup, on), "repay")
        return Tranche(tranche.terms, TrancheState.REPAID, tranche.drawn_at, self.ledger.clock())

    def rollover(
        self,
        drawer: str,
        provider: str,
        tranche_id: str,
        on: dt.date,
        months: int,
        interest_rate: Decimal,
        rates: RateTable,
    ) -> TrancheTerms:
        """Repay the tranche with its interest and draw the same principal again from ``on``, in
        one linked chain (both or neither)."""
        found = agreement(self.network, drawer, provider)
        old = self._outstanding(found, tranche_id, on).terms
        maturity = check_drawing(self.network, found, old.principal_minor, on, months)
        new = TrancheTerms(
            f"{tranche_id}.r",
            drawer,
            provider,
            old.principal_minor,
            counter_value(found, old.principal_minor, rates),
            on,
            maturity,
            interest_rate,
        )
        repay = repay_transfers(old, found, self._lookup, on)
        draw = draw_transfers(new, found, self._lookup)
        repay[-1] = repay[-1]._replace(flags=_LINKED)
        self._apply(repay + draw, "rollover")
        return new

    def _outstanding(self, found: Agreement, tranche_id: str, on: dt.date) -> Tranche:
        for tranche in self.state(found, on).tranches:
            if tranche.terms.tranche_id == tranche_id:
                if tranche.state is not TrancheState.OUTSTANDING:
                    raise DrawRefused("tranche_repaid", f"tranche {tranche_id} is already repaid")
                return tranche
        raise DrawRefused("tranche_unknown", f"no tranche {tranche_id} on this line")

    def _lookup(self, key: AccountKey) -> int | None:
        return self.view.account_id(key)

    def _id(self, key: AccountKey) -> int:
        found = self.view.account_id(key)
        if found is None:
            raise DrawRefused("account_missing", f"the network has no account {key}")
        return found

    def _apply(self, transfers: list[Transfer], action: str) -> None:
        results = self.ledger.create_transfers(transfers)
        self.view.invalidate()
        failed = sorted({str(result) for result in results if result is not TR.OK})
        if failed:
            codes = [code for code in failed if code != TR.LINKED_EVENT_FAILED] or failed
            if TR.EXCEEDS_CREDITS in codes:
                reason = "exceeds_agreed_size" if action == "draw" else "insufficient_funds"
            elif TR.EXISTS in codes:
                reason = "tranche_exists"
            else:
                reason = codes[0]
            raise DrawRefused(reason, f"the ledger refused the {action}: {', '.join(codes)}")
