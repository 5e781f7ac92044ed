"""The payment engine: validate, screen, route, plan, settle, queue, record.

Invariants:
- A payment settles through one linked chain of ledger transfers (``payments.plan``), so both
  currency legs and every hop settle together or not at all, also across a crash.
- A payment id is applied at most once: the payment records answer a resubmission with the
  first outcome, and the chain's transfer ids are derived from the payment id, so even a payment
  whose record was lost in a crash is recognised by the ledger instead of settling twice.
- The queue never settles beyond available liquidity: every settlement is a ledger chain, and the
  ledger refuses any transfer that would pass an account's limit.
- Outcomes are returned only after the ledger chain and the payment record are durable.

*When* an accepted payment settles is its settlement mode's business (``payments.modes``: the
``SettlementMode`` contract; ``payments.rtgs``: gross at once, else queued, and the
liquidity-saving mechanism on each cycle; ``payments.dns``: held, then netted on each cycle). The
engine offers the modes a narrow API: ``queue`` (with ``Selection``), ``route``, ``plan``,
``apply_route``, ``enqueue``, ``reject``, ``settled_from_queue``, ``clearing``; and everyone else
``submit_many``, ``run_cycle(selection)``, ``return_payment``, ``recover``, ``audit``. Queued
payments past the timeout are rejected (TM01) at the start of each cycle.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from sco_settle.domain.account import Account, AccountKind
from sco_settle.domain.account_key import AccountKey, AccountKeyKind
from sco_settle.domain.balances import Balances
from sco_settle.domain.calendar import Calendars
from sco_settle.domain.money import AMOUNT_MAX, is_currency
from sco_settle.domain.participants import BicError, parse_bic
from sco_settle.domain.results import CreateTransferResult as TR
from sco_settle.domain.transfer import Transfer
from sco_settle.ledger import BATCH_EVENTS_MAX, InvariantViolation, Ledger
from sco_settle.network import account_id_for_key
from sco_settle.payments import quote_desk, recovery, reservations
from sco_settle.payments.fx import amounts_disagree
from sco_settle.payments.model import (
    REASON_TEXT,
    AmountType,
    Payment,
    PaymentOutcome,
    PaymentRejected,
    PaymentStatus,
    Priority,
    Reason,
    RequestOutcome,
    ReturnOutcome,
)
from sco_settle.payments.modes import CycleReport, Entry, Events, Mode, SettlementMode, mode_for
from sco_settle.payments.network_view import NetworkView, Scenario
from sco_settle.payments.operating_day import NoWindow, OperatingDay, Window
from sco_settle.payments.plan import (
    LINKED,
    PlanError,
    plan_route,
)
from sco_settle.payments.queue import (
    EVERYTHING,
    FIFO_TEXT,
    PaymentQueue,
    QueuedPayment,
    Selection,
)
from sco_settle.payments.quote_records import FxQuote, FxQuoteStore, MemoryFxQuotes
from sco_settle.payments.records import PaymentRecords
from sco_settle.payments.routing import (
    ExclusionReason,
    Route,
    RouteResult,
    RouteStatus,
    find_routes,
    find_routes_delivering,
)

NS_PER_SECOND = 1_000_000_000
# The accounts a payer pays from: its settlement accounts and its nostros (credit lines count).
_FUNDABLE_KINDS = frozenset({AccountKeyKind.SETTLEMENT, AccountKeyKind.VOSTRO})
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


class EngineStopped(RuntimeError):
    """A write of an earlier operation failed (the ledger's or the payment records'), so the
    engine's memory may be ahead of what is durable: it takes no more work. A restart (a new
    engine over the same stores) recovers exactly the durable state (``recover``)."""


@dataclass(frozen=True)
class EngineSettings:
    mode: Mode = Mode.RTGS
    queue_timeout_ns: int = 4 * 3600 * NS_PER_SECOND
    queue_max: int = 200_000
    # FIFO (TARGET2): no payment of a payer settles while an earlier one of the same or a higher
    # priority is queued. ``fifo_bypass`` lets the LSM's pairwise offsetting and gridlock
    # resolution settle queued payments out of that order (a deployment's documented choice).
    fifo_bypass: bool = False
    # The LSM also settles sets of queued cross-currency payments together (``payments.lsm_fx``).
    lsm_fx_offsetting: bool = True
    # RTGS: whether a liquidity-saving cycle may settle queued payments together (bilateral
    # offsetting, gridlock resolution, cross-currency offsetting). False leaves a plain FIFO
    # queue retried in order: the baseline against which the simulator measures what the
    # mechanism itself saves.
    liquidity_saving: bool = True
    # One payer's share of the queue: beyond it, its own payments are refused (AM04), so no
    # participant can fill the queue (or slow every liquidity-saving pass) for the others.
    queue_max_per_payer: int = 5_000
    # A timed payment waits in the warehouse at most this long before its earliest time (a
    # value date at most this far ahead); TARGET2 warehouses up to five business days.
    warehouse_ns_max: int = 31 * 86_400 * NS_PER_SECOND
    routes_max: int = 3
    hop_charge_minor: int = 0
    # DNS: largest net debit per (participant BIC, currency), minor units; absent = liquidity only.
    net_debit_caps: dict[tuple[str, str], int] = field(default_factory=dict)
    # The business calendars of the operating day (``payments/operating_day.py``): a payment
    # settles only inside its currency pair's settlement window. None: always open.
    calendars: Calendars | None = None


class Planned(NamedTuple):
    """A payment of a batch, routed and planned, before its chain goes to the ledger."""

    position: int  # its index in the batch
    payment: Payment
    events: Events
    routes: list[Route]  # best first
    chain: list[Transfer]  # its linked chain on ``routes[0]``


def _linked_by_payer(items: list[Planned]) -> list[Transfer]:
    """The planned chains as one ledger batch, each payer's chains (adjacent, in arrival order)
    linked into one: if any of a payer's payments is refused, all of them are, and each is
    then retried alone in order, so a later payment never settles while an earlier one of the
    same payer is queued (FIFO)."""
    batch: list[Transfer] = []
    for position, item in enumerate(items):
        chain = item.chain
        following = items[position + 1] if position + 1 < len(items) else None
        if following is not None and following.payment.debtor_agent == item.payment.debtor_agent:
            chain = [*chain[:-1], chain[-1]._replace(flags=chain[-1].flags | LINKED)]
        batch.extend(chain)
    return batch


def _chain_groups(planned: list[Planned]) -> Iterable[list[Planned]]:
    """Consecutive planned payments whose chains together fit one ledger batch."""
    group: list[Planned] = []
    size = 0
    for item in planned:
        if group and size + len(item.chain) > BATCH_EVENTS_MAX:
            yield group
            group, size = [], 0
        group.append(item)
        size += len(item.chain)
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
    settled_by_fx_offsetting: int = 0  # cross-currency LSM sets (``payments.lsm_fx``)
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
        records: PaymentRecords,
        settings: EngineSettings = EngineSettings(),
        *,
        screen: Screen = pass_all,
        scenario: Scenario | None = None,
        quotes: FxQuoteStore | None = None,
    ) -> None:
        self.ledger = ledger
        self.view = view
        self.records = records
        self.settings = settings
        self.operating_day = OperatingDay(settings.calendars) if settings.calendars else None
        self.screen = screen
        self.scenario = scenario or Scenario()
        self.stats = EngineStats()
        self.mode: SettlementMode = mode_for(settings.mode)
        self.queue = PaymentQueue()
        # Timed payments before their ``settle_from``: waiting, but not yet in the queue (they
        # neither settle nor hold back their payer's later payments until then).
        self.warehouse = PaymentQueue()
        self._queue_seq = 0
        self._reservation_seq = 0
        # Firm FX quotes: kept with the payment records when they can keep them (durably).
        if quotes is None:
            quotes = records if isinstance(records, FxQuoteStore) else MemoryFxQuotes()
        self.quotes: FxQuoteStore = quotes
        self._quote_seq = 0
        self.stopped: BaseException | None = None  # the failure that stopped the engine
        self.reservations: dict[int, reservations.Reservation] = {}
        self._reserving_view: NetworkView | None = None  # ``_reserving_account``'s memo
        self._reserving_ids: dict[tuple[str, str], int | None] = {}
        self.clearing = self._open_clearing_accounts()
        for payment, seq in records.queued():
            waiting = QueuedPayment(payment, seq, ledger.clock())
            (self.warehouse if self._not_yet(payment) else self.queue).add(waiting)
            self._queue_seq = max(self._queue_seq, seq)
        self._accounts_of = recovery.holder_index(
            (key, account.id) for key, account in view.accounts.items()
        )
        self._issuance_ids: dict[str, tuple[int, ...]] = _issuance_accounts(view)
        self._credit_line_max: dict[str, int] = {}
        # Start-up reconciliation: what a crash left unrecorded is settled from the ledger.
        self.recovered = self.recover()
        # The queue's liquidity reservations: those the ledger holds open, set to the rule.
        self.reservations = reservations.adopt(ledger.state.pending_open.values())
        self._reserve()

    # -- public API -------------------------------------------------------------------------

    @contextmanager
    def _operation(self) -> Iterator[None]:
        """One operation on the engine's state: refused once the engine stopped, and stopping
        it when anything escapes (a failed write leaves memory ahead of the durable state)."""
        if self.stopped is not None:
            raise EngineStopped(f"the payment engine stopped after: {self.stopped}")
        try:
            yield
        except BaseException as error:
            self.stopped = error
            raise

    def submit(self, payment: Payment) -> PaymentOutcome:
        return self.submit_many([payment])[0]

    def submit_many(self, payments: Sequence[Payment]) -> list[PaymentOutcome]:
        """Take a batch of payments through their life; one durable record write per batch.

        RTGS: every accepted payment is routed and planned first, then all their chains go to
        the ledger together (one durable commit per 8,190 transfers, each chain still all or
        nothing). A chain the ledger refuses (an earlier payment of the batch took the liquidity,
        or the graph was stale) is retried on its own: other routes, fresh routing, or the queue.
        """
        with self._operation():
            outcomes: list[PaymentOutcome | None] = [None] * len(payments)
            events_of: dict[int, Events] = {}
            first_index: dict[str, int] = {}
            duplicates: list[tuple[int, int]] = []
            planned: list[Planned] = []
            released = self._release_due()
            self._release_for({payment.debtor_agent for payment in payments})
            seen = self.records.get_many([payment.payment_id for payment in payments])
            for index, payment in enumerate(payments):
                if payment.payment_id in first_index:
                    duplicates.append((index, first_index[payment.payment_id]))
                    continue
                known = self._resubmission(payment, seen.get(payment.payment_id))
                if known is not None:
                    outcomes[index] = known
                    continue
                first_index[payment.payment_id] = index
                events: Events = [(PaymentStatus.RECEIVED, "")]
                events_of[index] = events
                try:
                    self._accept(payment, events)
                    if payment.fx_quote_id:
                        at_quote = quote_desk.settle_at_quote(self, payment, events)
                        if at_quote.status is PaymentStatus.SETTLED:
                            self.stats.settled_immediately += 1
                        outcomes[index] = at_quote
                        continue
                    if self._not_yet(payment):
                        outcomes[index] = self.enqueue(
                            payment, events, reason=None, text=self._warehoused_text(payment)
                        )
                        continue
                    held = self.mode.on_accepted(self, payment, events)
                    if held is not None:
                        outcomes[index] = held
                        continue
                    routes = self.route(payment, alternatives=False, refuse_hopeless=True)
                    if not routes:
                        outcomes[index] = self.enqueue(payment, events)
                        continue
                    planned.append(
                        Planned(index, payment, events, routes, self.plan(payment, routes[0]))
                    )
                except PaymentRejected as rejection:
                    outcomes[index] = self.reject(payment, rejection.reason, rejection.text, events)
            # Write-ahead: a chain reaches the ledger only after its payment's intent is durable, so
            # a crash can never leave money moved without a trace of the payment (``recover``).
            self.records.begin([(item.payment, "settle") for item in planned], self.ledger.clock())
            for group in _chain_groups(sorted(planned, key=lambda item: item.payment.debtor_agent)):
                ready: list[Planned] = []
                for item in group:  # A payer's earlier payment may have joined the queue since.
                    if self.queue.blocks(item.payment):
                        outcomes[item.position] = self._wait_in_line(item.payment, item.events)
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
            entries = released
            for index in sorted(events_of):
                outcome = outcomes[index]
                assert outcome is not None
                queued = self._waiting(payments[index].payment_id)
                entries.append(
                    (payments[index], outcome, queued.seq if queued else None, events_of[index])
                )
            self._record(entries)
            settled_any = any(o is not None and o.status is PaymentStatus.SETTLED for o in outcomes)
            self.mode.after_batch(self, settled_any)
            self._reserve()
            answered = [outcome for outcome in outcomes if outcome is not None]
            assert len(answered) == len(payments)  # Every payment was answered above.
            return answered

    def quote_fx(self, request: quote_desk.FxQuoteRequest) -> FxQuote | PaymentOutcome:
        """A firm FX quote for ``request`` (``payments.fx_quotes``), its liquidity held until
        it is used or expires; or the refusal (a rejected outcome under the would-be quote id,
        with its ISO 20022 reason), which changes nothing."""
        with self._operation():
            self._release_for({request.debtor_agent})
            self._quote_seq += 1
            try:
                return quote_desk.make_quote(self, request, self._quote_seq)
            except PaymentRejected as rejection:
                return PaymentOutcome(
                    "", PaymentStatus.REJECTED, rejection.reason,
                    rejection.text or REASON_TEXT[rejection.reason],
                )  # fmt: skip
            finally:
                self._reserve()

    def check(self, payment: Payment) -> None:
        """Validate ``payment`` as if it were submitted (``PaymentRejected`` refuses it)."""
        self._validate(payment)

    def account_info(self, account_id: int) -> tuple[str, str]:
        """(owner BIC, currency) of a ledger account."""
        state = self.ledger.lookup_account(account_id)
        if state is None:
            raise InvariantViolation(f"account {account_id} is not in the ledger")
        return state.account.participant, state.currency

    def settled_in_ledger(self, payment: Payment) -> PaymentOutcome:
        return self._settled_in_ledger(payment)

    def _wait_in_line(self, payment: Payment, events: Events) -> PaymentOutcome:
        """FIFO: queue ``payment`` behind its payer's earlier queued payments."""
        try:
            return self.enqueue(payment, events, reason=None, text=FIFO_TEXT)
        except PaymentRejected as rejection:
            return self.reject(payment, rejection.reason, rejection.text, events)

    def _accept(self, payment: Payment, events: Events) -> None:
        """Validate and screen, noting each step as an event; ``PaymentRejected`` refuses."""
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
        results: list[TR],
        events: Events,
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
        self, payment: Payment, alternatives: list[Route], events: Events
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
        if replace(first, priority=payment.priority) != payment:  # Priority may be changed.
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
        return_id: str = "",
    ) -> ReturnOutcome:
        """Return (part of) a settled payment (a pacs.004): a new payment in the reverse
        direction, from the original's creditor agent to its debtor agent, for the returned
        amount in the currency the creditor agent received, converted at *today's* rate. It
        is submitted like any payment (it may settle at once, queue, wait for a net cycle or be
        refused) and its outcome is the answer.

        ``returned_by`` is the *authenticated* participant asking (never a field of the
        message): only the payment's creditor agent may return it, and for anyone else the
        payment does not exist (no existence oracle). ``amount`` (minor units, currency) is
        the returned amount, by default all that is left to return; returns together never
        exceed what the creditor agent received (AM09, also once the payment is fully
        returned). ``return_id`` (a pacs.004's ``RtrId``) makes the return's own id, so
        resubmitting one return answers its first outcome and a second return is a new one.
        The original is marked returned by the amount of each return that *settles*.
        """
        with self._operation():
            found = self.records.get(payment_id)
            if found is None or returned_by != found[0].creditor_agent:
                return _refused_return(payment_id, Reason.NARR, "original payment not found")
            original, outcome, _ = found
            return_payment_id = f"{returned_by}:{return_id or 'return'}:{payment_id}"
            if outcome.status not in (PaymentStatus.SETTLED, PaymentStatus.RETURNED):
                return _refused_return(
                    payment_id, Reason.NARR, f"payment is {outcome.status.value}, not settled"
                )
            known = self.records.get(return_payment_id)
            if known is None:
                left = self._left_to_return(original, outcome)
                wanted = amount if amount is not None else (left, original.creditor_currency)
                problem = _return_amount_problem(original, wanted, left)
                if problem:
                    return _refused_return(payment_id, Reason.AM09, problem)
            else:
                wanted = (known[0].amount_minor, known[0].currency)
            reverse = Payment(
                payment_id=return_payment_id,
                debtor_agent=original.creditor_agent,
                creditor_agent=original.debtor_agent,
                amount_minor=wanted[0],
                currency=original.creditor_currency,
                creditor_currency=original.currency,
                debtor=original.creditor,
                creditor=original.debtor,
                end_to_end_id=original.end_to_end_id,
                uetr=original.uetr,
                remittance_info=f"return of {payment_id}: {reason}"[:140],
                priority=original.priority,
                returns=payment_id,
            )
            answer = self.submit(reverse)
            if answer.status is PaymentStatus.REJECTED:
                assert answer.reason is not None
                return ReturnOutcome(payment_id, False, answer.reason, answer.reason_text, answer)
            return ReturnOutcome(payment_id, True, payment=answer)

    def _left_to_return(self, original: Payment, outcome: PaymentOutcome) -> int:
        """What the creditor agent received and has not returned or begun to return."""
        waiting = sum(
            queued.payment.amount_minor
            for queued in self.queue.entries()
            if queued.payment.returns == original.payment_id
        )
        return outcome.amount_delivered_minor - outcome.amount_returned_minor - waiting

    def _with_returns(self, entries: list[Entry]) -> list[Entry]:
        """``entries`` and, for each return among them that settled, its original marked
        returned by that amount (fully returned: status ``returned``), to be recorded with them
        in one transaction, so the record of a return and of its original never disagree."""
        settled = [
            entry
            for entry in entries
            if entry[0].returns
            and entry[1].status is PaymentStatus.SETTLED
            and not entry[1].duplicate
        ]
        if not settled:
            return entries
        originals = self.records.get_many(list({entry[0].returns for entry in settled}))
        updated: dict[str, tuple[Payment, PaymentOutcome, Events]] = {}
        for payment, _, _, _ in settled:
            if payment.returns not in originals:
                continue
            original, outcome, _ = originals[payment.returns]
            if payment.returns in updated:
                original, outcome, events = updated[payment.returns]
            else:
                events = []
            returned = outcome.amount_returned_minor + payment.amount_minor
            full = returned >= outcome.amount_delivered_minor
            outcome = replace(
                outcome,
                status=PaymentStatus.RETURNED if full else outcome.status,
                amount_returned_minor=returned,
                duplicate=False,
            )
            events.append(
                (
                    PaymentStatus.RETURNED if full else outcome.status,
                    f"{payment.amount_minor} {payment.currency} returned by {payment.payment_id}",
                )
            )
            updated[payment.returns] = (original, outcome, events)
        return [*entries, *((p, o, None, e) for p, o, e in updated.values())]

    def _record(self, entries: list[Entry]) -> None:
        if entries:
            self.records.record(self._with_returns(entries), self.ledger.clock())

    # -- waiting payments: timed, cancelled, re-prioritised ----------------------------------

    def _warehoused_text(self, payment: Payment) -> str:
        now = self.ledger.clock()
        window = None if payment.settle_from > now else self._window(payment, now)
        if window is not None and now < window.start_ns:
            return f"waits for its settlement window {window.label}"
        return _warehoused_text(payment)

    def clock(self) -> int:
        return self.ledger.clock()

    def _not_yet(self, payment: Payment) -> bool:
        """Before its earliest settlement time, or while its settlement window is closed."""
        now = self.ledger.clock()
        if payment.settle_from > now:
            return True
        window = self._window(payment, now)
        return window is not None and now < window.start_ns

    def _window(self, payment: Payment, at_ns: int) -> Window | None:
        """The payment's settlement window open at ``at_ns`` or next (None: always open; a pair
        that never overlaps is refused DT01 by ``_validate`` before it gets here)."""
        if self.operating_day is None:
            return None
        try:
            return self.operating_day.window(payment.currency, payment.creditor_currency, at_ns)
        except NoWindow:
            return None

    def _waiting(self, payment_id: str) -> QueuedPayment | None:
        return self.queue.get(payment_id) or self.warehouse.get(payment_id)

    def _release_due(self) -> list[Entry]:
        """Move the warehoused payments whose ``settle_from`` has come into the queue, in
        arrival order (their sequence numbers are kept); their queue wait starts now."""
        due = [q for q in self.warehouse.select() if not self._not_yet(q.payment)]
        entries: list[Entry] = []
        for waiting in sorted(due, key=lambda q: q.seq):
            self.warehouse.remove(waiting.payment.payment_id)
            self.queue.add(QueuedPayment(waiting.payment, waiting.seq, self.ledger.clock()))
            outcome = PaymentOutcome(
                waiting.payment.payment_id, PaymentStatus.QUEUED, None, "released from the"
                " warehouse: waiting for its settlement",
            )  # fmt: skip
            events = [(PaymentStatus.QUEUED, "settlement time reached: released")]
            entries.append((waiting.payment, outcome, waiting.seq, events))
        return entries

    def cancel(self, payment_id: str, *, requested_by: str) -> RequestOutcome:
        """Cancel a payment that waits (queued, held for a cycle, or warehoused): only its
        debtor agent may (for anyone else it does not exist). A payment already final (settled,
        rejected, returned, cancelled) is not changed: NARR with its status."""
        with self._operation():
            found = self._own_waiting(payment_id, requested_by)
            if isinstance(found, RequestOutcome):
                return found
            (self.queue if payment_id in self.queue else self.warehouse).remove(payment_id)
            outcome = PaymentOutcome(
                payment_id, PaymentStatus.CANCELLED, None, f"cancelled by {requested_by}"
            )
            self._record(
                [(found.payment, outcome, None, [(PaymentStatus.CANCELLED, outcome.reason_text)])]
            )
            self._reserve()  # What it held back is free again.
            return RequestOutcome(payment_id, True, payment=outcome)

    def reprioritise(
        self, payment_id: str, priority: Priority, *, requested_by: str
    ) -> RequestOutcome:
        """Change the priority of a waiting payment (its debtor agent only). It keeps its
        arrival order: among the payments of its new priority it stands where it arrived."""
        with self._operation():
            found = self._own_waiting(payment_id, requested_by)
            if isinstance(found, RequestOutcome):
                return found
            holder = self.queue if payment_id in self.queue else self.warehouse
            changed = replace(found.payment, priority=priority)
            holder.add(QueuedPayment(changed, found.seq, found.enqueued_at))  # replaces it
            text = f"priority set to {priority.value}"
            if holder is self.warehouse:
                text = f"{_warehoused_text(changed)}; {text}"
            outcome = PaymentOutcome(payment_id, PaymentStatus.QUEUED, None, text)
            events = [(PaymentStatus.QUEUED, f"priority set to {priority.value} by {requested_by}")]
            self._record([(changed, outcome, found.seq, events)])
            self.mode.after_batch(self, False)
            return RequestOutcome(payment_id, True, payment=outcome)

    def _own_waiting(self, payment_id: str, requested_by: str) -> QueuedPayment | RequestOutcome:
        waiting = self._waiting(payment_id)
        if waiting is not None and waiting.payment.debtor_agent == requested_by:
            return waiting
        found = self.records.get(payment_id)
        if found is None or found[0].debtor_agent != requested_by:
            return RequestOutcome(payment_id, False, Reason.NARR, "payment not found", exists=False)
        status = found[1].status.value
        return RequestOutcome(payment_id, False, Reason.NARR, f"payment is {status}, not waiting")

    # -- liquidity reservations (``payments.reservations``) -----------------------------------

    def _reserving_account(self, payment: Payment) -> int | None:
        """The account a queued payment reserves on: its payer's settlement account in the
        payment's currency (None: it pays from a correspondent account). Looked up once per
        (payer, currency) and view: every pass over the queue asks again for each payment
        (a view that is not ``incremental`` runs the reference path: no memo)."""
        pair = (payment.debtor_agent, payment.currency)
        if not self.view.incremental:
            return self.view.account_id(AccountKey.settlement(*pair))
        if self._reserving_view is not self.view:
            self._reserving_view, self._reserving_ids = self.view, {}
        if pair not in self._reserving_ids:
            self._reserving_ids[pair] = self.view.account_id(AccountKey.settlement(*pair))
        return self._reserving_ids[pair]

    def _reserve(self) -> None:
        """Set every account's reservation to the rule: the smaller of its queued payments'
        total and what it could pay (none at all when the mode does not reserve)."""
        if not self.mode.reserves_liquidity:
            self._apply_reservations({})
            return
        if not self.queue and not self.reservations:
            return
        queued: list[tuple[int, int]] = []
        for waiting in self.queue.entries():  # Totals only: no need to sort the queue.
            amount = reservations.reserved_amount(waiting.payment)
            account = self._reserving_account(waiting.payment)
            if amount is not None and account is not None:
                queued.append((account, amount))
        headroom = {}
        for account_id in {account for account, _ in queued}:
            state = self.ledger.lookup_account(account_id)
            if state is not None:
                headroom[account_id] = Balances.of(state).headroom_minor
        held = {account: kept.amount for account, kept in self.reservations.items()}
        self._apply_reservations(reservations.targets(queued, headroom, held))

    def _release_for(self, payers: set[str] | None) -> None:
        """Void the reservations of ``payers``' accounts (None: every one) before settling."""
        if not self.reservations:
            return
        kept = {
            account: held.amount
            for account, held in self.reservations.items()
            if payers is not None and self._owner(account) not in payers
        }
        if len(kept) < len(self.reservations):
            self._apply_reservations(kept)
            self.view.invalidate()  # Routes may use what was reserved.

    def _owner(self, account_id: int) -> str:
        state = self.ledger.lookup_account(account_id)
        return state.account.participant if state is not None else ""

    def _apply_reservations(self, wanted: dict[int, int]) -> None:
        clearing_of = {}
        for account_id in wanted:
            state = self.ledger.lookup_account(account_id)
            if state is None:
                raise InvariantViolation(f"a reservation names account {account_id}, missing")
            clearing_of[account_id] = self.clearing[state.currency]
        self._reservation_seq += 1
        stamp = f"{self.ledger.clock()}:{self._reservation_seq}"
        transfers, after = reservations.changes(self.reservations, wanted, clearing_of, stamp)
        if not transfers:
            return
        results = self.ledger.create_transfers(transfers)
        if all(result is TR.OK for result in results):
            self.reservations = after
        else:  # Out of step with the ledger (a reservation resolved elsewhere): read it again.
            self.reservations = reservations.adopt(self.ledger.state.pending_open.values())

    def run_cycle(self, selection: Selection = EVERYTHING) -> CycleReport:
        """One cycle of the settlement mode over the selected queued payments: those past the
        queue timeout are rejected (TM01), then the mode settles what it can (RTGS: the
        liquidity-saving mechanism; DNS: netting). Recorded before it returns."""
        with self._operation():
            released = self._release_due()
            self._release_for(
                None
            )  # The cycle may settle any queued payment: free their liquidity.
            expired = self.expire_queue(selection)
            report, entries = self.mode.run_cycle(self, selection)
            entries = released + expired + entries
            self._record(entries)
            self._reserve()
            report.rejected += len(expired)
            self.stats.cycles += 1
            report.number = self.stats.cycles
            report.outcomes = [entry[1] for entry in entries]
            return report

    # -- the life of one payment ------------------------------------------------------------

    def _known(self, payment_id: str) -> PaymentOutcome | None:
        found = self.records.get(payment_id)
        return found[1] if found else None

    def _validate(self, payment: Payment) -> None:
        if not isinstance(payment.amount_minor, int) or payment.amount_minor <= 0:
            raise PaymentRejected(Reason.AM01, f"amount {payment.amount_minor} must be positive")
        if payment.amount_minor > AMOUNT_MAX:
            raise PaymentRejected(Reason.AM02)
        fixed = payment.fixed_currency
        ceiling = self._fundable_ceiling(fixed)
        if ceiling is not None and payment.amount_minor > ceiling:
            raise PaymentRejected(
                Reason.AM02,
                f"amount exceeds all {fixed} in the network ({ceiling} minor units):"
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
        if payment.settle_till and payment.settle_till <= max(payment.settle_from, self.clock()):
            raise PaymentRejected(
                Reason.DT01,
                "its latest settlement time has passed (or is not after its earliest)",
            )
        if payment.settle_from > self.clock() + self.settings.warehouse_ns_max:
            raise PaymentRejected(
                Reason.DT01,
                "its earliest settlement time is further ahead than the warehouse keeps payments"
                f" ({self.settings.warehouse_ns_max // (86_400 * NS_PER_SECOND)} days)",
            )
        if self.operating_day is not None:
            try:
                pair = (payment.currency, payment.creditor_currency)
                self.operating_day.window(*pair, max(payment.settle_from, self.clock()))
            except NoWindow as error:
                raise PaymentRejected(Reason.DT01, str(error)) from None
        disagreement = amounts_disagree(payment, self.view.rates_at(self.clock()))
        if disagreement:
            raise PaymentRejected(Reason.AM09, disagreement)

    def route(
        self,
        payment: Payment,
        *,
        for_cycle: bool = False,
        alternatives: bool = True,
        refuse_hopeless: bool = False,
    ) -> list[Route]:
        """Routes best first; with ``alternatives=False`` only the cheapest (much faster: the
        ranked alternatives are computed only when a first attempt is refused). [] when only
        liquidity is missing; with ``refuse_hopeless``, ``PaymentRejected`` (AM02) instead when
        no liquidity could ever be enough (over every route's swap-line size)."""
        graph = self.view.graph(self.ledger, self.scenario, ignore_balances=for_cycle)
        finder = find_routes_delivering if _delivers_fixed(payment) else find_routes
        result = finder(
            graph,
            payment.debtor_agent,
            payment.creditor_agent,
            payment.amount_minor,
            payment.currency,
            payment.creditor_currency,
            self.view.rates_at(self.clock()),
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
                return self.route(
                    payment,
                    for_cycle=for_cycle,
                    alternatives=alternatives,
                    refuse_hopeless=refuse_hopeless,
                )
            if not refuse_hopeless:
                return []  # Feasible in principle: wait for liquidity.
            ever = self._ever_routes(payment)
            if ever.routes:
                return []  # Feasible in principle: wait for liquidity.
            reasons = {exclusion.reason for exclusion in ever.exclusions}
            if reasons & _LIQUIDITY_REASONS:
                raise PaymentRejected(
                    Reason.AM02,
                    "no route could ever carry this amount: it exceeds the FX providers'"
                    " dealing limits or the swap lines' agreed sizes on every route",
                )
        if ExclusionReason.PARTICIPANT_SUSPENDED in reasons:
            raise PaymentRejected(Reason.AG01, "a participant on every route is suspended")
        if ExclusionReason.CORRIDOR_CUT in reasons:
            raise PaymentRejected(Reason.AG01, "every route crosses a cut corridor")
        if ExclusionReason.NO_RATE in reasons:
            raise PaymentRejected(
                Reason.AM03, f"no FX quote for {payment.currency}->{payment.creditor_currency}"
            )
        if ExclusionReason.AMOUNT_ROUNDS_TO_ZERO in reasons:
            raise PaymentRejected(
                Reason.AM01,
                f"the amount converts to zero {payment.creditor_currency} on every route",
            )
        if ExclusionReason.NO_CONSENT in reasons:
            raise PaymentRejected(
                Reason.CNOR,
                "no route to the creditor agent that its banks agreed to carry: no"
                " correspondent relationship or FX provider serves this payment",
            )
        raise PaymentRejected(Reason.CNOR, "no route to the creditor agent")

    def _ever_routes(self, payment: Payment) -> RouteResult:
        """The routes that could carry ``payment`` with all the liquidity in the world (every
        swap line fully drawn into its facility): if there are none, waiting is pointless."""
        graph = self.view.graph(self.ledger, self.scenario, ever=True)
        finder = find_routes_delivering if _delivers_fixed(payment) else find_routes
        found = finder(
            graph,
            payment.debtor_agent,
            payment.creditor_agent,
            payment.amount_minor,
            payment.currency,
            payment.creditor_currency,
            self.view.rates_at(self.clock()),
            k=1,
        )
        return found

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

    def apply_route(self, payment: Payment, route: Route, events: Events) -> PaymentOutcome | None:
        chain = self.plan(payment, route)
        return self._judge(payment, route, chain, self.ledger.create_transfers(chain), events)

    def _judge(
        self,
        payment: Payment,
        route: Route,
        chain: list[Transfer],
        results: list[TR],
        events: Events,
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
                amount_sent_minor=route.legs[0].amount_minor,
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
        events: Events,
        reason: Reason | None = Reason.AM04,
        text: str = "waiting for liquidity",
    ) -> PaymentOutcome:
        """Queue ``payment`` (within the queue's and its payer's quota, else AM04)."""
        if len(self.queue) + len(self.warehouse) >= self.settings.queue_max:
            raise PaymentRejected(Reason.AM04, "insufficient funds and the queue is full")
        payer = payment.debtor_agent
        if (
            self.queue.by_payer[payer] + self.warehouse.by_payer[payer]
            >= self.settings.queue_max_per_payer
        ):
            raise PaymentRejected(
                Reason.AM04,
                f"insufficient funds and {payment.debtor_agent} already has"
                f" {self.settings.queue_max_per_payer} payments queued",
            )
        self._queue_seq += 1
        waiting = QueuedPayment(payment, self._queue_seq, self.ledger.clock())
        (self.warehouse if self._not_yet(payment) else self.queue).add(waiting)
        events.append((PaymentStatus.QUEUED, text))
        return PaymentOutcome(payment.payment_id, PaymentStatus.QUEUED, reason, text)

    def reject(self, payment: Payment, reason: Reason, text: str, events: Events) -> PaymentOutcome:
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
                issued -= Balances.of(state).posted_minor
        line = self._credit_line_max.get(currency)
        if line is None:  # Credit limits are fixed when an account is opened: look once.
            line = self._credit_line_max[currency] = max(
                (
                    state.credit_limit
                    for key, account in self.view.accounts.items()
                    if account.currency == currency and key.kind in _FUNDABLE_KINDS
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
        entries: list[Entry] = []
        dropped: list[str] = []
        lookup = self.ledger.store.get_transfers
        for payment, kind in self.records.intents():
            try:
                cycle = recovery.parse_cycle_intent(kind)
                if cycle is not None:
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
        self._record(entries)
        if dropped:
            self.records.drop_intents(dropped)
        report.settled = sum(1 for e in entries if e[1].status is PaymentStatus.SETTLED)
        report.returned = sum(1 for e in entries if e[0].returns)  # returns that settled
        report.dropped = len(dropped)
        return report

    def _recovered_from_cycle(self, payment: Payment, cycle: recovery.CycleIntent) -> Entry | None:
        queued = self.queue.get(payment.payment_id)
        if queued is None:
            return None
        outcome = recovery.net_settled(payment, cycle, self.ledger.store.get_transfers)
        if outcome is None:
            return None
        events = [(PaymentStatus.SETTLED, outcome.reason_text)]
        return self.settled_from_queue(queued, outcome, events, "settled_in_cycles")

    def audit(self) -> recovery.AuditReport:
        """Reconcile every payment record with the ledger and every payment chain in the
        ledger with a record (``sco-settle verify``)."""
        store = self.ledger.store
        return recovery.audit(
            self.records.records(),
            len(self.records.intents()),
            store.get_transfers,
            store.iter_transfers(),
            self._parties,
        )

    # -- RTGS queue and the liquidity-saving mechanism ---------------------------------------

    def expire_queue(self, selection: Selection = EVERYTHING) -> list[Entry]:
        now = self.ledger.clock()
        entries: list[Entry] = []
        for queued in self.queue.select(selection):
            till = queued.payment.settle_till
            window = self._window(queued.payment, queued.enqueued_at)
            closed = window is not None and now >= window.end_ns
            if (
                now - queued.enqueued_at >= self.settings.queue_timeout_ns
                or 0 < till <= now
                or closed
            ):
                self.queue.remove(queued.payment.payment_id)
                events: Events = []
                text = "not settled before its latest settlement time" if 0 < till <= now else ""
                if closed and window is not None and not text:
                    text = f"not settled before the cut-off of its settlement window {window.label}"
                outcome = self.reject(
                    queued.payment, Reason.TM01, text or REASON_TEXT[Reason.TM01], events
                )
                entries.append((queued.payment, outcome, None, events))
        return entries

    def settled_from_queue(
        self, queued: QueuedPayment, outcome: PaymentOutcome, events: Events, counter: str
    ) -> Entry:
        self.queue.remove(queued.payment.payment_id)
        setattr(self.stats, counter, getattr(self.stats, counter) + 1)
        self.stats.queue_delays_ns.append(max(self.ledger.clock() - queued.enqueued_at, 0))
        return (queued.payment, outcome, None, events)

    def _open_clearing_accounts(self) -> dict[str, int]:
        """One clearing account per currency, owned by its central bank, for LSM and DNS chains."""
        accounts = []
        for code, bank in sorted(self.view.network.settlement_agents.items()):
            key = AccountKey.clearing(bank, code)
            accounts.append(
                Account(
                    account_id_for_key(key), bank, code, AccountKind.SUSPENSE.value, ref=str(key)
                )
            )
        results = self.ledger.create_accounts(accounts)
        assert all(result in ("ok", "exists") for result in results), results
        return {account.currency: account.id for account in accounts}


def _refused_return(payment_id: str, reason: Reason, text: str) -> ReturnOutcome:
    return ReturnOutcome(
        payment_id, False, reason, text, exists=text != "original payment not found"
    )


def _return_amount_problem(original: Payment, wanted: tuple[int, str], left: int) -> str:
    """Why a return of ``wanted`` (minor units, currency) cannot be made ("" if it can)."""
    amount, code = wanted
    if code != original.creditor_currency:
        return f"a return is in {original.creditor_currency}, the currency received, not {code}"
    if left <= 0:
        return "the payment is already fully returned (or its returns are under way)"
    if not 0 < amount <= left:
        return f"a return of {amount} exceeds the {left} (minor units) left to return"
    return ""


def _warehoused_text(payment: Payment) -> str:
    when = dt.datetime.fromtimestamp(payment.settle_from / NS_PER_SECOND, dt.UTC)
    return f"warehoused until {when.isoformat(timespec='seconds')}"


def _delivers_fixed(payment: Payment) -> bool:
    """Whether ``payment`` fixes the amount received in another currency than it is paid in."""
    return (
        payment.amount_type is AmountType.RECEIVE and payment.currency != payment.creditor_currency
    )


def _issuance_accounts(view: NetworkView) -> dict[str, tuple[int, ...]]:
    found: dict[str, list[int]] = defaultdict(list)
    for key, account in view.accounts.items():
        if key.kind is AccountKeyKind.ISSUANCE:
            found[account.currency].append(account.id)
    return {code: tuple(ids) for code, ids in found.items()}
