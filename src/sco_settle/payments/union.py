"""The SCO clearing union (a ``SettlementMode``, ``union``): central banks clear their banks'
cross-currency payments multilaterally in a unit of account, and carry what is left as union
credit within each member's swing limit.

Parties. Members are central banks (``reference_data/union.yaml``: the member states', and
partners' by configuration); each issues one currency of the network. A payment is a *union
payment* when its two currencies differ and each is issued by a member, and its payer and payee
banks hold settlement accounts in them. Every other payment (domestic, or with a non-member's
currency) is held and netted in the same cycle exactly as deferred net settlement does
(``payments.dns``), over its ordinary route.

Bookings of one union payment (dr = debit, cr = credit; ``u`` is the unit, e.g. XSC; CA and CB
are the central banks of the payer's currency ``a`` and the payee's ``b``; U is the agent):

| leg | dr | cr | amount |
|---|---|---|---|
| payer bank pays its central bank (retired) | settlement:A:a | issuance:CA:a | sent |
| CA's obligation becomes CB's claim | settlement:CA:u | settlement:CB:u | credit |
| rounding, booked, never lost | settlement:CA:u | fx-income:U:u | residue |
| CB issues and pays the payee bank | issuance:CB:b | settlement:B:b | delivered |

Amounts come from ``payments.union_unit`` (exact, at the unit's mid price; the union takes no
spread). ``settlement:M:u`` is member M's *position*: its account at the union in the unit, whose
balance is its net claim (> 0) or its union credit used (< 0). The ledger caps it at the swing
limit (``debits_must_not_exceed_credits`` with the limit as credit limit), so no member can pass
its limit even by a bug here.

A cycle (``run_cycle``):
1. Interest: at the first cycle of each day, every member in debit pays one day of interest on
   its position (ACT/360, ``union.yaml``), in its own currency at the unit's price, from its
   issuance account to the agent's interest account ``swap-interest:U:m`` (one transfer each).
2. Netting is ``payments.dns``'s cycle with union payments planned as above: the planned chains
   are netted per ledger account, never booked; the deferral rule of ``payments.netting`` defers
   whole payments (never a part) until every payer bank's net debit fits its balance and every
   member's position fits its swing limit; then all net positions settle as ONE linked chain
   (every currency and the unit together): every payment of the cycle settles, both sides, or
   none does. A settled payment's outcome names the cycle ("settled in net cycle N").
3. Deferred union payments stay held for the next cycle; their payers are told why (status
   queued, answered PDNG, reason AM04 with the limit that held them).

Invariants: per currency and in the unit, debits equal credits (every planned leg is in one
currency; the residue is booked); positions never pass swing limits (ledger constraint); a
payment is settled by a cycle's chain entirely or not at all (one linked chain).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar

from sco_settle.domain.account import Account, AccountFlags, AccountKind
from sco_settle.domain.account_key import AccountKey
from sco_settle.domain.balances import Balances
from sco_settle.domain.participants import ParticipantKind, ScoStatus
from sco_settle.domain.results import CreateTransferResult as TR
from sco_settle.domain.transfer import Transfer
from sco_settle.ledger import InvariantViolation
from sco_settle.network import account_id_for_key
from sco_settle.payments import dns
from sco_settle.payments.model import (
    AmountType,
    Payment,
    PaymentOutcome,
    PaymentRejected,
    PaymentStatus,
    Reason,
)
from sco_settle.payments.modes import CycleReport, Entry, Events, register
from sco_settle.payments.plan import (
    CODE_FX,
    CODE_PAYMENT,
    LINKED,
    Booking,
    leg_id,
    transfer_id_for,
)
from sco_settle.payments.queue import QueuedPayment, Selection
from sco_settle.payments.routing import EdgeKind, Leg, Node, Route
from sco_settle.payments.union_config import UnionConfig, load_union
from sco_settle.payments.union_unit import (
    UnionConversion,
    UnitNotPriced,
    UnitPrices,
    convert_delivered,
    convert_sent,
    interest_minor,
    unit_prices,
    unit_to_currency_up,
)

if TYPE_CHECKING:
    from sco_settle.payments.engine import PaymentEngine

HELD = "held for the next clearing-union cycle"
CODE_UNION_INTEREST = 21  # a member central bank's interest on union credit
NS_PER_DAY = 86_400 * 1_000_000_000
_CAPPED = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)


class UnionConfigError(ValueError):
    """The union's governance file does not fit the network (a configuration fault)."""


class UnionBook:
    """The union in one engine: who clears which currency, and the union's ledger accounts
    (members' positions, the unit's clearing account, the rounding account)."""

    def __init__(self, engine: PaymentEngine, config: UnionConfig) -> None:
        self.config = config
        self.unit = config.unit.code
        self.member_of = _members_by_currency(engine, config)  # currency -> central bank
        agent = config.agent
        self.position_keys = {bic: AccountKey.settlement(bic, self.unit) for bic in self.members}
        self.rounding_key = AccountKey.fx_income(agent, self.unit)
        self.interest_keys = {
            code: AccountKey.swap_interest(agent, code) for code in self.member_of
        }
        limits = config.swing_limits_minor()
        accounts = [
            _account(key, bic, _CAPPED, limits[bic]) for bic, key in self.position_keys.items()
        ]
        accounts.append(_account(AccountKey.clearing(agent, self.unit), agent))
        accounts.append(_account(self.rounding_key, agent))
        accounts.extend(_account(key, agent) for key in self.interest_keys.values())
        results = engine.ledger.create_accounts(accounts)
        if any(result not in ("ok", "exists") for result in results):
            raise UnionConfigError(
                f"the union's accounts cannot be opened as configured ({set(results)}): a swing"
                " limit is fixed in the ledger when its position account is opened"
            )
        # The unit's clearing account carries the unit's net positions in every cycle's chain.
        engine.clearing[self.unit] = accounts[len(self.position_keys)].id
        self.interest_day: int | None = None

    @property
    def members(self) -> tuple[str, ...]:
        return tuple(self.member_of.values())

    def covers(self, engine: PaymentEngine, payment: Payment) -> bool:
        """Whether ``payment`` is a union payment (see the module docstring)."""
        source, target = payment.currency, payment.creditor_currency
        return (
            source != target
            and source in self.member_of
            and target in self.member_of
            and engine.view.account_id(AccountKey.settlement(payment.debtor_agent, source))
            is not None
            and engine.view.account_id(AccountKey.settlement(payment.creditor_agent, target))
            is not None
            and not self.stressed_out(engine, payment)
        )

    def stressed_out(self, engine: PaymentEngine, payment: Payment) -> bool:
        """The engine's stress scenario refuses the union's route for ``payment``: one of its
        banks or central banks is suspended, or its states' corridor is cut. Such a payment is
        left to the ordinary route, whose routing refuses it (AG01), as in every other mode."""
        scenario = engine.scenario
        network = engine.view.network
        payer = network.participant(payment.debtor_agent).country
        payee = network.participant(payment.creditor_agent).country
        banks = {payment.debtor_agent, payment.creditor_agent}
        banks |= {self.member_of[payment.currency], self.member_of[payment.creditor_currency]}
        return bool(banks & scenario.suspended) or any(
            {payer, payee} == set(pair) for pair in scenario.corridor_cuts
        )

    def prices(self, engine: PaymentEngine) -> UnitPrices:
        rates = engine.view.rates_at(engine.clock())
        return unit_prices(self.config.unit, rates, self.member_of)

    def position_minor(self, engine: PaymentEngine, bic: str) -> int:
        """Member ``bic``'s position in unit minor units: claim (> 0) or credit used (< 0)."""
        state = engine.ledger.lookup_account(account_id_for_key(self.position_keys[bic]))
        if state is None:
            raise InvariantViolation(f"the union position of {bic} is missing")
        return Balances.of(state).posted_minor

    def headroom_minor(self, engine: PaymentEngine, bic: str) -> int:
        """What member ``bic`` may still be charged: its position plus its swing limit."""
        state = engine.ledger.lookup_account(account_id_for_key(self.position_keys[bic]))
        assert state is not None, bic
        return Balances.of(state).headroom_minor


def _members_by_currency(engine: PaymentEngine, config: UnionConfig) -> dict[str, str]:
    """Each participant's currency; every member is its currency's central bank in the network,
    of a member state (partners: of any state, admitted by configuration)."""
    network = engine.view.network
    found: dict[str, str] = {}
    members = {entry.central_bank for entry in config.members}
    for entry in config.participants:
        bic = entry.central_bank
        participant = network.participants_by_bic.get(bic)
        if participant is None or participant.kind is not ParticipantKind.CENTRAL_BANK:
            raise UnionConfigError(f"union member {bic} is not a central bank of the network")
        code = network.home_currency(bic)
        if network.settlement_agents.get(code) != bic:
            raise UnionConfigError(f"union member {bic} does not issue {code} in the network")
        status = network.country_of(bic).sco_status
        if bic in members and status is not ScoStatus.MEMBER:
            raise UnionConfigError(f"{bic} is listed as a member, but its state is {status}")
        found[code] = bic
    return found


def _account(key: AccountKey, owner: str, flags: int = 0, limit: int = 0) -> Account:
    """A union account: kind ``suspense``, so only the engine moves it (no participant key may
    debit it), and its key as ``ref``."""
    kind = AccountKind.SUSPENSE.value
    return Account(account_id_for_key(key), owner, key.currency, kind, flags, limit, ref=str(key))


class ClearingUnion:
    name: ClassVar[str] = "union"
    cycle_kind: ClassVar[str] = "union"
    runs_when_idle: ClassVar[bool] = False  # Cycles run at their governed times.
    reserves_liquidity: ClassVar[bool] = False  # Held payments move nothing until netted.

    def __init__(self, config: UnionConfig | None = None) -> None:
        self.config = config if config is not None else load_union()
        self._book: UnionBook | None = None  # opened by the engine's first use (one each)

    @property
    def cycle_minutes(self) -> frozenset[int]:
        """The governed cycle times (minutes after midnight), for schedulers (the simulator)."""
        return frozenset(self.config.cycles.minutes)

    def book(self, engine: PaymentEngine) -> UnionBook:
        if self._book is None:
            self._book = UnionBook(engine, self.config)
        return self._book

    def on_accepted(
        self, engine: PaymentEngine, payment: Payment, events: Events
    ) -> PaymentOutcome | None:
        if self.book(engine).covers(engine, payment):
            return engine.enqueue(payment, events, reason=None, text=HELD)
        return dns.DeferredNet().on_accepted(engine, payment, events)

    def after_batch(self, engine: PaymentEngine, settled_any: bool) -> None:
        return None

    def run_cycle(
        self, engine: PaymentEngine, selection: Selection
    ) -> tuple[CycleReport, list[Entry]]:
        book = self.book(engine)
        charge_interest(engine, book)
        try:
            prices: UnitPrices | None = book.prices(engine)
        except UnitNotPriced:
            prices = None  # Union payments wait for a price; the others still settle.
        chosen = [q for q in engine.queue.select(selection) if book.covers(engine, q.payment)]

        def route_held(engine: PaymentEngine, queued: QueuedPayment) -> dns.Held | None:
            if not book.covers(engine, queued.payment):
                return dns.route_held(engine, queued)
            return None if prices is None else plan_union(book, prices, queued)

        report, entries = dns.net_cycle(engine, selection, route_held, self.cycle_kind)
        entries.extend(_deferral_notices(engine, book, prices, chosen, report.number))
        return report, entries


def plan_union(book: UnionBook, prices: UnitPrices, queued: QueuedPayment) -> dns.Held:
    """A union payment's planned chain (the module docstring's table) and its route; the chain
    is netted, never booked. ``PaymentRejected`` (AM01) when it converts to nothing."""
    payment = queued.payment
    conversion = convert_payment(book, prices, payment)
    if conversion.delivered_minor <= 0 or conversion.credit_unit_minor <= 0:
        raise PaymentRejected(
            Reason.AM01, f"the amount converts to zero {payment.creditor_currency} in the union"
        )
    source, target = payment.currency, payment.creditor_currency
    payer_cb, payee_cb = book.member_of[source], book.member_of[target]
    bookings: list[Booking] = [
        (
            AccountKey.settlement(payment.debtor_agent, source),
            AccountKey.issuance(payer_cb, source),
            conversion.sent_minor,
            CODE_PAYMENT,
        ),
        (
            book.position_keys[payer_cb],
            book.position_keys[payee_cb],
            conversion.credit_unit_minor,
            CODE_FX,
        ),
        (book.position_keys[payer_cb], book.rounding_key, conversion.residue_unit_minor, CODE_FX),
        (
            AccountKey.issuance(payee_cb, target),
            AccountKey.settlement(payment.creditor_agent, target),
            conversion.delivered_minor,
            CODE_PAYMENT,
        ),
    ]
    chain = [
        Transfer(
            leg_id(payment.payment_id, position),
            account_id_for_key(debit),
            account_id_for_key(credit),
            amount,
            LINKED,
            code=code,
        )
        for position, (debit, credit, amount, code) in enumerate(
            booking for booking in bookings if booking[2] > 0
        )
    ]
    chain[-1] = chain[-1]._replace(flags=0)
    route = union_route(payment, book.unit, payer_cb, payee_cb, conversion)
    return dns.Held(queued, [route], chain, on_structure=True)  # No other way: never rerouted.


def convert_payment(book: UnionBook, prices: UnitPrices, payment: Payment) -> UnionConversion:
    """What ``payment`` sends, delivers and books in the unit at ``prices``."""
    source, target = payment.currency, payment.creditor_currency
    if payment.amount_type is AmountType.RECEIVE:
        return convert_delivered(prices, payment.amount_minor, source, target)
    return convert_sent(prices, payment.amount_minor, source, target)


def union_route(
    payment: Payment, unit: str, payer_cb: str, payee_cb: str, conversion: UnionConversion
) -> Route:
    """The route a union payment takes, as nodes and amounts (for its outcome and records):
    payer bank, its central bank, that bank's position in the unit, the payee's central bank's
    position, the payee's central bank, the payee bank."""
    source, target = payment.currency, payment.creditor_currency
    sent, delivered = conversion.sent_minor, conversion.delivered_minor
    nodes = [
        Node(payment.debtor_agent, source),
        Node(payer_cb, source),
        Node(payer_cb, unit),
        Node(payee_cb, unit),
        Node(payee_cb, target),
        Node(payment.creditor_agent, target),
    ]
    amounts = [
        (EdgeKind.SETTLEMENT_IN, sent, sent),
        (EdgeKind.FX, sent, conversion.debit_unit_minor),
        (EdgeKind.SETTLEMENT_OUT, conversion.credit_unit_minor, conversion.credit_unit_minor),
        (EdgeKind.FX, conversion.credit_unit_minor, delivered),
        (EdgeKind.SETTLEMENT_OUT, delivered, delivered),
    ]
    legs = tuple(
        Leg(nodes[i], nodes[i + 1], kind, amount, converted, 0, 0, 0, None, False)
        for i, (kind, amount, converted) in enumerate(amounts)
    )
    return Route(legs, 0, 0, 0, 0, len(legs), delivered)


def charge_interest(engine: PaymentEngine, book: UnionBook) -> None:
    """Once per day (the first cycle of it): each member in debit pays one day of interest on
    its position (ACT/360), in its own currency at the unit's price, from its issuance account
    to the agent's interest account. Idempotent per day: the transfer ids name day and member."""
    day = engine.clock() // NS_PER_DAY
    if book.interest_day == day:
        return
    try:
        prices = book.prices(engine)
    except UnitNotPriced:
        return  # No price, no interest today (charged the next day a price exists).
    rate = book.config.interest.daily_rate
    transfers = []
    for code, bic in sorted(book.member_of.items()):
        due_unit = interest_minor(book.position_minor(engine, bic), rate)
        if due_unit <= 0 or not prices.priced(code):
            continue
        amount = unit_to_currency_up(prices, due_unit, code)
        transfers.append(
            Transfer(
                transfer_id_for(f"union:interest:{day}:{bic}"),
                account_id_for_key(AccountKey.issuance(bic, code)),
                account_id_for_key(book.interest_keys[code]),
                amount,
                code=CODE_UNION_INTEREST,
                ref=f"union interest, day {day}: {due_unit} {book.unit} minor units",
            )
        )
    results = engine.ledger.create_transfers(transfers)
    if any(result not in (TR.OK, TR.EXISTS) for result in results):
        raise InvariantViolation(f"union interest refused by the ledger: {set(results)}")
    book.interest_day = day


def _deferral_notices(
    engine: PaymentEngine,
    book: UnionBook,
    prices: UnitPrices | None,
    chosen: Iterable[QueuedPayment],
    cycle: int,
) -> list[Entry]:
    """For each union payment of the cycle still held: a queued outcome telling its payer why
    (the limit that holds it as the cycle closes), recorded with the cycle."""
    entries: list[Entry] = []
    for queued in chosen:
        payment = queued.payment
        if payment.payment_id not in engine.queue:
            continue  # Settled or rejected in the cycle.
        text = f"deferred in union cycle {cycle}: " + _held_by(engine, book, prices, payment)
        outcome = PaymentOutcome(payment.payment_id, PaymentStatus.QUEUED, Reason.AM04, text)
        entries.append((payment, outcome, queued.seq, [(PaymentStatus.QUEUED, text)]))
    return entries


def _held_by(
    engine: PaymentEngine, book: UnionBook, prices: UnitPrices | None, payment: Payment
) -> str:
    if prices is None:
        return f"the unit {book.unit} has no price now"
    payer_cb = book.member_of[payment.currency]
    charge = convert_payment(book, prices, payment).debit_unit_minor
    headroom = book.headroom_minor(engine, payer_cb)
    if charge > headroom:
        return (
            f"{payer_cb} would pass its swing limit ({charge} {book.unit} minor units due,"
            f" {headroom} left)"
        )
    return f"the payer's {payment.currency} balance does not cover its net debit"


register(ClearingUnion.name, ClearingUnion)
