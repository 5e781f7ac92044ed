"""The payment engine: validate, screen, route, plan, settle, queue, record.

Invariants:
- A payment settles through one linked chain of ledger transfers (``payments.plan``), so both
  currency legs and every hop settle together or not at all, also across a crash.
- A payment id is applied at most once: the journal answers a resubmission with the first outcome,
  and the chain's transfer ids are derived from the payment id, so even a payment whose journal
  entry was lost in a crash is recognised by the ledger instead of settling twice.
- The queue never settles beyond available liquidity: every settlement is a ledger chain, and the
  ledger refuses any transfer that would pass an account's limit.
- Outcomes are returned only after the ledger chain and the journal entry are durable.

*When* an accepted payment settles is its settlement mode's business (``payments.modes``: the
``SettlementMode`` contract; ``payments.rtgs``: gross at once, else queued, and the
liquidity-saving mechanism on each cycle; ``payments.dns``: held, then netted on each cycle). The
engine offers the modes a narrow API: ``queue`` (with ``Selection``), ``route``, ``plan``,
``apply_route``, ``enqueue``, ``reject``, ``settled_from_queue``, ``clearing``; and everyone else
``submit_many``, ``run_cycle(selection)``, ``return_payment``, ``recover``, ``audit``. Queued
payments past the timeout are rejected (TM01) at the start of each cycle.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from sco_settle.domain.account import Account, AccountKind
from sco_settle.domain.money import AMOUNT_MAX, is_currency
from sco_settle.domain.participants import BicError, parse_bic
from sco_settle.domain.results import CreateTransferResult as TR
from sco_settle.domain.transfer import Transfer
from sco_settle.ledger import BATCH_EVENTS_MAX, Ledger
from sco_settle.network import account_id_for_key
from sco_settle.payments import recovery
from sco_settle.payments.model import (
    REASON_TEXT,
    Payment,
    PaymentOutcome,
    PaymentRejected,
    PaymentStatus,
    Reason,
    ReturnOutcome,
)
from sco_settle.payments.modes import CycleReport, Entry, Mode, SettlementMode, mode_for
from sco_settle.payments.network_view import NetworkView, Scenario
from sco_settle.payments.plan import (
    CODE_NETTING,
    CODE_RETURN,
    LINKED,
    PlanError,
    plan_route,
    return_leg_id,
)
from sco_settle.payments.queue import (
    EVERYTHING,
    FIFO_TEXT,
    PaymentQueue,
    QueuedPayment,
    Selection,
)
from sco_settle.payments.records import PaymentRecords
from sco_settle.payments.routing import ExclusionReason, Route, RouteStatus, find_routes

NS_PER_SECOND = 1_000_000_000
_LIQUIDITY_REASONS = frozenset(
    {
        ExclusionReason.INSUFFICIENT_BALANCE,
        ExclusionReason.EXCEEDS_CREDIT_LIMIT,
        ExclusionReason.EXCEEDS_SWAP_LINE_HEADROOM,
    }
)
_EXISTS = frozenset({TR.EXISTS, TR.EXISTS_WITH_DIFFERENT_FIELDS})
_LIMIT_RESULTS = frozenset(
    {TR.EXCEEDS_CREDITS, TR.EXCEEDS_DEBITS, TR.OVERFLOWS_DEBITS, TR.OVERFLOWS_CREDITS},
)

Screen = Callable[[Payment], tuple[Reason, str] | None]


@dataclass(frozen=True)
class EngineSettings:
    mode: Mode = Mode.RTGS
    queue_timeout_ns: int = 4 * 3600 * NS_PER_SECOND
    queue_max: int = 200_000
    # FIFO (TARGET2): no payment of a payer settles while an earlier one of the same or a higher
    # priority is queued. ``fifo_bypass`` lets the LSM's pairwise offsetting and gridlock
    # resolution settle queued payments out of that order (a deployment's documented choice).
    fifo_bypass: bool = False
    # One payer's share of the queue: beyond it, its own payments are refused (AM04), so no
    # participant can fill the queue (or slow every liquidity-saving pass) for the others.
    queue_max_per_payer: int = 5_000
    routes_max: int = 3
    hop_charge_minor: int = 0
    # DNS: largest net debit per (participant BIC, currency), minor units; absent = liquidity only.
    net_debit_caps: dict[tuple[str, str], int] = field(default_factory=dict)


def _linked_by_payer(items: list) -> list[Transfer]:
    """The planned chains as one ledger batch, each payer's chains (adjacent, in arrival order)
    linked into one: if any of a payer's payments is refused, all of them are, and each is
    then retried alone in order, so a later payment never settles while an earlier one of the
    same payer is queued (FIFO)."""
    batch: list[Transfer] = []
    for position, item in enumerate(items):
        chain = item[4]
        following = items[position + 1] if position + 1 < len(items) else None
        if following is not None and following[1].debtor_agent == item[1].debtor_agent:
            chain = [*chain[:-1], chain[-1]._replace(flags=chain[-1].flags | LINKED)]
        batch.extend(chain)
    return batch


def _chain_groups(planned: list) -> Iterable[list]:
    """Consecutive planned payments whose chains together fit one ledger batch."""
    group: list = []
    size = 0
    for item in planned:
        if group and size + len(item[4]) > BATCH_EVENTS_MAX:
            yield group
            group, size = [], 0
        group.append(item)
        size += len(item[4])
    if group:
        yield group


def pass_all(payment: Payment) -> tuple[Reason, str] | None:
    """The default screen: every payment passes."""
    return None


class NameScreen:
    """Screens debtor and creditor names against a list (e.g. a consolidated sanctions list)."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = {" ".join(name.casefold().split()) for name in names}

    def __call__(self, payment: Payment) -> tuple[Reason, str] | None:
        for role, party in (("debtor", payment.debtor), ("creditor", payment.creditor)):
            if " ".join(party.name.casefold().split()) in self.names:
                return Reason.RR04, f"{role} name matches the screening list"
        return None


@dataclass
class EngineStats:
    settled_immediately: int = 0
    settled_from_queue: int = 0
    settled_by_offsetting: int = 0
    settled_by_gridlock: int = 0
    settled_in_cycles: int = 0
    deferred_in_cycles: int = 0
    queue_delays_ns: list[int] = field(default_factory=list)
    rejections: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    cycles: int = 0  # cycles run (RTGS: LSM passes; DNS: netting cycles)


class PaymentEngine:
    def __init__(
        self,
        ledger: Ledger,
        view: NetworkView,
        journal: PaymentRecords,
        settings: EngineSettings = EngineSettings(),
        *,
        screen: Screen = pass_all,
        scenario: Scenario | None = None,
    ) -> None:
        self.ledger = ledger
        self.view = view
        self.journal = journal
        self.settings = settings
        self.screen = screen
        self.scenario = scenario or Scenario()
        self.stats = EngineStats()
        self.mode: SettlementMode = mode_for(settings.mode)
        self.queue = PaymentQueue()
        self._queue_seq = 0
        self.clearing = self._open_clearing_accounts()
        for payment, seq in journal.queued():
            self.queue.add(QueuedPayment(payment, seq, ledger.clock()))
            self._queue_seq = max(self._queue_seq, seq)
        self._accounts_of = recovery.holder_index(
            (key, account.id) for key, account in view.accounts_by_key.items()
        )
        self._issuance_ids: dict[str, tuple[int, ...]] = _issuance_accounts(view)
        self._credit_line_max: dict[str, int] = {}
        # Start-up reconciliation: what a crash left unrecorded is settled from the ledger.
        self.recovered = self.recover()

    # -- public API -------------------------------------------------------------------------

    def submit(self, payment: Payment) -> PaymentOutcome:
        return self.submit_many([payment])[0]

    def submit_many(self, payments: Sequence[Payment]) -> list[PaymentOutcome]:
        """Take a batch of payments through their life; one durable journal write per batch.

        RTGS: every accepted payment is routed and planned first, then all their chains go to
        the ledger together (one durable commit per 8,190 transfers, each chain still all or
        nothing). A chain the ledger refuses (an earlier payment of the batch took the liquidity,
        or the graph was stale) is retried on its own: other routes, fresh routing, or the queue.
        """
        outcomes: list[PaymentOutcome | None] = [None] * len(payments)
        events_of: dict[int, list] = {}
        first_index: dict[str, int] = {}
        duplicates: list[tuple[int, int]] = []
        planned: list[tuple[int, Payment, list, list[Route], list[Transfer]]] = []
        seen = self.journal.get_many([payment.payment_id for payment in payments])
        for index, payment in enumerate(payments):
            if payment.payment_id in first_index:
                duplicates.append((index, first_index[payment.payment_id]))
                continue
            known = self._resubmission(payment, seen.get(payment.payment_id))
            if known is not None:
                outcomes[index] = known
                continue
            first_index[payment.payment_id] = index
            events: list[tuple[PaymentStatus, str]] = [(PaymentStatus.RECEIVED, "")]
            events_of[index] = events
            try:
                self._accept(payment, events)
                held = self.mode.on_accepted(self, payment, events)
                if held is not None:
                    outcomes[index] = held
                    continue
                routes = self.route(payment, alternatives=False)
                if not routes:
                    outcomes[index] = self.enqueue(payment, events)
                    continue
                planned.append((index, payment, events, routes, self.plan(payment, routes[0])))
            except PaymentRejected as rejection:
                outcomes[index] = self.reject(payment, rejection.reason, rejection.text, events)
        # Write-ahead: a chain reaches the ledger only after its payment's intent is durable, so
        # a crash can never leave money moved without a trace of the payment (``recover``).
        self.journal.begin([(item[1], "settle") for item in planned], self.ledger.clock())
        for group in _chain_groups(sorted(planned, key=lambda item: item[1].debtor_agent)):
            ready = []
            for item in group:  # A payer's earlier payment may have joined the queue since.
                if self.queue.blocks(item[1]):
                    outcomes[item[0]] = self._wait_in_line(item[1], item[2])
                else:
                    ready.append(item)
            results = self.ledger.create_transfers(_linked_by_payer(ready))
            position = 0
            for index, payment, events, routes, chain in ready:
                mine = results[position : position + len(chain)]
                position += len(chain)
                outcomes[index] = self._after_batch(payment, routes, chain, mine, events)
        for index, first in duplicates:
            original = outcomes[first]
            assert original is not None  # The first of the duplicates was answered above.
            outcomes[index] = replace(original, duplicate=True)
        entries = []
        for index in sorted(events_of):
            outcome = outcomes[index]
            assert outcome is not None
            queued = self.queue.get(payments[index].payment_id)
            entries.append(
                (payments[index], outcome, queued.seq if queued else None, events_of[index])
            )
        self.journal.record(entries, self.ledger.clock())
        settled_any = any(o is not None and o.status is PaymentStatus.SETTLED for o in outcomes)
        self.mode.after_batch(self, settled_any)
        return outcomes  # type: ignore[return-value]

    def _wait_in_line(self, payment: Payment, events: list) -> PaymentOutcome:
        """FIFO: queue ``payment`` behind its payer's earlier queued payments."""
        try:
            return self.enqueue(payment, events, reason=None, text=FIFO_TEXT)
        except PaymentRejected as rejection:
            return self.reject(payment, rejection.reason, rejection.text, events)

    def _accept(self, payment: Payment, events: list) -> None:
        """Validate and screen, journalling each step; raise ``PaymentRejected`` to refuse."""
        self._validate(payment)
        events.append((PaymentStatus.VALIDATED, ""))
        verdict = self.screen(payment)
        if verdict is not None:
            raise PaymentRejected(*verdict)
        events.append((PaymentStatus.SCREENED, ""))

    def _after_batch(
        self,
        payment: Payment,
        routes: list[Route],
        chain: list[Transfer],
        results: list,
        events: list,
    ) -> PaymentOutcome:
        try:
            outcome = self._judge(payment, routes[0], chain, results, events)
            if outcome is None:
                outcome = self._settle_alone(payment, routes[1:], events)
        except PaymentRejected as rejection:
            return self.reject(payment, rejection.reason, rejection.text, events)
        if outcome.status is PaymentStatus.SETTLED:
            self.stats.settled_immediately += 1
        return outcome

    def _settle_alone(
        self, payment: Payment, alternatives: list[Route], events: list
    ) -> PaymentOutcome:
        """After a refusal: the other routes, then a fresh look at the network, then the queue
        (at once, if an earlier payment of the payer now waits there: FIFO)."""
        if self.queue.blocks(payment):
            return self.enqueue(payment, events, reason=None, text=FIFO_TEXT)
        for route in alternatives:
            outcome = self.apply_route(payment, route, events)
            if outcome is not None:
                return outcome
        for route in self.route(payment):
            outcome = self.apply_route(payment, route, events)
            if outcome is not None:
                return outcome
        return self.enqueue(payment, events)

    def outcome(self, payment_id: str) -> PaymentOutcome | None:
        return self._known(payment_id)

    def _resubmission(
        self, payment: Payment, found: tuple[Payment, PaymentOutcome, int | None] | None
    ) -> PaymentOutcome | None:
        """The first outcome of a payment id seen before (``found``: its record), marked
        ``duplicate``; the same id with other content is refused DUPL (never "settled"), and
        the first payment is left untouched."""
        if found is None:
            return None
        first, outcome, _ = found
        if first != payment:
            return PaymentOutcome(
                payment.payment_id,
                PaymentStatus.REJECTED,
                Reason.DUPL,
                "payment id already used for a different payment",
                duplicate=True,
            )
        return replace(outcome, duplicate=True)

    def return_payment(
        self,
        payment_id: str,
        *,
        returned_by: str,
        reason: str,
        amount: tuple[int, str] | None = None,
    ) -> ReturnOutcome:
        """Return a settled payment (see ``_return``): the outcome, made or refused, as a value."""
        try:
            returned = self._return(
                payment_id, returned_by=returned_by, reason=reason, amount=amount
            )
        except PaymentRejected as refusal:
            return ReturnOutcome(payment_id, False, refusal.reason, refusal.text)
        return ReturnOutcome(payment_id, True, payment=returned)

    def _return(
        self,
        payment_id: str,
        *,
        returned_by: str,
        reason: str,
        amount: tuple[int, str] | None,
    ) -> PaymentOutcome:
        """Move a settled payment's money back (a pacs.004 return): the reverse of its chain,
        leg by leg in reverse order, as one linked chain. ``returned_by`` is the *authenticated*
        participant asking (never a field of the message): only the payment's creditor agent may
        return it, and for anyone else the payment does not exist (no existence oracle). A
        second return of the same payment answers the first outcome (the ids are derived).
        ``amount`` (minor units, currency), when the message states it, must be the whole amount
        the creditor received: a return moves exactly what it says or nothing (AM09)."""
        found = self.journal.get(payment_id)
        if found is None or returned_by != found[0].creditor_agent:
            raise PaymentRejected(Reason.NARR, "original payment not found")
        payment, outcome, _ = found
        if outcome.status is PaymentStatus.RETURNED:
            return replace(outcome, duplicate=True)
        if outcome.status is not PaymentStatus.SETTLED:
            raise PaymentRejected(Reason.NARR, f"payment is {outcome.status.value}, not settled")
        received = (outcome.amount_delivered_minor, payment.creditor_currency)
        if amount is not None and amount != received:
            raise PaymentRejected(
                Reason.AM09,
                f"a return moves the whole amount received, {received[0]} {received[1]} (minor"
                f" units), not {amount[0]} {amount[1]}: partial returns are not supported",
            )
        originals = self.ledger.store.get_transfers(outcome.transfer_ids)
        if (
            not originals
            or len(originals) != len(outcome.transfer_ids)
            or any(t.code == CODE_NETTING for t in originals.values())
        ):
            # Net-settled payments have no chain of their own to reverse.
            raise PaymentRejected(Reason.AG03, "returns of net-settled payments are not supported")
        ordered = [originals[i] for i in reversed(outcome.transfer_ids)]
        chain = [
            Transfer(
                return_leg_id(payment_id, position),
                t.credit_account,
                t.debit_account,
                t.amount,
                LINKED,
                code=CODE_RETURN,
                ref=f"return {reason}"[:140],
            )
            for position, t in enumerate(ordered)
        ]
        chain[-1] = chain[-1]._replace(flags=0)
        self.journal.begin([(payment, "return")], self.ledger.clock())
        results = self.ledger.create_transfers(chain)
        if results[0] in _EXISTS and recovery.find_return(
            payment_id, len(chain), self.ledger.store.get_transfers
        ):  # Applied before a crash cut the record short: the ledger's chain is the truth.
            results = [TR.OK] * len(chain)
        if not all(r is TR.OK for r in results):
            self.journal.drop_intents([payment_id])
            failure = next(r for r in results if r is not TR.LINKED_EVENT_FAILED)
            if failure in _LIMIT_RESULTS:
                raise PaymentRejected(Reason.AM04, "the creditor side lacks funds for the return")
            raise PaymentRejected(Reason.NARR, f"ledger refused the return: {failure}")
        returned = replace(
            outcome,
            status=PaymentStatus.RETURNED,
            reason=None,
            reason_text=f"returned by {returned_by}: {reason}",
            transfer_ids=outcome.transfer_ids + tuple(t.id for t in chain),
        )
        events = [(PaymentStatus.RETURNED, f"{reason}; {len(chain)} transfers reversed")]
        self.journal.record([(payment, returned, None, events)], self.ledger.clock())
        return returned

    def run_cycle(self, selection: Selection = EVERYTHING) -> CycleReport:
        """One cycle of the settlement mode over the selected queued payments: those past the
        queue timeout are rejected (TM01), then the mode settles what it can (RTGS: the
        liquidity-saving mechanism; DNS: netting). Recorded before it returns."""
        expired = self.expire_queue(selection)
        report, entries = self.mode.run_cycle(self, selection)
        entries = expired + entries
        if entries:
            self.journal.record(entries, self.ledger.clock())
        report.rejected += len(expired)
        self.stats.cycles += 1
        report.number = self.stats.cycles
        report.outcomes = [entry[1] for entry in entries]
        return report

    # -- the life of one payment ------------------------------------------------------------

    def _known(self, payment_id: str) -> PaymentOutcome | None:
        found = self.journal.get(payment_id)
        return found[1] if found else None

    def _validate(self, payment: Payment) -> None:
        if not isinstance(payment.amount_minor, int) or payment.amount_minor <= 0:
            raise PaymentRejected(Reason.AM01, f"amount {payment.amount_minor} must be positive")
        if payment.amount_minor > AMOUNT_MAX:
            raise PaymentRejected(Reason.AM02)
        ceiling = self._fundable_ceiling(payment.currency)
        if ceiling is not None and payment.amount_minor > ceiling:
            raise PaymentRejected(
                Reason.AM02,
                f"amount exceeds all {payment.currency} in the network ({ceiling} minor units):"
                " no payer could ever fund it",
            )
        for role, code in (
            ("instructed", payment.currency),
            ("creditor", payment.creditor_currency),
        ):
            if not is_currency(code):
                raise PaymentRejected(Reason.AM11, f"{role} currency {code!r} is not ISO 4217")
            if code not in self.view.network.settlement_agents:
                raise PaymentRejected(Reason.AM03, f"{code} is not settled by this network")
        for role, bic, bad, unknown in (
            ("debtor", payment.debtor_agent, Reason.RC03, Reason.DNOR),
            ("creditor", payment.creditor_agent, Reason.RC04, Reason.CNOR),
        ):
            try:
                canonical = parse_bic(bic)
            except BicError as error:
                raise PaymentRejected(bad, f"{role} agent: {error}") from error
            if canonical not in self.view.network.participants_by_bic:
                raise PaymentRejected(unknown, f"{role} agent {bic} is not a participant")
        if (
            payment.debtor_agent == payment.creditor_agent
            and payment.currency == payment.creditor_currency
        ):
            raise PaymentRejected(Reason.AG03, "on-us payment: settle it in the bank's own books")

    def route(
        self, payment: Payment, *, for_cycle: bool = False, alternatives: bool = True
    ) -> list[Route]:
        """Routes best first; with ``alternatives=False`` only the cheapest (much faster: the
        ranked alternatives are computed only when a first attempt is refused)."""
        graph = self.view.graph(self.ledger, self.scenario, ignore_balances=for_cycle)
        result = find_routes(
            graph,
            payment.debtor_agent,
            payment.creditor_agent,
            payment.amount_minor,
            payment.currency,
            payment.creditor_currency,
            self.view.rates,
            k=self.settings.routes_max if alternatives else 1,
            hop_charge_minor=self.settings.hop_charge_minor,
        )
        if result.routes:
            return list(result.routes)
        if result.status is RouteStatus.DEBTOR_NODE_NOT_FOUND:
            raise PaymentRejected(Reason.AM03, f"debtor agent cannot pay in {payment.currency}")
        if result.status is RouteStatus.CREDITOR_NODE_NOT_FOUND:
            raise PaymentRejected(
                Reason.AM03, f"creditor agent cannot receive {payment.creditor_currency}"
            )
        reasons = {exclusion.reason for exclusion in result.exclusions}
        if reasons & _LIQUIDITY_REASONS:
            if not for_cycle and not self.view.is_current(self.ledger, self.scenario):
                self.view.invalidate()  # The graph lags the ledger: look again before queueing.
                return self.route(payment, for_cycle=for_cycle, alternatives=alternatives)
            return []  # Feasible in principle: wait for liquidity.
        if ExclusionReason.PARTICIPANT_SUSPENDED in reasons:
            raise PaymentRejected(Reason.AG01, "a participant on every route is suspended")
        if ExclusionReason.CORRIDOR_CUT in reasons:
            raise PaymentRejected(Reason.AG01, "every route crosses a cut corridor")
        if ExclusionReason.NO_RATE in reasons:
            raise PaymentRejected(
                Reason.AM03, f"no FX quote for {payment.currency}->{payment.creditor_currency}"
            )
        raise PaymentRejected(Reason.CNOR, "no route to the creditor agent")

    def plan(self, payment: Payment, route: Route) -> list[Transfer]:
        """The payment's linked chain on ``route``; never empty: nothing is "settled" without
        ledger transfers (a route that is one own-book conversion is refused AG03)."""
        try:
            chain = plan_route(
                route,
                payment.payment_id,
                self.view.account_id,
                payment.end_to_end_id or payment.payment_id,
            )
        except PlanError as error:
            raise PaymentRejected(Reason.NARR, str(error)) from error
        if not chain:
            raise PaymentRejected(
                Reason.AG03,
                "on-us conversion: the route moves nothing between participants; book it in"
                " the bank's own books",
            )
        return chain

    def apply_route(self, payment: Payment, route: Route, events: list) -> PaymentOutcome | None:
        chain = self.plan(payment, route)
        return self._judge(payment, route, chain, self.ledger.create_transfers(chain), events)

    def _judge(
        self, payment: Payment, route: Route, chain: list[Transfer], results: list, events: list
    ) -> PaymentOutcome | None:
        """The outcome of a chain the ledger answered: settled, None (refused for liquidity:
        try another way), or ``PaymentRejected``."""
        nodes = tuple(str(node) for node in route.nodes)
        events.append((PaymentStatus.ROUTED, " -> ".join(nodes)))
        if any(result in _EXISTS for result in results):
            # The engine applied this payment id's chain before (only it writes these ids): the
            # ledger's chain is the outcome if it carries this payment, else the id is a DUPL.
            events.append((PaymentStatus.SETTLED, "found in the ledger"))
            return self._settled_in_ledger(payment)
        if all(result is TR.OK for result in results):
            events.append((PaymentStatus.SETTLED, ""))
            return PaymentOutcome(
                payment.payment_id,
                PaymentStatus.SETTLED,
                amount_delivered_minor=route.amount_delivered_minor,
                route=nodes,
                transfer_ids=tuple(t.id for t in chain),
                settled_at=self.ledger.state.last_timestamp,
            )
        failure = next((r for r in results if r is not TR.LINKED_EVENT_FAILED), None)
        if failure is None:  # Failed with another payment of its payer (one linked chain).
            events.append((PaymentStatus.ROUTED, "refused with an earlier payment of the payer"))
            return None
        if failure in _LIMIT_RESULTS:
            self.view.invalidate()  # The graph's capacities were stale.
            events.append((PaymentStatus.ROUTED, f"route refused by the ledger: {failure}"))
            return None
        raise PaymentRejected(Reason.NARR, f"ledger refused the settlement chain: {failure}")

    def enqueue(
        self,
        payment: Payment,
        events: list,
        reason: Reason | None = Reason.AM04,
        text: str = "waiting for liquidity",
    ) -> PaymentOutcome:
        """Queue ``payment`` (within the queue's and its payer's quota, else AM04)."""
        if len(self.queue) >= self.settings.queue_max:
            raise PaymentRejected(Reason.AM04, "insufficient funds and the queue is full")
        if self.queue.by_payer[payment.debtor_agent] >= self.settings.queue_max_per_payer:
            raise PaymentRejected(
                Reason.AM04,
                f"insufficient funds and {payment.debtor_agent} already has"
                f" {self.settings.queue_max_per_payer} payments queued",
            )
        self._queue_seq += 1
        self.queue.add(QueuedPayment(payment, self._queue_seq, self.ledger.clock()))
        events.append((PaymentStatus.QUEUED, text))
        return PaymentOutcome(payment.payment_id, PaymentStatus.QUEUED, reason, text)

    def reject(self, payment: Payment, reason: Reason, text: str, events: list) -> PaymentOutcome:
        self.stats.rejections[reason.value] += 1
        events.append((PaymentStatus.REJECTED, f"{reason.value}: {text}"))
        return PaymentOutcome(
            payment.payment_id, PaymentStatus.REJECTED, reason, text or REASON_TEXT[reason]
        )

    def _fundable_ceiling(self, currency: str) -> int | None:
        """The most any payer could ever pay in ``currency``: all of it that was issued, plus
        the largest credit line (None: the network has no issuance account for it)."""
        issued = 0
        ids = self._issuance_ids.get(currency)
        if not ids:
            return None
        for account_id in ids:
            state = self.ledger.lookup_account(account_id)
            if state is not None:
                issued += state.debits_posted - state.credits_posted
        line = self._credit_line_max.get(currency)
        if line is None:  # Credit limits are fixed when an account is opened: look once.
            line = self._credit_line_max[currency] = max(
                (
                    state.credit_limit
                    for key, account in self.view.accounts_by_key.items()
                    if account.currency == currency and key.startswith(("settlement:", "vostro:"))
                    if (state := self.ledger.lookup_account(account.id)) is not None
                ),
                default=0,
            )
        return max(issued, 0) + line

    # -- recovery: the ledger is the truth ---------------------------------------------------

    def _parties(self, payment: Payment) -> recovery.PartyAccounts:
        return recovery.parties(self._accounts_of, payment)

    def _settled_in_ledger(self, payment: Payment) -> PaymentOutcome:
        """The outcome the ledger's chain for ``payment`` says; ``PaymentRejected`` (DUPL) when
        the chain under its id does not carry this payment."""
        try:
            chain = recovery.find_chain(payment.payment_id, self.ledger.store.get_transfers)
            if chain is None:
                raise recovery.ForeignChain("the ledger has no chain for it")
            recovery.check_chain(payment, chain, self._parties(payment))
        except recovery.ForeignChain as error:
            raise PaymentRejected(
                Reason.DUPL, f"payment id already used for a different payment ({error})"
            ) from error
        return recovery.settled_outcome(payment, chain, self._route_of(chain))

    def _route_of(self, chain: recovery.FoundChain) -> tuple[str, ...]:
        nodes: list[str] = []
        accounts = [chain.transfers[0].debit_account] + [t.credit_account for t in chain.transfers]
        for account_id in accounts:
            state = self.ledger.lookup_account(account_id)
            node = f"{state.account.participant}/{state.currency}" if state else str(account_id)
            if not nodes or nodes[-1] != node:
                nodes.append(node)
        return tuple(nodes)

    def recover(self) -> recovery.RecoveryReport:
        """At start: settle from the ledger what a crash left unrecorded, drop intents whose
        chain never reached the ledger, and report (never repair by guess) chains that do not
        carry their payment. See ``payments.recovery``."""
        report = recovery.RecoveryReport()
        entries: list = []
        dropped: list[str] = []
        lookup = self.ledger.store.get_transfers
        for payment, kind in self.journal.intents():
            try:
                cycle = recovery.parse_cycle_intent(kind)
                if kind == "return":
                    entry = self._recovered_return(payment)
                elif cycle is not None:
                    entry = self._recovered_from_cycle(payment, cycle)
                else:
                    chain = recovery.find_chain(payment.payment_id, lookup)
                    entry = None
                    if chain is not None:
                        recovery.check_chain(payment, chain, self._parties(payment))
                        outcome = recovery.settled_outcome(payment, chain, self._route_of(chain))
                        queued = self.queue.get(payment.payment_id)
                        events = [(PaymentStatus.SETTLED, "found in the ledger at restart")]
                        entry = (
                            self.settled_from_queue(queued, outcome, events, "settled_from_queue")
                            if queued is not None
                            else (payment, outcome, None, events)
                        )
            except recovery.ForeignChain as error:
                report.foreign.append(str(error))
                continue
            if entry is None:
                dropped.append(payment.payment_id)
            else:
                entries.append(entry)
        for payment_id in recovery.chains_among(list(self.queue), lookup):
            queued = self.queue.get(payment_id)
            if queued is None:
                continue
            try:
                outcome = self._settled_in_ledger(queued.payment)
            except PaymentRejected as rejection:
                report.foreign.append(rejection.text)
                continue
            events = [(PaymentStatus.SETTLED, "found in the ledger at restart")]
            entries.append(self.settled_from_queue(queued, outcome, events, "settled_from_queue"))
        if entries:
            self.journal.record(entries, self.ledger.clock())
        if dropped:
            self.journal.drop_intents(dropped)
        report.settled = sum(1 for e in entries if e[1].status is PaymentStatus.SETTLED)
        report.returned = sum(1 for e in entries if e[1].status is PaymentStatus.RETURNED)
        report.dropped = len(dropped)
        return report

    def _recovered_from_cycle(self, payment: Payment, cycle: recovery.CycleIntent) -> tuple | None:
        queued = self.queue.get(payment.payment_id)
        if queued is None:
            return None
        outcome = recovery.net_settled(payment, cycle, self.ledger.store.get_transfers)
        if outcome is None:
            return None
        events = [(PaymentStatus.SETTLED, outcome.reason_text)]
        return self.settled_from_queue(queued, outcome, events, "settled_in_cycles")

    def _recovered_return(self, payment: Payment) -> tuple | None:
        found = self.journal.get(payment.payment_id)
        if found is None or found[1].status is not PaymentStatus.SETTLED:
            return None
        outcome = found[1]
        chain = recovery.find_return(
            payment.payment_id, len(outcome.transfer_ids), self.ledger.store.get_transfers
        )
        if chain is None:
            return None
        returned = replace(
            outcome,
            status=PaymentStatus.RETURNED,
            reason=None,
            reason_text=f"returned by {payment.creditor_agent}: {chain[0].ref[len('return ') :]}",
            transfer_ids=outcome.transfer_ids + tuple(t.id for t in chain),
        )
        return (payment, returned, None, [(PaymentStatus.RETURNED, "found in the ledger")])

    def audit(self) -> recovery.AuditReport:
        """Reconcile every payment record with the ledger and every payment chain in the
        ledger with a record (``sco-settle verify``)."""
        store = self.ledger.store
        return recovery.audit(
            self.journal.records(),
            len(self.journal.intents()),
            store.get_transfers,
            store.iter_transfers(),
            self._parties,
        )

    # -- RTGS queue and the liquidity-saving mechanism ---------------------------------------

    def expire_queue(self, selection: Selection = EVERYTHING) -> list[Entry]:
        now = self.ledger.clock()
        entries: list[Entry] = []
        for queued in self.queue.select(selection):
            if now - queued.enqueued_at >= self.settings.queue_timeout_ns:
                self.queue.remove(queued.payment.payment_id)
                events: list = []
                outcome = self.reject(queued.payment, Reason.TM01, REASON_TEXT[Reason.TM01], events)
                entries.append((queued.payment, outcome, None, events))
        return entries

    def settled_from_queue(
        self, queued: QueuedPayment, outcome: PaymentOutcome, events: list, counter: str
    ) -> Entry:
        self.queue.remove(queued.payment.payment_id)
        setattr(self.stats, counter, getattr(self.stats, counter) + 1)
        self.stats.queue_delays_ns.append(max(self.ledger.clock() - queued.enqueued_at, 0))
        return (queued.payment, outcome, None, events)

    def _open_clearing_accounts(self) -> dict[str, int]:
        """One clearing account per currency, owned by its central bank, for LSM and DNS chains."""
        accounts = []
        for code, bank in sorted(self.view.network.settlement_agents.items()):
            key = f"clearing:{bank}:{code}"
            accounts.append(
                Account(account_id_for_key(key), bank, code, AccountKind.SUSPENSE.value, ref=key)
            )
        results = self.ledger.create_accounts(accounts)
        assert all(result in ("ok", "exists") for result in results), results
        return {account.currency: account.id for account in accounts}


def _issuance_accounts(view: NetworkView) -> dict[str, tuple[int, ...]]:
    found: dict[str, list[int]] = defaultdict(list)
    for key, account in view.accounts_by_key.items():
        if key.startswith("issuance:"):
            found[account.currency].append(account.id)
    return {code: tuple(ids) for code, ids in found.items()}
