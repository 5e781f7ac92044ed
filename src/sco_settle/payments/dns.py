"""Deferred net settlement (a ``SettlementMode``): accepted payments are held; one cycle nets the
selected held payments' legs per ledger account and settles the net positions as one chain.

Algorithm (deterministic). Which payments wait is ``payments.netting``'s deferral rule, stated
once, in that module's docstring; this module only feeds it and acts on its answer.
1. Route. Every cycle routes each held payment afresh, so one deferred by an earlier cycle may
   take another way: on current balances first (``engine.route``), and only when no route fits
   them, on structure and swap-line headroom (``for_cycle=True``), because netting may still
   make such a route fit. The chain of the route is planned, never booked: only net positions
   are. A payment that cannot be routed at all is rejected; one short of swap-line headroom
   stays held.
2. Net and defer (``netting.net_legs``): positions per ledger account, under two kinds of limit,
   each debit-capped account's capacity (available balance plus credit limit) and each
   (participant, currency)'s net debit cap (``EngineSettings.net_debit_caps``). The batch order
   is the queue's order of service and an urgent payment has the higher priority, so normal
   payments are deferred before urgent ones, and the latest arrivals first.
3. Go around a short account. A deferred payment takes its next route (its routes on balances,
   then those on structure) whose chain debits no account of the limit that deferred it, and
   the cycle nets again. Each switch uses up routes, so this ends; at most
   ``REROUTE_ROUNDS_MAX`` rounds run. Payments still deferred stay held: nothing is lost.
4. Settle. Write-ahead intents name the cycle's chain before it goes to the ledger: all net
   positions as one linked chain through each currency's clearing account, every net debit
   first, then every net credit. Positions sum to zero per currency (``InvariantViolation``
   otherwise). Should the ledger refuse a net debit (a capacity it was read with is stale), that
   account may not be a net debtor in this cycle and steps 2-3 run again, at most
   ``SETTLE_ATTEMPTS_MAX`` times in all.

One netting holds at most ``AMOUNT_MAX`` of leg value per currency (netting's int64 bound); the
held payments beyond it, in order of service, wait for a later cycle.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from sco_settle.domain.balances import Balances
from sco_settle.domain.money import AMOUNT_MAX
from sco_settle.domain.results import CreateTransferResult as TR
from sco_settle.domain.transfer import Transfer
from sco_settle.ledger import BATCH_EVENTS_MAX, InvariantViolation
from sco_settle.ledger.state_machine import AccountState
from sco_settle.payments import recovery
from sco_settle.payments.model import Payment, PaymentOutcome, PaymentRejected, PaymentStatus
from sco_settle.payments.modes import CycleReport, Entry, Events, register
from sco_settle.payments.netting import (
    LegNetting,
    NetDebitLimit,
    NettingLeg,
    NettingLegs,
    net_legs,
)
from sco_settle.payments.plan import CODE_NETTING, LINKED, transfer_id_for
from sco_settle.payments.queue import QueuedPayment, Selection, level
from sco_settle.payments.routing import Route

if TYPE_CHECKING:
    from sco_settle.payments.engine import PaymentEngine

SETTLE_ATTEMPTS_MAX = 32
REROUTE_ROUNDS_MAX = 16
HELD = "held for the next settlement cycle"


class DeferredNet:
    name: ClassVar[str] = "dns"
    cycle_kind: ClassVar[str] = "dns"
    runs_when_idle: ClassVar[bool] = False  # Cycles run at their scheduled times.
    # Held payments move nothing until their cycle nets them: they reserve nothing.
    reserves_liquidity: ClassVar[bool] = False

    def on_accepted(
        self, engine: PaymentEngine, payment: Payment, events: Events
    ) -> PaymentOutcome | None:
        # Refuse what never can; one route is enough to know it can (what ``route`` refuses
        # comes from a search that found none, which does not depend on how many it sought).
        engine.route(payment, for_cycle=True, alternatives=False, refuse_hopeless=True)
        return engine.enqueue(payment, events, reason=None, text=HELD)

    def after_batch(self, engine: PaymentEngine, settled_any: bool) -> None:
        return None

    def run_cycle(
        self, engine: PaymentEngine, selection: Selection
    ) -> tuple[CycleReport, list[Entry]]:
        return net_cycle(engine, selection)


@dataclass
class _Held:
    """A held payment in this cycle: its routes (best first), the one it takes (``chosen``) with
    that route's planned, never booked, chain, and how far down the routes it has looked."""

    queued: QueuedPayment
    routes: list[Route]
    chain: list[Transfer]
    chosen: int = 0
    tried: int = 0
    on_structure: bool = False  # ``routes`` include the routes on structure

    @property
    def payment(self) -> Payment:
        return self.queued.payment

    @property
    def route(self) -> Route:
        return self.routes[self.chosen]


# How a cycle routes and plans one held payment (``_route_held``'s contract); another netting
# mode (``payments.union``) passes its own and keeps the rest of the cycle.
RouteHeld = Callable[["PaymentEngine", QueuedPayment], "_Held | None"]


def net_cycle(
    engine: PaymentEngine,
    selection: Selection,
    route_held: RouteHeld | None = None,
    kind: str = "dns",
) -> tuple[CycleReport, list[Entry]]:
    entries: list[Entry] = []
    held: list[_Held] = []
    waiting = 0  # Short of swap-line headroom on every route: held for a later cycle.
    # Route on the balances as they are now: a compiled graph may lag the ledger by a few
    # payments (``NetworkView.graph``), and here no refused chain would correct a stale choice.
    engine.view.invalidate()
    for queued in engine.queue.select(selection):
        try:
            found = (route_held or _route_held)(engine, queued)
        except PaymentRejected as rejection:
            engine.queue.remove(queued.payment.payment_id)
            events: Events = []
            outcome = engine.reject(queued.payment, rejection.reason, rejection.text, events)
            entries.append((queued.payment, outcome, None, events))
            continue
        if found is None:
            waiting += 1
        else:
            held.append(found)
    included, netting, chain = _settle(engine, held)
    settled_ids = {one.payment.payment_id for one in included}
    deferred = [one for one in held if one.payment.payment_id not in settled_ids]
    report = _report(engine, netting, len(included), len(deferred) + waiting)
    report.kind = kind
    engine.records.drop_intents(one.payment.payment_id for one in deferred)
    net_ids = (chain[0].id, chain[-1].id) if chain else ()
    text = f"{recovery.NET_CYCLE_TEXT} {report.number}"
    for one in included:
        # The payment's own legs were netted, never booked: its transfers are the two ends of
        # the net chain that settled it (none when every position netted to zero).
        outcome = PaymentOutcome(
            one.payment.payment_id,
            PaymentStatus.SETTLED,
            reason_text=text,
            amount_delivered_minor=one.route.amount_delivered_minor,
            amount_sent_minor=one.route.legs[0].amount_minor,
            route=tuple(str(node) for node in one.route.nodes),
            transfer_ids=net_ids,
            settled_at=engine.ledger.state.last_timestamp,
        )
        events = [(PaymentStatus.SETTLED, text)]
        entries.append(engine.settled_from_queue(one.queued, outcome, events, "settled_in_cycles"))
    engine.stats.deferred_in_cycles += report.deferred
    return report, entries


Held = _Held  # for modes that build their own held payments (``RouteHeld``)


def _route_held(engine: PaymentEngine, queued: QueuedPayment) -> _Held | None:
    """Route on current balances, else on structure; plan the best route. None: no route has
    the swap-line headroom; ``PaymentRejected``: none ever will."""
    routes, on_structure = engine.route(queued.payment), False
    if not routes:
        routes, on_structure = engine.route(queued.payment, for_cycle=True), True
    if not routes:
        return None
    chain = engine.plan(queued.payment, routes[0])
    return _Held(queued, routes, chain, on_structure=on_structure)


route_held = _route_held  # the default ``RouteHeld``: over the network's routes


def _settle(
    engine: PaymentEngine, held: list[_Held]
) -> tuple[list[_Held], LegNetting | None, list[Transfer]]:
    """Net, defer and go around short accounts, then book the net chain: the payments it
    settled, their netting, and the chain (empty when every position netted to zero)."""
    refused: set[int] = set()
    for _ in range(SETTLE_ATTEMPTS_MAX):
        admitted, netting = _net_rerouting(engine, held, refused)
        settled = netting.settled.tolist()
        included = [one for one, kept in zip(admitted, settled, strict=True) if kept]
        chain = _cycle_chain(engine, included, netting)
        if not chain:
            return included, netting, []
        # Write-ahead, as for gross payments: a crash after the ledger commit leaves intents
        # naming the cycle's chain, so the restart records these payments settled by it.
        engine.records.begin(
            [
                (one.payment, recovery.cycle_intent(chain[0].id, chain[-1].id, one.route))
                for one in included
            ],
            engine.ledger.clock(),
        )
        results = engine.ledger.create_transfers(chain)
        if all(result is TR.OK for result in results) or results[0] is TR.EXISTS:
            return included, netting, chain
        failed = chain[next(i for i, r in enumerate(results) if r is not TR.LINKED_EVENT_FAILED)]
        if failed.debit_account in engine.clearing.values():
            break  # A net credit refused: no deferral can mend that, so this cycle settles none.
        refused.add(failed.debit_account)
    return [], None, []


def _net_rerouting(
    engine: PaymentEngine, held: list[_Held], refused: set[int]
) -> tuple[list[_Held], LegNetting]:
    """Step 2 and 3: net, move each deferred payment that can onto a route around the limit
    that deferred it, and net again until none moves."""
    admitted, netting = _net(engine, held, refused)
    groups: dict[tuple[str, str], frozenset[int]] = {}
    for _ in range(REROUTE_ROUNDS_MAX):
        moved = False
        for index, limit in zip(
            netting.deferral_order.tolist(), netting.deferral_limits, strict=True
        ):
            avoid = _accounts_of(engine, limit, groups)
            if _reroute(engine, admitted[index], avoid):
                moved = True
        if not moved:
            break
        admitted, netting = _net(engine, held, refused)
    return admitted, netting


def _accounts_of(
    engine: PaymentEngine,
    limit: NetDebitLimit,
    groups: dict[tuple[str, str], frozenset[int]],
) -> frozenset[int]:
    """The accounts a route must not debit to stay clear of ``limit``."""
    if limit.holder is not None:
        return frozenset({limit.holder})
    key = (limit.participant, limit.currency)
    if key not in groups:
        groups[key] = frozenset(
            account.id
            for account in engine.view.accounts.values()
            if (account.participant, account.currency) == key
        )
    return groups[key]


def _reroute(engine: PaymentEngine, held: _Held, avoid: frozenset[int]) -> bool:
    """Move ``held`` to its next route whose chain debits no account in ``avoid``: first among
    its routes on balances, then among its routes on structure. False when none is left."""
    while True:
        for index in range(held.tried + 1, len(held.routes)):
            held.tried = index
            try:
                chain = engine.plan(held.payment, held.routes[index])
            except PaymentRejected:
                continue  # This route cannot be planned; its others still can.
            if not any(transfer.debit_account in avoid for transfer in chain):
                held.chosen, held.chain = index, chain
                return True
        if held.on_structure:
            return False
        held.on_structure = True
        try:
            structural = engine.route(held.payment, for_cycle=True)
        except PaymentRejected:
            return False
        known = {route.nodes for route in held.routes}
        held.routes.extend(route for route in structural if route.nodes not in known)


def _net(
    engine: PaymentEngine, held: list[_Held], refused: set[int]
) -> tuple[list[_Held], LegNetting]:
    """The netting of the held payments' current chains (the ``admitted`` ones: those that fit
    one netting's value bound, in order), each instruction indexing ``admitted``."""
    states: dict[int, AccountState] = {}
    totals: dict[str, int] = defaultdict(int)
    admitted: list[_Held] = []
    legs: list[NettingLeg] = []
    for one in held:
        value: dict[str, int] = defaultdict(int)
        for transfer in one.chain:
            for account_id in (transfer.debit_account, transfer.credit_account):
                if account_id not in states:
                    states[account_id] = _state(engine, account_id)
            value[states[transfer.debit_account].currency] += transfer.amount
        if any(totals[code] + amount > AMOUNT_MAX for code, amount in value.items()):
            continue  # Beyond one netting's value: it waits for a later cycle.
        for code, amount in value.items():
            totals[code] += amount
        index = len(admitted)
        legs.extend(
            NettingLeg(index, t.debit_account, t.credit_account, t.amount) for t in one.chain
        )
        admitted.append(one)
    capacity = {
        account_id: 0 if account_id in refused else _capacity(state)
        for account_id, state in states.items()
        if account_id in refused or Balances.of(state).debits_must_not_exceed_credits
    }
    batch = NettingLegs.from_legs(
        legs,
        # Urgent (level 0) is the higher priority; the batch order is the order of service.
        priority=[1 - level(one.payment.priority) for one in admitted],
        group_of={i: (state.account.participant, state.currency) for i, state in states.items()},
    )
    return admitted, net_legs(batch, capacity, engine.settings.net_debit_caps)


def _capacity(state: AccountState) -> int:
    """What a debit-capped account can pay out as a net debit: available plus credit limit."""
    capacity = Balances.of(state).headroom_minor
    if capacity < 0:
        raise InvariantViolation(f"account {state.id} is past its limit by {-capacity}")
    return min(capacity, AMOUNT_MAX)  # Beyond AMOUNT_MAX no net debit can reach: unlimited.


def _cycle_chain(
    engine: PaymentEngine, included: list[_Held], netting: LegNetting
) -> list[Transfer]:
    key = hashlib.blake2b(
        "|".join(sorted(one.payment.payment_id for one in included)).encode(), digest_size=16
    ).hexdigest()
    totals: dict[str, int] = defaultdict(int)
    debits, credits = [], []
    for account_id, position in sorted(netting.positions().items()):
        if position == 0:
            continue
        code = _state(engine, account_id).currency
        totals[code] += position
        clearing = engine.clearing[code]
        transfer_id = transfer_id_for(f"cycle:{key}:{account_id}")
        if position < 0:
            debits.append(
                Transfer(transfer_id, account_id, clearing, -position, LINKED, code=CODE_NETTING)
            )
        else:
            credits.append(
                Transfer(transfer_id, clearing, account_id, position, LINKED, code=CODE_NETTING)
            )
    # Checked again right before the chain is written (netting checked its own result).
    if any(total != 0 for total in totals.values()):
        raise InvariantViolation(f"net positions do not sum to zero per currency: {totals}")
    chain = debits + credits
    if len(chain) > BATCH_EVENTS_MAX:
        raise InvariantViolation(f"a net chain of {len(chain)} transfers exceeds one batch")
    if chain:
        chain[-1] = chain[-1]._replace(flags=0)
    return chain


def _report(
    engine: PaymentEngine, netting: LegNetting | None, settled: int, deferred: int
) -> CycleReport:
    """``gross_minor``: the value of the settled payments' legs per currency; ``net_minor``:
    the net debits the cycle's chain moved."""
    return CycleReport(
        DeferredNet.cycle_kind,
        number=engine.stats.cycles + 1,
        settled=settled,
        deferred=deferred,
        gross_minor=netting.gross_minor() if netting is not None and settled else {},
        net_minor=netting.net_debit_minor() if netting is not None and settled else {},
    )


def _state(engine: PaymentEngine, account_id: int) -> AccountState:
    state = engine.ledger.lookup_account(account_id)
    if state is None:
        raise InvariantViolation(f"a planned leg names account {account_id}, which is missing")
    return state


register(DeferredNet.name, DeferredNet)
