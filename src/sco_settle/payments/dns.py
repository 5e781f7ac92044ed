"""Deferred net settlement (a ``SettlementMode``): accepted payments are held; one cycle nets
every selected held payment's legs per ledger account.

Algorithm (deterministic):
1. Route each held payment on structure and swap-line headroom (``ignore_balances``) and plan its
   chain; a payment that cannot be routed at all is rejected, one short of headroom waits.
2. Net per ledger account: each leg debits one account and credits another by its amount.
3. Defer until feasible: while some account's net debit exceeds what it can pay (available
   balance plus credit limit) or some participant's net debit in a currency exceeds its cap,
   defer the latest held payment (lowest priority, then latest arrival) that debits it. Deferred
   payments stay held for the next cycle; nothing is lost.
4. Settle all net positions as one linked chain through the currency's clearing account: every net
   debit first, then every net credit. Net positions sum to zero per currency (asserted).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import TYPE_CHECKING, ClassVar

from sco_settle.domain.account import AccountFlags
from sco_settle.domain.results import CreateTransferResult as TR
from sco_settle.domain.transfer import Transfer
from sco_settle.ledger import BATCH_EVENTS_MAX, InvariantViolation
from sco_settle.ledger.state_machine import AccountState
from sco_settle.payments import recovery
from sco_settle.payments.model import Payment, PaymentOutcome, PaymentRejected, PaymentStatus
from sco_settle.payments.modes import CycleReport, Entry, register
from sco_settle.payments.network_view import available
from sco_settle.payments.plan import CODE_NETTING, LINKED, transfer_id_for
from sco_settle.payments.queue import QueuedPayment, Selection
from sco_settle.payments.routing import Route

if TYPE_CHECKING:
    from sco_settle.payments.engine import PaymentEngine

SETTLE_ATTEMPTS_MAX = 32
_DEBITS_CAPPED = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
# A held payment planned for the cycle: its queue entry, route and (unbooked) chain of legs.
Plan = tuple[QueuedPayment, Route, list[Transfer]]
# What breaks a cycle's feasibility: an account id, or a (participant, currency) over its cap.
Culprit = int | tuple[str, str]
HELD = "held for the next settlement cycle"


class DeferredNet:
    name: ClassVar[str] = "dns"
    cycle_kind: ClassVar[str] = "dns"
    runs_when_idle: ClassVar[bool] = False  # Cycles run at their scheduled times.

    def on_accepted(
        self, engine: PaymentEngine, payment: Payment, events: list[tuple[PaymentStatus, str]]
    ) -> PaymentOutcome | None:
        engine.route(payment, for_cycle=True)  # Refuse now what can never settle.
        return engine.enqueue(payment, events, reason=None, text=HELD)

    def after_batch(self, engine: PaymentEngine, settled_any: bool) -> None:
        return None

    def run_cycle(
        self, engine: PaymentEngine, selection: Selection
    ) -> tuple[CycleReport, list[Entry]]:
        return net_cycle(engine, selection)


def net_cycle(engine: PaymentEngine, selection: Selection) -> tuple[CycleReport, list[Entry]]:
    entries: list[Entry] = []
    plans: list[Plan] = []
    for queued in engine.queue.select(selection):
        events: list[tuple[PaymentStatus, str]] = []
        try:
            routes = engine.route(queued.payment, for_cycle=True)
            if not routes:
                continue  # Swap-line headroom is exhausted: wait for a later cycle.
            legs = engine.plan(queued.payment, routes[0])
        except PaymentRejected as rejection:
            engine.queue.remove(queued.payment.payment_id)
            outcome = engine.reject(queued.payment, rejection.reason, rejection.text, events)
            entries.append((queued.payment, outcome, None, events))
            continue
        plans.append((queued, routes[0], legs))
    included = list(plans)
    deferred: list[Plan] = []
    chain: list[Transfer] = []
    for _ in range(SETTLE_ATTEMPTS_MAX):
        net = _net(included)
        _defer_until_feasible(engine, included, deferred, net)
        net = _net(included)
        if not included:
            break
        chain = _cycle_chain(engine, included, net)
        if not chain:
            break  # Every position nets to zero: the cycle settles without moving money.
        # Write-ahead, as for gross payments: a crash after the ledger commit leaves intents
        # naming the cycle's chain, so the restart records these payments settled by it.
        engine.journal.begin(
            [
                (q.payment, recovery.cycle_intent(chain[0].id, chain[-1].id, route))
                for q, route, _ in included
            ],
            engine.ledger.clock(),
        )
        results = engine.ledger.create_transfers(chain)
        if all(result is TR.OK for result in results) or results[0] is TR.EXISTS:
            break
        failed = next(i for i, r in enumerate(results) if r is not TR.LINKED_EVENT_FAILED)
        _defer_latest_debiting(included, deferred, chain[failed].debit_account)
    else:
        deferred.extend(included)
        included = []
    report = _report(engine, included, deferred)
    engine.journal.drop_intents(q.payment.payment_id for q, _, _ in deferred)
    net_ids = (chain[0].id, chain[-1].id) if included and chain else ()
    for queued, route, _ in included:
        # The payment's own legs were netted, never booked: its transfers are the two ends of
        # the net chain that settled it (none when every position netted to zero).
        outcome = PaymentOutcome(
            queued.payment.payment_id,
            PaymentStatus.SETTLED,
            reason_text=f"{recovery.NET_CYCLE_TEXT} {report.number}",
            amount_delivered_minor=route.amount_delivered_minor,
            route=tuple(str(node) for node in route.nodes),
            transfer_ids=net_ids,
            settled_at=engine.ledger.state.last_timestamp,
        )
        events = [(PaymentStatus.SETTLED, f"{recovery.NET_CYCLE_TEXT} {report.number}")]
        entries.append(engine.settled_from_queue(queued, outcome, events, "settled_in_cycles"))
    engine.stats.deferred_in_cycles += len(deferred)
    return report, entries


def _net(plans: list[Plan]) -> dict[int, int]:
    net: dict[int, int] = defaultdict(int)
    for _, _, chain in plans:
        for transfer in chain:
            net[transfer.debit_account] -= transfer.amount
            net[transfer.credit_account] += transfer.amount
    return net


def _shortfalls(engine: PaymentEngine, net: dict[int, int]) -> list[tuple[int, Culprit]]:
    """(shortfall, account id or (participant, currency)) for every breach, worst first."""
    breaches: list[tuple[int, Culprit]] = []
    by_participant: dict[tuple[str, str], int] = defaultdict(int)
    for account_id, position in net.items():
        state = _state(engine, account_id)
        by_participant[(state.account.participant, state.currency)] += position
        if position >= 0 or not state.flags & _DEBITS_CAPPED:
            continue
        capacity = available(state) + state.credit_limit
        if -position > capacity:
            breaches.append((-position - capacity, account_id))
    for key, position in by_participant.items():
        cap = engine.settings.net_debit_caps.get(key)
        if cap is not None and -position > cap:
            breaches.append((-position - cap, key))
    breaches.sort(key=lambda b: (-b[0], str(b[1])))
    return breaches


def _defer_until_feasible(
    engine: PaymentEngine, included: list[Plan], deferred: list[Plan], net: dict[int, int]
) -> None:
    for _ in range(len(included) + 1):
        breaches = _shortfalls(engine, _net(included))
        if not breaches:
            return
        _, culprit = breaches[0]
        if isinstance(culprit, int):
            _defer_latest_debiting(included, deferred, culprit)
        else:
            participant, code = culprit
            accounts = {
                a.id
                for a in engine.view.accounts_by_key.values()
                if a.participant == participant and a.currency == code
            }
            _defer_latest_debiting(included, deferred, None, accounts)
    raise AssertionError("deferral must terminate")


def _defer_latest_debiting(
    included: list[Plan],
    deferred: list[Plan],
    account_id: int | None,
    accounts: set[int] | None = None,
) -> None:
    targets = accounts if accounts is not None else {account_id}
    for position in range(len(included) - 1, -1, -1):
        if any(t.debit_account in targets for t in included[position][2]):
            deferred.append(included.pop(position))
            return
    raise AssertionError(f"no held payment debits {targets}")


def _cycle_chain(
    engine: PaymentEngine, included: list[Plan], net: dict[int, int]
) -> list[Transfer]:
    key = hashlib.blake2b(
        "|".join(sorted(q.payment.payment_id for q, _, _ in included)).encode(), digest_size=16
    ).hexdigest()
    totals: dict[str, int] = defaultdict(int)
    debits, credits = [], []
    for account_id, position in sorted(net.items()):
        if position == 0:
            continue
        code = _state(engine, account_id).currency
        totals[code] += position
        clearing = engine.clearing[code]
        if position < 0:
            debits.append(
                Transfer(
                    transfer_id_for(f"cycle:{key}:{account_id}"),
                    account_id,
                    clearing,
                    -position,
                    LINKED,
                    code=CODE_NETTING,
                )
            )
        else:
            credits.append(
                Transfer(
                    transfer_id_for(f"cycle:{key}:{account_id}"),
                    clearing,
                    account_id,
                    position,
                    LINKED,
                    code=CODE_NETTING,
                )
            )
    if any(total != 0 for total in totals.values()):
        raise InvariantViolation(f"net positions do not sum to zero per currency: {totals}")
    chain = debits + credits
    if len(chain) > BATCH_EVENTS_MAX:
        raise InvariantViolation(f"a net chain of {len(chain)} transfers exceeds one batch")
    if chain:
        chain[-1] = chain[-1]._replace(flags=0)
    return chain


def _report(engine: PaymentEngine, included: list[Plan], deferred: list[Plan]) -> CycleReport:
    gross: dict[str, int] = defaultdict(int)
    for _, _, chain in included:
        for transfer in chain:
            gross[_state(engine, transfer.debit_account).currency] += transfer.amount
    net_debit: dict[str, int] = defaultdict(int)
    for account_id, position in _net(included).items():
        if position < 0:
            net_debit[_state(engine, account_id).currency] -= position
    return CycleReport(
        DeferredNet.cycle_kind,
        number=engine.stats.cycles + 1,
        settled=len(included),
        deferred=len(deferred),
        gross_minor=dict(sorted(gross.items())),
        net_minor=dict(sorted(net_debit.items())),
    )


def _state(engine: PaymentEngine, account_id: int) -> AccountState:
    state = engine.ledger.lookup_account(account_id)
    if state is None:
        raise InvariantViolation(f"a planned leg names account {account_id}, which is missing")
    return state


register(DeferredNet.name, DeferredNet)
