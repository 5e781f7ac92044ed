"""The payment engine: validate, screen, route, settle (RTGS or deferred net), queue, journal.

Invariants:
- A payment settles through one linked chain of ledger transfers (``payments.plan``), so both
  currency legs and every hop settle together or not at all, also across a crash.
- A payment id is applied at most once: the journal answers a resubmission with the first outcome,
  and the chain's transfer ids are derived from the payment id, so even a payment whose journal
  entry was lost in a crash is recognised by the ledger instead of settling twice.
- The queue never settles beyond available liquidity: every settlement is a ledger chain, and the
  ledger refuses any transfer that would pass an account's limit.
- Outcomes are returned only after the ledger chain and the journal entry are durable.

RTGS: a payment settles at once when its route has liquidity, else it is queued (urgent before
normal, FIFO within each payer and priority). After every batch and on ``run_liquidity_saving``,
the liquidity-saving mechanism retries the queue, then offsets bilaterally, then resolves gridlock
with the partial-netting heuristic (``payments.gridlock``); queued payments past the timeout are
rejected (TM01).

DNS: payments are routed and held for the cycle; ``settle_cycle`` nets every leg per ledger account,
defers payments (latest first) of any participant whose net debit would pass its cap or its
liquidity, and settles all net positions as one linked chain through per-currency clearing accounts.
"""

from __future__ import annotations

import enum
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from sco_settle.domain.account import Account, AccountKind
from sco_settle.domain.money import AMOUNT_MAX, is_currency
from sco_settle.domain.participants import BicError, parse_bic
from sco_settle.domain.results import CreateTransferResult as TR
from sco_settle.domain.transfer import Transfer
from sco_settle.ledger import BATCH_EVENTS_MAX, Ledger
from sco_settle.network import account_id_for_key
from sco_settle.payments import gridlock, recovery
from sco_settle.payments.journal import PaymentJournal
from sco_settle.payments.model import (
    REASON_TEXT,
    Payment,
    PaymentOutcome,
    PaymentRejected,
    PaymentStatus,
    Priority,
    Reason,
)
from sco_settle.payments.network_view import NetworkView, Scenario, available
from sco_settle.payments.plan import (
    CODE_LSM,
    CODE_NETTING,
    CODE_RETURN,
    LINKED,
    PlanError,
    lsm_ids,
    plan_route,
    return_leg_id,
)
from sco_settle.payments.routing import ExclusionReason, Route, RouteStatus, find_routes

NS_PER_SECOND = 1_000_000_000
GRIDLOCK_PAYMENTS_MAX = 4_000  # 2 x 4,000 transfers < BATCH_EVENTS_MAX (8,190).
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


class Mode(enum.StrEnum):
    RTGS = "rtgs"
    DNS = "dns"


@dataclass(frozen=True)
class EngineSettings:
    mode: Mode = Mode.RTGS
    queue_timeout_ns: int = 4 * 3600 * NS_PER_SECOND
    queue_max: int = 200_000
    # One payer's share of the queue: beyond it, its own payments are refused (AM04), so no
    # participant can fill the queue (or slow every liquidity-saving pass) for the others.
    queue_max_per_payer: int = 5_000
    routes_max: int = 3
    hop_charge_minor: int = 0
    # DNS: largest net debit per (participant BIC, currency), minor units; absent = liquidity only.
    net_debit_caps: dict[tuple[str, str], int] = field(default_factory=dict)


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
class _Queued:
    payment: Payment
    seq: int
    enqueued_at: int
    route_hint: tuple[str, ...] = ()

    @property
    def rank(self) -> tuple[int, int]:
        return (0 if self.payment.priority is Priority.URGENT else 1, self.seq)


class PaymentQueue(dict[str, _Queued]):
    """Queued payments by payment id, counting each payer's entries (for its quota)."""

    def __init__(self, items: Iterable[tuple[str, _Queued]] | dict[str, _Queued] = ()) -> None:
        super().__init__()
        self.by_payer: Counter[str] = Counter()
        for payment_id, queued in dict(items).items():
            self[payment_id] = queued

    def __setitem__(self, payment_id: str, queued: _Queued) -> None:
        if payment_id in self:
            del self[payment_id]
        super().__setitem__(payment_id, queued)
        self.by_payer[queued.payment.debtor_agent] += 1

    def __delitem__(self, payment_id: str) -> None:
        self.by_payer[self[payment_id].payment.debtor_agent] -= 1
        super().__delitem__(payment_id)


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
    cycles: list[dict[str, object]] = field(default_factory=list)


class PaymentEngine:
    def __init__(
        self,
        ledger: Ledger,
        view: NetworkView,
        journal: PaymentJournal,
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
        self._queue = PaymentQueue()
        self._queue_seq = 0
        self.clearing = self._open_clearing_accounts()
        self._vostro_owners = {
            (key.split(":")[2], key.split(":")[3])
            for key in view.accounts_by_key
            if key.startswith("vostro:")
        }
        for payment, seq in journal.queued():
            self.queue[payment.payment_id] = _Queued(payment, seq, ledger.clock())
            self._queue_seq = max(self._queue_seq, seq)
        self._accounts_of = recovery.holder_index(
            (key, account.id) for key, account in view.accounts_by_key.items()
        )
        self._issuance_ids: dict[str, tuple[int, ...]] = _issuance_accounts(view)
        self._credit_line_max: dict[str, int] = {}
        # Start-up reconciliation: what a crash left unrecorded is settled from the ledger.
        self.recovered = self.recover()

    @property
    def queue(self) -> PaymentQueue:
        return self._queue

    @queue.setter
    def queue(self, payments: dict[str, _Queued]) -> None:
        self._queue = payments if isinstance(payments, PaymentQueue) else PaymentQueue(payments)

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
        for index, payment in enumerate(payments):
            if payment.payment_id in first_index:
                duplicates.append((index, first_index[payment.payment_id]))
                continue
            known = self._resubmission(payment)
            if known is not None:
                outcomes[index] = known
                continue
            first_index[payment.payment_id] = index
            events: list[tuple[PaymentStatus, str]] = [(PaymentStatus.RECEIVED, "")]
            events_of[index] = events
            try:
                self._accept(payment, events)
                if self.settings.mode is Mode.DNS:
                    outcomes[index] = self._hold_for_cycle(payment, events)
                    continue
                routes = self._route(payment, alternatives=False)
                if not routes:
                    outcomes[index] = self._enqueue(payment, events)
                    continue
                planned.append((index, payment, events, routes, self._plan(payment, routes[0])))
            except PaymentRejected as rejection:
                outcomes[index] = self._reject(payment, rejection.reason, rejection.text, events)
        # Write-ahead: a chain reaches the ledger only after its payment's intent is durable, so
        # a crash can never leave money moved without a trace of the payment (``recover``).
        self.journal.begin([(item[1], "settle") for item in planned], self.ledger.clock())
        for group in _chain_groups(planned):
            results = self.ledger.create_transfers([t for item in group for t in item[4]])
            position = 0
            for index, payment, events, routes, chain in group:
                mine = results[position : position + len(chain)]
                position += len(chain)
                outcomes[index] = self._after_batch(payment, routes, chain, mine, events)
        for index, first in duplicates:
            outcomes[index] = replace(outcomes[first], duplicate=True)  # type: ignore[arg-type]
        entries = []
        for index in sorted(events_of):
            outcome = outcomes[index]
            assert outcome is not None
            queued = self.queue.get(payments[index].payment_id)
            entries.append(
                (payments[index], outcome, queued.seq if queued else None, events_of[index])
            )
        self.journal.record(entries, self.ledger.clock())
        settled = [o for o in outcomes if o is not None and o.status is PaymentStatus.SETTLED]
        if self.settings.mode is Mode.RTGS and settled:
            self.run_liquidity_saving()
        return outcomes  # type: ignore[return-value]

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
            return self._reject(payment, rejection.reason, rejection.text, events)
        if outcome.status is PaymentStatus.SETTLED:
            self.stats.settled_immediately += 1
        return outcome

    def _settle_alone(
        self, payment: Payment, alternatives: list[Route], events: list
    ) -> PaymentOutcome:
        """After a refusal: the other routes, then a fresh look at the network, then the queue."""
        for route in alternatives:
            outcome = self._apply_route(payment, route, events)
            if outcome is not None:
                return outcome
        for route in self._route(payment):
            outcome = self._apply_route(payment, route, events)
            if outcome is not None:
                return outcome
        return self._enqueue(payment, events)

    def outcome(self, payment_id: str) -> PaymentOutcome | None:
        return self._known(payment_id)

    def _resubmission(self, payment: Payment) -> PaymentOutcome | None:
        """The first outcome of a payment id seen before (``duplicate``); the same id with other
        content is refused DUPL (never "settled"), and the first payment is left untouched."""
        found = self.journal.get(payment.payment_id)
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

    def run_liquidity_saving(self) -> list[PaymentOutcome]:
        """The LSM pass: expire, retry FIFO, offset bilaterally, resolve gridlock."""
        if self.settings.mode is not Mode.RTGS:
            return []
        self.view.invalidate()
        entries = self._expire_queue()
        entries += self._retry_queue()
        entries += self._resolve_gridlock(gridlock.bilateral_offsetting, "offsetting")
        entries += self._resolve_gridlock(gridlock.partial_netting, "gridlock")
        if entries:
            self.journal.record(entries, self.ledger.clock())
        return [entry[1] for entry in entries]

    def settle_cycle(self) -> dict[str, object]:
        """DNS: net and settle every payment held for the cycle (deferring what must wait)."""
        assert self.settings.mode is Mode.DNS
        entries = self._expire_queue()
        report, settled_entries = self._net_and_settle()
        entries += settled_entries
        if entries:
            self.journal.record(entries, self.ledger.clock())
        self.stats.cycles.append(report)
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

    def _route(
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
                return self._route(payment, for_cycle=for_cycle, alternatives=alternatives)
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

    def _plan(self, payment: Payment, route: Route) -> list[Transfer]:
        try:
            return plan_route(
                route,
                payment.payment_id,
                self.view.account_id,
                payment.end_to_end_id or payment.payment_id,
            )
        except PlanError as error:
            raise PaymentRejected(Reason.NARR, str(error)) from error

    def _apply_route(self, payment: Payment, route: Route, events: list) -> PaymentOutcome | None:
        chain = self._plan(payment, route)
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
        failure = next(r for r in results if r is not TR.LINKED_EVENT_FAILED)
        if failure in _LIMIT_RESULTS:
            self.view.invalidate()  # The graph's capacities were stale.
            events.append((PaymentStatus.ROUTED, f"route refused by the ledger: {failure}"))
            return None
        raise PaymentRejected(Reason.NARR, f"ledger refused the settlement chain: {failure}")

    def _enqueue(self, payment: Payment, events: list) -> PaymentOutcome:
        if len(self.queue) >= self.settings.queue_max:
            raise PaymentRejected(Reason.AM04, "insufficient funds and the queue is full")
        if self.queue.by_payer[payment.debtor_agent] >= self.settings.queue_max_per_payer:
            raise PaymentRejected(
                Reason.AM04,
                f"insufficient funds and {payment.debtor_agent} already has"
                f" {self.settings.queue_max_per_payer} payments queued",
            )
        self._queue_seq += 1
        self.queue[payment.payment_id] = _Queued(payment, self._queue_seq, self.ledger.clock())
        events.append((PaymentStatus.QUEUED, "waiting for liquidity"))
        return PaymentOutcome(
            payment.payment_id, PaymentStatus.QUEUED, Reason.AM04, "waiting for liquidity"
        )

    def _reject(self, payment: Payment, reason: Reason, text: str, events: list) -> PaymentOutcome:
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
                            self._settled_from_queue(queued, outcome, events, "settled_from_queue")
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
            entries.append(self._settled_from_queue(queued, outcome, events, "settled_from_queue"))
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
        return self._settled_from_queue(queued, outcome, events, "settled_in_cycles")

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

    def _expire_queue(self) -> list:
        now = self.ledger.clock()
        entries = []
        for payment_id, queued in sorted(self.queue.items(), key=lambda item: item[1].rank):
            if now - queued.enqueued_at >= self.settings.queue_timeout_ns:
                del self.queue[payment_id]
                events: list = []
                outcome = self._reject(
                    queued.payment, Reason.TM01, REASON_TEXT[Reason.TM01], events
                )
                entries.append((queued.payment, outcome, None, events))
        return entries

    def _settled_from_queue(
        self, queued: _Queued, outcome: PaymentOutcome, events: list, counter: str
    ) -> tuple:
        del self.queue[queued.payment.payment_id]
        setattr(self.stats, counter, getattr(self.stats, counter) + 1)
        self.stats.queue_delays_ns.append(max(self.ledger.clock() - queued.enqueued_at, 0))
        return (queued.payment, outcome, None, events)

    def _retry_queue(self) -> list:
        """Retry in (priority, arrival) order; a payer's blocked head holds back its later ones."""
        entries = []
        blocked: set[tuple[str, int]] = set()
        for queued in sorted(self.queue.values(), key=lambda q: q.rank):
            payer_key = (queued.payment.debtor_agent, queued.rank[0])
            if payer_key in blocked:
                continue
            if not self._may_have_liquidity(queued.payment):
                blocked.add(payer_key)  # Skip routing: the first hop cannot carry it yet.
                continue
            events: list = []
            try:
                outcome = None
                for route in self._route(queued.payment):
                    outcome = self._apply_route(queued.payment, route, events)
                    if outcome is not None:
                        break
            except PaymentRejected as rejection:
                del self.queue[queued.payment.payment_id]
                outcome = self._reject(queued.payment, rejection.reason, rejection.text, events)
                entries.append((queued.payment, outcome, None, events))
                continue
            if outcome is None:
                blocked.add(payer_key)
                continue
            entries.append(self._settled_from_queue(queued, outcome, events, "settled_from_queue"))
        return entries

    def _may_have_liquidity(self, payment: Payment) -> bool:
        """False only when the debtor's own settlement account surely cannot pay the amount (a
        payment out of a correspondent account is always worth a routing attempt)."""
        key = f"settlement:{payment.debtor_agent}:{payment.currency}"
        account_id = self.view.account_id(key)
        state = self.ledger.lookup_account(account_id) if account_id is not None else None
        if state is None:
            return True
        if (payment.debtor_agent, payment.currency) in self._vostro_owners:
            return True
        return available(state) + state.credit_limit >= payment.amount_minor

    def _resolve_gridlock(self, algorithm: Callable, counter_name: str) -> list:
        """Settle simultaneously the set of queued same-currency payments that balances allow."""
        by_currency: dict[str, list[_Queued]] = defaultdict(list)
        for queued in self.queue.values():
            payment = queued.payment
            if payment.currency == payment.creditor_currency and self._domestic_accounts(payment):
                by_currency[payment.currency].append(queued)
        entries = []
        for code, candidates in sorted(by_currency.items()):
            balances = {}
            limits = {}
            for queued in candidates:
                for bic in (queued.payment.debtor_agent, queued.payment.creditor_agent):
                    state = self.ledger.lookup_account(
                        self.view.account_id(f"settlement:{bic}:{code}")
                    )
                    balances[bic] = available(state)
                    limits[bic] = state.credit_limit
            # Two transfers per payment must fit one ledger batch: the oldest first.
            ordered = sorted(candidates, key=lambda q: q.rank)[:GRIDLOCK_PAYMENTS_MAX]
            queue = [
                gridlock.QueuedPayment(
                    i,
                    q.payment.debtor_agent,
                    q.payment.creditor_agent,
                    q.payment.amount_minor,
                    1 - q.rank[0],
                    q.seq,
                )
                for i, q in enumerate(ordered)
            ]
            result = algorithm(balances, queue, limits)
            if not result.settled_ids:
                continue
            chosen = [ordered[i] for i in result.settled_ids]
            entries += self._settle_simultaneously(code, chosen, counter_name)
        return entries

    def _domestic_accounts(self, payment: Payment) -> bool:
        code = payment.currency
        return all(
            self.view.account_id(f"settlement:{bic}:{code}") is not None
            and bic != self.view.network.settlement_agents.get(code)
            for bic in (payment.debtor_agent, payment.creditor_agent)
        )

    def _settle_simultaneously(self, code: str, chosen: list[_Queued], counter_name: str) -> list:
        """One linked chain through the clearing account: every credit first, then every debit,
        so each payer is debited only after all its incoming payments arrived."""
        clearing = self.clearing[code]
        credits, debits = [], []
        for queued in chosen:
            payment = queued.payment
            debit_id, credit_id = lsm_ids(payment.payment_id)
            payer = self.view.account_id(f"settlement:{payment.debtor_agent}:{code}")
            payee = self.view.account_id(f"settlement:{payment.creditor_agent}:{code}")
            credits.append(
                Transfer(
                    credit_id,
                    clearing,
                    payee,
                    payment.amount_minor,
                    LINKED,
                    code=CODE_LSM,
                    ref=payment.payment_id[:140],
                )
            )
            debits.append(
                Transfer(
                    debit_id,
                    payer,
                    clearing,
                    payment.amount_minor,
                    LINKED,
                    code=CODE_LSM,
                    ref=payment.payment_id[:140],
                )
            )
        chain = credits + debits
        chain[-1] = chain[-1]._replace(flags=0)
        results = self.ledger.create_transfers(chain)
        if not all(result is TR.OK for result in results):
            failure = next(r for r in results if r is not TR.LINKED_EVENT_FAILED)
            assert failure in _LIMIT_RESULTS, failure  # The algorithm's balances were the ledger's.
            return []
        entries = []
        for queued, credit, debit in zip(chosen, credits, debits, strict=True):
            payment = queued.payment
            events = [
                (PaymentStatus.SETTLED, f"settled by {counter_name} with {len(chosen)} payments")
            ]
            outcome = PaymentOutcome(
                payment.payment_id,
                PaymentStatus.SETTLED,
                amount_delivered_minor=payment.amount_minor,
                route=(f"{payment.debtor_agent}/{code}", f"{payment.creditor_agent}/{code}"),
                transfer_ids=(debit.id, credit.id),
                settled_at=self.ledger.state.last_timestamp,
            )
            entries.append(
                self._settled_from_queue(queued, outcome, events, f"settled_by_{counter_name}")
            )
        return entries

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

    # -- DNS --------------------------------------------------------------------------------

    def _hold_for_cycle(self, payment: Payment, events: list) -> PaymentOutcome:
        self._route(payment, for_cycle=True)  # Refuse now what can never settle.
        self._queue_seq += 1
        self.queue[payment.payment_id] = _Queued(payment, self._queue_seq, self.ledger.clock())
        events.append((PaymentStatus.QUEUED, "held for the next settlement cycle"))
        return PaymentOutcome(
            payment.payment_id, PaymentStatus.QUEUED, None, "held for the next settlement cycle"
        )

    def _net_and_settle(self) -> tuple[dict[str, object], list]:
        from sco_settle.payments.dns import net_cycle

        return net_cycle(self)


def _issuance_accounts(view: NetworkView) -> dict[str, tuple[int, ...]]:
    found: dict[str, list[int]] = defaultdict(list)
    for key, account in view.accounts_by_key.items():
        if key.startswith("issuance:"):
            found[account.currency].append(account.id)
    return {code: tuple(ids) for code, ids in found.items()}
