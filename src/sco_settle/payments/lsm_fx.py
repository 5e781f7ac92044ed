"""Cross-currency offsetting in the RTGS liquidity-saving mechanism (CLS-style).

The one-currency passes of ``payments.rtgs`` (bilateral offsetting, gridlock resolution) take only
payments between holders of settlement accounts in one currency. A queued cross-currency payment
(or one whose route runs through correspondent accounts) settles gross on its route or waits, so
two such payments in opposite directions, which together need far less liquidity than either
alone, would both wait until they time out (TM01). This pass settles a *set* of them together.

Each payment of a set keeps its own route, planned as for gross settlement: routed on structure
(``PaymentEngine.route(for_cycle=True)``: conversions at the FX providers' quotes firm now,
consent, dealing limits and swap-line headroom as routing sees them) and planned into its chain
(``PaymentEngine.plan``). The legs of the whole set are netted per ledger account by
``payments.netting.net_legs`` (the deferral rule deferred net settlement uses), and the set
settles when every debit-capped account's net debit is within its headroom (available balance
plus credit limit).

Bookings. The set is ONE linked chain through each currency's clearing account: each leg
``dr X cr Y`` of a payment becomes two transfers, ``clearing -> Y`` and ``X -> clearing``, every
credit of the set first, then every debit. The ledger thus moves each account up through all its
credits and then down to its net position, never below it, so the chain fits exactly when the
netting said it does; and every payment of the set settles whole, with all the others, or none
does (payment-versus-payment across the set). Each clearing account ends where it began. Transfer
ids come from the payment id and the leg's position (``plan.lsm_ids(payment_id, position)``), so
at a restart ``recovery.find_chain`` finds each payment's legs with no intent written, as for a
one-currency LSM settlement, and the audit (``sco-settle verify``) checks them like any chain.

Choice of the set (deterministic: order of service, BIC order, then the netting's index order):
1. Candidates: the selected queued payments that the one-currency passes do not take, in order of
   service, each with a route on structure; at most ``CANDIDATES_MAX`` of them, whose transfers
   fit one ledger batch (the first in order of service). Unless ``fifo_bypass``, a payment that is
   not a candidate (one-currency, no route, or beyond the bounds) holds back its payer's later
   payments of the same or a lower priority (FIFO).
2. With ``fifo_bypass`` only, pairwise first: for each pair of agents (BIC order) with candidates
   in both directions, net that pair's candidates and settle what the deferral rule keeps; at most
   ``PAIRS_MAX`` pairs per cycle.
3. Multilateral: net all remaining candidates; the deferral rule defers the lowest-priority and
   latest payments that debit a short account until everything fits. Unless ``fifo_bypass``, a
   payer with a deferred payment may not settle its later ones: they are taken out and the rest
   is netted again (each round removes at least one payment), so each payer's settled payments
   are a prefix of its candidates.

Work per cycle is bounded: a payment is routed once per quote table and scenario (the plans are
kept between cycles), at most ``CANDIDATES_MAX`` payments are netted, and at most
``PAIRS_MAX + 1`` chains are written.

Invariants:
- Every leg of the chain is a leg of a payment's planned route, booked through the clearing
  account of its currency; per clearing account, debits equal credits (checked before the chain
  is written, ``InvariantViolation``).
- A chain the netting allowed is refused by the ledger only for a limit; then nothing moved and
  the payments stay queued. Any other refusal is a bug (``InvariantViolation``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sco_settle.domain.balances import Balances
from sco_settle.domain.money import AMOUNT_MAX
from sco_settle.domain.results import CreateTransferResult as TR
from sco_settle.domain.transfer import Transfer
from sco_settle.ledger import BATCH_EVENTS_MAX, InvariantViolation
from sco_settle.ledger.state_machine import AccountState
from sco_settle.payments.fx import RateTable
from sco_settle.payments.model import Payment, PaymentOutcome, PaymentRejected, PaymentStatus
from sco_settle.payments.modes import Entry, Events
from sco_settle.payments.netting import LegNetting, NettingLeg, NettingLegs, net_legs
from sco_settle.payments.network_view import Scenario
from sco_settle.payments.plan import CODE_FX, CODE_LSM, CODE_SWAP_DRAW, LINKED, lsm_ids
from sco_settle.payments.queue import QueuedPayment, Selection
from sco_settle.payments.queue import level as service_level
from sco_settle.payments.recovery import CHAIN_LEGS_MAX
from sco_settle.payments.routing import Route

if TYPE_CHECKING:
    from sco_settle.payments.engine import PaymentEngine

CANDIDATES_MAX = 256  # payments netted per cycle (the first in order of service)
PAIRS_MAX = 32  # pairwise chains per cycle (``fifo_bypass`` only)
COUNTER = "settled_by_fx_offsetting"  # ``EngineStats`` field
SETTLED_TEXT = "settled by cross-currency offsetting"
# A conversion's or a swap draw's booking keeps its code in statements; other legs read LSM.
_KEPT_CODES = frozenset({CODE_FX, CODE_SWAP_DRAW})
_LIMIT_RESULTS = frozenset(
    {TR.EXCEEDS_CREDITS, TR.EXCEEDS_DEBITS, TR.OVERFLOWS_DEBITS, TR.OVERFLOWS_CREDITS},
)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A queued payment with the route it would settle on, that route's planned chain, and the
    currency of each leg of the chain."""

    queued: QueuedPayment
    route: Route
    chain: tuple[Transfer, ...]
    currencies: tuple[str, ...]

    @property
    def payment(self) -> Payment:
        return self.queued.payment

    @property
    def transfer_ids(self) -> tuple[int, ...]:
        """Its transfers in the set's chain: (debit, credit) of each leg, in leg order."""
        pid = self.payment.payment_id
        return tuple(i for position in range(len(self.chain)) for i in lsm_ids(pid, position))


@dataclass(frozen=True, slots=True)
class _Plan:
    """A payment's route on structure, valid while its quote table and scenario are current
    (``route`` None: it has none this pass can book)."""

    payment: Payment
    rates: RateTable
    scenario: Scenario
    route: Route | None
    chain: tuple[Transfer, ...] = ()
    currencies: tuple[str, ...] = ()


class CrossCurrencyOffsetting:
    """The pass, with the plans it keeps between cycles (one per queued payment)."""

    def __init__(self) -> None:
        self._plans: dict[str, _Plan] = {}

    def run(
        self,
        engine: PaymentEngine,
        selection: Selection,
        one_currency: Callable[[Payment], bool],
    ) -> list[Entry]:
        """Settle what offsetting can of the selected queued payments that ``one_currency``
        (the one-currency passes' rule) leaves out; the entries to record."""
        candidates = self.candidates(engine, selection, one_currency)
        entries: list[Entry] = []
        if engine.settings.fifo_bypass:
            entries += _pairwise(engine, candidates)
            done = {entry[0].payment_id for entry in entries}
            candidates = [c for c in candidates if c.payment.payment_id not in done]
        chosen = choose(candidates, _netting(engine), fifo=not engine.settings.fifo_bypass)
        if chosen:
            entries += _settle(engine, chosen)
        return entries

    def candidates(
        self,
        engine: PaymentEngine,
        selection: Selection,
        one_currency: Callable[[Payment], bool],
    ) -> list[Candidate]:
        """Step 1 of the module's rule: the candidates in order of service."""
        fifo = not engine.settings.fifo_bypass
        stopped: dict[str, int] = {}  # FIFO: payer -> the level from which its payments wait
        transfers = 0
        value: dict[str, int] = defaultdict(int)  # per currency: one netting's int64 bound
        found: list[Candidate] = []
        for queued in engine.queue.select(selection):
            if len(found) >= CANDIDATES_MAX:
                break
            payer, rank_level = queued.payment.debtor_agent, queued.rank[0]
            if fifo and rank_level >= stopped.get(payer, 2):
                continue
            candidate = None if one_currency(queued.payment) else self._candidate(engine, queued)
            size = 0 if candidate is None else 2 * len(candidate.chain)  # transfers in the chain
            if (
                candidate is not None
                and transfers + size <= BATCH_EVENTS_MAX
                and _within_value(candidate, value)
            ):
                transfers += size
                found.append(candidate)
            else:
                stopped[payer] = min(rank_level, stopped.get(payer, 2))
        self._plans = {pid: plan for pid, plan in self._plans.items() if pid in engine.queue}
        return found

    def _candidate(self, engine: PaymentEngine, queued: QueuedPayment) -> Candidate | None:
        payment = queued.payment
        rates = engine.view.rates_at(engine.clock())
        plan = self._plans.get(payment.payment_id)
        if (
            plan is None
            or plan.payment != payment
            or plan.rates is not rates
            or plan.scenario != engine.scenario
        ):
            plan = _plan(engine, payment, rates)
            self._plans[payment.payment_id] = plan
        if plan.route is None:
            return None
        return Candidate(queued, plan.route, plan.chain, plan.currencies)


def _plan(engine: PaymentEngine, payment: Payment, rates: RateTable) -> _Plan:
    """The payment's best route on structure (liquidity is the netting's business) and its
    chain, if this pass can book it: every leg in a currency with a clearing account, no
    credit-capped account (credits come first in the set's chain), at most ``CHAIN_LEGS_MAX``
    legs (what recovery looks for). A payment routing refuses waits here: the retry pass
    rejects it in its turn."""
    unbookable = _Plan(payment, rates, engine.scenario, None)
    try:
        routes = engine.route(payment, for_cycle=True, alternatives=False)
        chain = engine.plan(payment, routes[0]) if routes else []
    except PaymentRejected:
        return unbookable
    if not chain or len(chain) > CHAIN_LEGS_MAX:
        return unbookable
    currencies = []
    for transfer in chain:
        credited = Balances.of(_state(engine, transfer.credit_account))
        code = _state(engine, transfer.debit_account).currency
        if credited.credits_must_not_exceed_debits or code not in engine.clearing:
            return unbookable
        currencies.append(code)
    return _Plan(payment, rates, engine.scenario, routes[0], tuple(chain), tuple(currencies))


def _within_value(candidate: Candidate, value: dict[str, int]) -> bool:
    """Add the candidate's leg value per currency to ``value`` if every total stays within
    ``AMOUNT_MAX`` (a netting's bound); False, and ``value`` unchanged, if not."""
    adding: dict[str, int] = defaultdict(int)
    for transfer, code in zip(candidate.chain, candidate.currencies, strict=True):
        adding[code] += transfer.amount
    if any(value[code] + amount > AMOUNT_MAX for code, amount in adding.items()):
        return False
    for code, amount in adding.items():
        value[code] += amount
    return True


# How a set of candidates nets: the netting's ``settled`` mask, one entry per candidate.
Netting = Callable[[Sequence[Candidate]], Sequence[bool]]


def choose(candidates: Sequence[Candidate], netting: Netting, *, fifo: bool) -> list[Candidate]:
    """Step 3 of the module's rule: the candidates the deferral rule keeps, with ``fifo`` each
    payer's a prefix of its candidates (``candidates`` in order of service)."""
    active = list(candidates)
    for _ in range(len(candidates) + 1):  # Each round but the last removes a payment.
        if not active:
            return []
        settled = list(netting(active))
        kept = [one for one, ok in zip(active, settled, strict=True) if ok]
        if not fifo or len(kept) == len(active):
            return kept
        in_order = _fifo_prefix(active, settled)
        if len(in_order) == len(kept):
            return kept
        active = in_order
    raise InvariantViolation("cross-currency offsetting did not converge")


def _fifo_prefix(active: Sequence[Candidate], settled: Sequence[bool]) -> list[Candidate]:
    """The settled candidates that no earlier deferred candidate of their payer holds back (in
    order of service, so a deferred urgent payment holds back all later ones, a deferred normal
    one only later normal ones)."""
    held_back: set[str] = set()
    kept = []
    for candidate, ok in zip(active, settled, strict=True):
        payer = candidate.payment.debtor_agent
        if not ok:
            held_back.add(payer)
        elif payer not in held_back:
            kept.append(candidate)
    return kept


def _pairwise(engine: PaymentEngine, candidates: Sequence[Candidate]) -> list[Entry]:
    """Step 2 of the module's rule (``fifo_bypass``): each pair's candidates on their own."""
    by_pair: dict[tuple[str, str], list[Candidate]] = defaultdict(list)
    for candidate in candidates:
        payer, payee = candidate.payment.debtor_agent, candidate.payment.creditor_agent
        by_pair[(min(payer, payee), max(payer, payee))].append(candidate)
    entries: list[Entry] = []
    pairs = [p for p in sorted(by_pair) if len({c.payment.debtor_agent for c in by_pair[p]}) == 2]
    for pair in pairs[:PAIRS_MAX]:
        group = by_pair[pair]
        settled = net(engine, group).settled.tolist()
        chosen = [one for one, ok in zip(group, settled, strict=True) if ok]
        if chosen:
            entries += _settle(engine, chosen)
    return entries


def _netting(engine: PaymentEngine) -> Netting:
    return lambda candidates: net(engine, candidates).settled.tolist()


def net(engine: PaymentEngine, candidates: Sequence[Candidate]) -> LegNetting:
    """The candidates' legs netted per ledger account, each debit-capped account limited to its
    headroom now (RTGS has no net debit caps); instruction ``i`` is ``candidates[i]``, and an
    urgent payment is deferred after normal ones."""
    states: dict[int, AccountState] = {}
    legs: list[NettingLeg] = []
    for index, candidate in enumerate(candidates):
        for transfer in candidate.chain:
            for account_id in (transfer.debit_account, transfer.credit_account):
                if account_id not in states:
                    states[account_id] = _state(engine, account_id)
            legs.append(
                NettingLeg(index, transfer.debit_account, transfer.credit_account, transfer.amount)
            )
    capacity = {}
    for account_id, state in states.items():
        balances = Balances.of(state)
        if balances.debits_must_not_exceed_credits:
            if balances.headroom_minor < 0:
                raise InvariantViolation(f"account {account_id} is past its limit")
            capacity[account_id] = min(balances.headroom_minor, AMOUNT_MAX)
    batch = NettingLegs.from_legs(
        legs,
        priority=[1 - service_level(c.payment.priority) for c in candidates],
        group_of={i: (state.account.participant, state.currency) for i, state in states.items()},
    )
    return net_legs(batch, capacity, {})


def offset_chain(engine: PaymentEngine, chosen: Sequence[Candidate]) -> list[Transfer]:
    """The set's one linked chain (see the module docstring): every leg through its currency's
    clearing account, all credits first, then all debits."""
    credits: list[Transfer] = []
    debits: list[Transfer] = []
    through: dict[int, int] = {}  # clearing account -> what it received less what it paid
    for candidate in chosen:
        payment_id = candidate.payment.payment_id
        ref = payment_id[:140]
        for position, (leg, code) in enumerate(
            zip(candidate.chain, candidate.currencies, strict=True)
        ):
            clearing = engine.clearing[code]
            debit_id, credit_id = lsm_ids(payment_id, position)
            kind = leg.code if leg.code in _KEPT_CODES else CODE_LSM
            credits.append(
                Transfer(
                    credit_id, clearing, leg.credit_account, leg.amount, LINKED, code=kind, ref=ref
                )
            )
            debits.append(
                Transfer(
                    debit_id, leg.debit_account, clearing, leg.amount, LINKED, code=kind, ref=ref
                )
            )
            through.setdefault(clearing, 0)
    chain = credits + debits
    for transfer in chain:
        if transfer.debit_account in through:
            through[transfer.debit_account] -= transfer.amount
        if transfer.credit_account in through:
            through[transfer.credit_account] += transfer.amount
    if any(through.values()) or len(chain) > BATCH_EVENTS_MAX:
        raise InvariantViolation("a cross-currency offsetting chain does not balance or fit")
    chain[-1] = chain[-1]._replace(flags=0)
    return chain


def _settle(engine: PaymentEngine, chosen: Sequence[Candidate]) -> list[Entry]:
    """Write the set's chain; the settled entries (none if the ledger refused it for a limit)."""
    results = engine.ledger.create_transfers(offset_chain(engine, chosen))
    if not all(result is TR.OK for result in results):
        failure = next(r for r in results if r is not TR.LINKED_EVENT_FAILED)
        if failure not in _LIMIT_RESULTS:  # The netting's balances were the ledger's.
            raise InvariantViolation(f"an offsetting chain the netting allowed failed: {failure}")
        return []
    settled_at = engine.ledger.state.last_timestamp
    text = f"{SETTLED_TEXT} with {len(chosen)} payments"
    entries: list[Entry] = []
    for candidate in chosen:
        outcome = PaymentOutcome(
            candidate.payment.payment_id,
            PaymentStatus.SETTLED,
            amount_delivered_minor=candidate.route.amount_delivered_minor,
            amount_sent_minor=candidate.route.legs[0].amount_minor,
            route=tuple(str(node) for node in candidate.route.nodes),
            transfer_ids=candidate.transfer_ids,
            settled_at=settled_at,
        )
        events: Events = [(PaymentStatus.SETTLED, text)]
        entries.append(engine.settled_from_queue(candidate.queued, outcome, events, COUNTER))
    return entries


def _state(engine: PaymentEngine, account_id: int) -> AccountState:
    state = engine.ledger.lookup_account(account_id)
    if state is None:
        raise InvariantViolation(f"a planned leg names account {account_id}, which is missing")
    return state
