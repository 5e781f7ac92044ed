"""Real-time gross settlement with a liquidity-saving mechanism (a ``SettlementMode``).

A payment settles gross at once when its route has liquidity, else it waits in the queue
(urgent before normal, FIFO within each payer and priority). A cycle is one pass of the
liquidity-saving mechanism over the selected queued payments: retry in order of service (a
payer's blocked head holds back its later ones), then bilateral offsetting, then gridlock
resolution with the partial-netting heuristic (``payments.gridlock``), both among payments
between settlement-account holders in one currency, then cross-currency offsetting of the
others (``payments.lsm_fx``, unless ``EngineSettings.lsm_fx_offsetting`` is off). Each
settlement is a ledger chain, so the queue never settles beyond available liquidity.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from sco_settle.domain.account_key import AccountKey, AccountKeyKind
from sco_settle.domain.balances import Balances
from sco_settle.domain.results import CreateTransferResult as TR
from sco_settle.domain.transfer import Transfer
from sco_settle.ledger import InvariantViolation
from sco_settle.ledger.state_machine import AccountState
from sco_settle.payments import gridlock, lsm_fx
from sco_settle.payments.model import Payment, PaymentOutcome, PaymentRejected, PaymentStatus
from sco_settle.payments.modes import CycleReport, Entry, Events, register
from sco_settle.payments.plan import CODE_LSM, LINKED, lsm_ids
from sco_settle.payments.queue import FIFO_TEXT, QueuedPayment, Selection

if TYPE_CHECKING:
    from sco_settle.payments.engine import PaymentEngine

GRIDLOCK_PAYMENTS_MAX = 4_000  # 2 x 4,000 transfers < BATCH_EVENTS_MAX (8,190).
_LIMIT_RESULTS = frozenset(
    {TR.EXCEEDS_CREDITS, TR.EXCEEDS_DEBITS, TR.OVERFLOWS_DEBITS, TR.OVERFLOWS_CREDITS},
)


class RealTimeGross:
    name: ClassVar[str] = "rtgs"
    cycle_kind: ClassVar[str] = "lsm"
    runs_when_idle: ClassVar[bool] = True
    reserves_liquidity: ClassVar[bool] = True  # A queued payment holds back its liquidity.

    def __init__(self) -> None:
        self._nostro_holders: set[tuple[str, str]] | None = None
        self._fx_offsetting = lsm_fx.CrossCurrencyOffsetting()

    def on_accepted(
        self, engine: PaymentEngine, payment: Payment, events: Events
    ) -> PaymentOutcome | None:
        if engine.queue.blocks(payment):  # FIFO: an earlier payment of the payer waits.
            return engine.enqueue(payment, events, reason=None, text=FIFO_TEXT)
        return None  # Settle it gross, now.

    def after_batch(self, engine: PaymentEngine, settled_any: bool) -> None:
        if settled_any:
            engine.run_cycle()  # New liquidity may release queued payments.

    def run_cycle(
        self, engine: PaymentEngine, selection: Selection
    ) -> tuple[CycleReport, list[Entry]]:
        engine.view.invalidate()
        entries = self._retry_queue(engine, selection)
        saving = engine.settings.liquidity_saving
        if saving and engine.settings.fifo_bypass:  # Offsetting may settle out of FIFO order.
            entries += self._resolve_gridlock(
                engine, selection, gridlock.bilateral_offsetting, "offsetting"
            )
        if saving:
            entries += self._resolve_gridlock(
                engine, selection, gridlock.partial_netting, "gridlock"
            )
        if saving and engine.settings.lsm_fx_offsetting:
            entries += self._fx_offsetting.run(
                engine, selection, lambda payment: self._one_currency(engine, payment)
            )
        report = CycleReport(
            self.cycle_kind,
            settled=sum(1 for e in entries if e[1].status is PaymentStatus.SETTLED),
            rejected=sum(1 for e in entries if e[1].status is PaymentStatus.REJECTED),
        )
        return report, entries

    def _retry_queue(self, engine: PaymentEngine, selection: Selection) -> list[Entry]:
        """Retry in (priority, arrival) order; a payer's blocked head holds back its later ones."""
        entries: list[Entry] = []
        # FIFO: once a payer's payment stays queued, none of its later payments of the same or a
        # lower priority may settle in this pass (a payer -> the highest level it blocks).
        blocked: dict[str, int] = {}
        for queued in engine.queue.select(selection):
            payer, level = queued.payment.debtor_agent, queued.rank[0]
            if level >= blocked.get(payer, 2):
                continue
            if not self._may_have_liquidity(engine, queued.payment):
                blocked[payer] = level  # Skip routing: the first hop cannot carry it yet.
                continue
            events: Events = []
            try:
                outcome = None
                for route in engine.route(queued.payment):
                    outcome = engine.apply_route(queued.payment, route, events)
                    if outcome is not None:
                        break
            except PaymentRejected as rejection:
                engine.queue.remove(queued.payment.payment_id)
                outcome = engine.reject(queued.payment, rejection.reason, rejection.text, events)
                entries.append((queued.payment, outcome, None, events))
                continue
            if outcome is None:
                blocked[payer] = level
                continue
            entries.append(engine.settled_from_queue(queued, outcome, events, "settled_from_queue"))
        return entries

    def _may_have_liquidity(self, engine: PaymentEngine, payment: Payment) -> bool:
        """False only when the debtor's own settlement account surely cannot pay the amount (a
        payment out of a correspondent account is always worth a routing attempt)."""
        key = AccountKey.settlement(payment.debtor_agent, payment.currency)
        account_id = engine.view.account_id(key)
        state = engine.ledger.lookup_account(account_id) if account_id is not None else None
        if state is None:
            return True
        if (payment.debtor_agent, payment.currency) in self._holders(engine):
            return True
        if payment.fixed_currency != payment.currency:
            return True  # What a fixed received amount costs is known only on a route.
        return Balances.of(state).headroom_minor >= payment.amount_minor

    def _resolve_gridlock(
        self,
        engine: PaymentEngine,
        selection: Selection,
        algorithm: Callable[..., gridlock.GridlockResult],
        counter_name: str,
    ) -> list[Entry]:
        """Settle simultaneously the set of queued same-currency payments that balances allow."""
        by_currency: dict[str, list[QueuedPayment]] = defaultdict(list)
        stopped: dict[str, int] = {}  # FIFO: payer -> level from which its payments must wait
        for queued in engine.queue.select(selection):
            payment, level = queued.payment, queued.rank[0]
            if level >= stopped.get(payment.debtor_agent, 2) and not engine.settings.fifo_bypass:
                continue
            if self._one_currency(engine, payment):
                by_currency[payment.currency].append(queued)
            else:  # It cannot settle here, so neither may the payer's later payments.
                stopped[payment.debtor_agent] = min(level, stopped.get(payment.debtor_agent, 2))
        entries: list[Entry] = []
        for code, candidates in sorted(by_currency.items()):
            balances = {}
            limits = {}
            for queued in candidates:
                for bic in (queued.payment.debtor_agent, queued.payment.creditor_agent):
                    found = Balances.of(_settlement_state(engine, bic, code))
                    balances[bic] = found.available_minor
                    limits[bic] = found.credit_limit
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
            entries += self._settle_simultaneously(engine, code, chosen, counter_name)
        return entries

    def _one_currency(self, engine: PaymentEngine, payment: Payment) -> bool:
        """Whether the one-currency passes take ``payment``: one currency, between two holders
        of settlement accounts in it other than its central bank (``payments.lsm_fx`` takes the
        rest)."""
        if payment.currency != payment.creditor_currency:
            return False
        code = payment.currency
        return all(
            engine.view.account_id(AccountKey.settlement(bic, code)) is not None
            and bic != engine.view.network.settlement_agents.get(code)
            for bic in (payment.debtor_agent, payment.creditor_agent)
        )

    def _settle_simultaneously(
        self, engine: PaymentEngine, code: str, chosen: list[QueuedPayment], counter_name: str
    ) -> list[Entry]:
        """One linked chain through the clearing account: every credit first, then every debit,
        so each payer is debited only after all its incoming payments arrived."""
        clearing = engine.clearing[code]
        credits, debits = [], []
        for queued in chosen:
            payment = queued.payment
            debit_id, credit_id = lsm_ids(payment.payment_id)
            payer = _settlement_state(engine, payment.debtor_agent, code).id
            payee = _settlement_state(engine, payment.creditor_agent, code).id
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
        results = engine.ledger.create_transfers(chain)
        if not all(result is TR.OK for result in results):
            failure = next(r for r in results if r is not TR.LINKED_EVENT_FAILED)
            if failure not in _LIMIT_RESULTS:  # The algorithm's balances were the ledger's.
                raise InvariantViolation(f"an LSM chain the balances allowed failed: {failure}")
            return []
        entries: list[Entry] = []
        for queued, credit, debit in zip(chosen, credits, debits, strict=True):
            payment = queued.payment
            events = [
                (PaymentStatus.SETTLED, f"settled by {counter_name} with {len(chosen)} payments")
            ]
            outcome = PaymentOutcome(
                payment.payment_id,
                PaymentStatus.SETTLED,
                amount_delivered_minor=payment.amount_minor,
                amount_sent_minor=payment.amount_minor,
                route=(f"{payment.debtor_agent}/{code}", f"{payment.creditor_agent}/{code}"),
                transfer_ids=(debit.id, credit.id),
                settled_at=engine.ledger.state.last_timestamp,
            )
            entries.append(
                engine.settled_from_queue(queued, outcome, events, f"settled_by_{counter_name}")
            )
        return entries

    def _holders(self, engine: PaymentEngine) -> set[tuple[str, str]]:
        """(holder, currency) of every nostro: payments out of one are always worth a try."""
        if self._nostro_holders is None:
            self._nostro_holders = {
                (key.owner, key.currency)
                for key in engine.view.accounts
                if key.kind is AccountKeyKind.VOSTRO
            }
        return self._nostro_holders


register(RealTimeGross.name, RealTimeGross)


def _settlement_state(engine: PaymentEngine, bic: str, code: str) -> AccountState:
    """``bic``'s settlement account in ``code`` (the one-currency passes only take payments
    between members that have one: ``_one_currency``)."""
    account_id = engine.view.account_id(AccountKey.settlement(bic, code))
    state = engine.ledger.lookup_account(account_id) if account_id is not None else None
    if state is None:
        raise InvariantViolation(f"{bic} has no settlement account in {code}")
    return state
