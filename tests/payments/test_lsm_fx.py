"""Cross-currency offsetting in the RTGS liquidity-saving mechanism (``payments.lsm_fx``): queued
cross-currency payments whose net positions fit settle together in one linked chain, every one
of them whole or none; FIFO holds unless bypassed; a crash right after the chain is recovered
from the ledger; value is conserved per currency over random queued sets."""

from __future__ import annotations

import itertools
from collections import Counter
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sco_settle.domain.account_key import AccountKey, AccountKeyKind
from sco_settle.domain.balances import Balances
from sco_settle.domain.transfer import Transfer, TransferFlags
from sco_settle.ledger import Ledger
from sco_settle.ledger.invariants import verify
from sco_settle.network import load_network
from sco_settle.network.install import install_network
from sco_settle.payments.engine import EngineSettings, PaymentEngine
from sco_settle.payments.lsm_fx import SETTLED_TEXT, choose
from sco_settle.payments.model import Payment, PaymentStatus, Priority, Reason
from sco_settle.payments.network_view import NetworkView, load_rates
from sco_settle.payments.plan import CODE_FX, CODE_LSM, lsm_ids
from sco_settle.payments.queue import QueuedPayment
from sco_settle.storage import MemoryStore, SqliteStore
from sco_settle.storage.payment_records_memory import MemoryPaymentRecords
from sco_settle.storage.payment_records_sqlite import SqlitePaymentRecords

KZ_A, KZ_B, CN_A, CN_B, RU_A = "HSBKKZKX", "KCJBKZKX", "BKCHCNBJ", "ICBKCNBJ", "SABRRUMM"
HOME = {KZ_A: "KZT", KZ_B: "KZT", CN_A: "CNY", CN_B: "CNY", RU_A: "RUB"}
START_NS = 1_800_000_000 * 10**9
TIMEOUT_NS = 600 * 10**9
_move_ids = itertools.count(30_000)  # the tests' own client transfers, below the engine's range


class Clock:
    def __init__(self) -> None:
        self.now = START_NS

    def __call__(self) -> int:
        return self.now


@pytest.fixture(scope="module")
def view():
    return NetworkView(load_network("sco"), load_rates())


def make_engine(view, store=None, records=None, **settings) -> PaymentEngine:
    view.invalidate()  # The shared view's cached graphs belong to another test's ledger.
    clock = Clock()
    ledger = Ledger(store or MemoryStore(), clock)
    install_network(ledger, view.network)
    engine = PaymentEngine(
        ledger,
        view,
        records or MemoryPaymentRecords(),
        EngineSettings(queue_timeout_ns=TIMEOUT_NS, **settings),
    )
    engine.clock = clock  # type: ignore[method-assign]
    return engine


@pytest.fixture
def sqlite_engine(tmp_path, view):
    made = []

    def make(**settings) -> PaymentEngine:
        path = tmp_path / f"fx{len(made)}.db"
        store = SqliteStore(path)  # The ledger's store first: it creates the database.
        engine = make_engine(view, store, SqlitePaymentRecords(path, durable=False), **settings)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.ledger.close()
        engine.records.close()


def posted(engine, account_id: int) -> int:
    return Balances.of(engine.ledger.lookup_account(account_id)).posted_minor


def leave(engine, bic: str, kept: dict[str, int]) -> None:
    """Drain ``bic``'s settlement accounts and nostros into the clearing accounts, leaving
    ``kept[currency]`` on its settlement account in that currency (a test's way to make a bank
    short)."""
    for key, account in engine.view.accounts.items():
        if key.owner != bic or key.kind not in (AccountKeyKind.SETTLEMENT, AccountKeyKind.VOSTRO):
            continue
        target = kept.get(key.currency, 0) if key.kind is AccountKeyKind.SETTLEMENT else 0
        change = posted(engine, account.id) - target
        if change > 0:
            move = Transfer(next(_move_ids), account.id, engine.clearing[key.currency], change)
            assert engine.ledger.create_transfers([move]) == ["ok"]


def opposite_pair(engine, kzt_kept: int, cny_kept: int) -> list[Payment]:
    """Halyk (KZT) pays Bank of China KZT 1 m in CNY, and Bank of China pays Halyk CNY 14,000 in
    KZT, with Halyk left ``kzt_kept`` and Bank of China ``cny_kept`` (minor units): each payment
    alone is short; together Halyk is paid about KZT 988,700 and Bank of China about CNY 14,075."""
    leave(engine, KZ_A, {"KZT": kzt_kept})
    leave(engine, CN_A, {"CNY": cny_kept})
    return [
        Payment("KZ:1", KZ_A, CN_A, 1_000_000_00, "KZT", "CNY"),
        Payment("CN:1", CN_A, KZ_A, 14_000_00, "CNY", "KZT"),
    ]


def snapshot(engine) -> dict[int, tuple[int, int, int, int]]:
    return {state.id: state.balance_tuple() for state in engine.ledger.accounts()}


def check_ledger(engine) -> None:
    engine.ledger.state.check_totals()
    report = verify(engine.ledger.store)
    assert report.ok, report.violation
    audit = engine.audit()
    assert audit.ok, audit.findings[:5]


def test_two_opposite_cross_currency_payments_settle_together(sqlite_engine):
    """Before cross-currency offsetting, both payments waited and expired TM01 (shown with the
    pass switched off); now the LSM cycle settles them together in one chain."""
    before = sqlite_engine(lsm_fx_offsetting=False)
    payments = opposite_pair(before, 100_000_00, 1_000_00)
    assert [o.status for o in before.submit_many(payments)] == [PaymentStatus.QUEUED] * 2
    before.run_cycle()
    before.clock.now += TIMEOUT_NS
    expired = before.run_cycle()
    assert [(o.status, o.reason) for o in expired.outcomes] == [
        (PaymentStatus.REJECTED, Reason.TM01)
    ] * 2

    engine = sqlite_engine()
    payments = opposite_pair(engine, 100_000_00, 1_000_00)
    kzt = engine.view.account_id(AccountKey.settlement(KZ_A, "KZT"))
    cny = engine.view.account_id(AccountKey.settlement(CN_A, "CNY"))
    clearing = dict(engine.clearing)
    clearing_before = {code: posted(engine, i) for code, i in clearing.items()}
    assert [o.status for o in engine.submit_many(payments)] == [PaymentStatus.QUEUED] * 2
    report = engine.run_cycle()
    assert report.settled == 2 and engine.stats.settled_by_fx_offsetting == 2
    first, second = (engine.outcome(p.payment_id) for p in payments)
    assert first.status is second.status is PaymentStatus.SETTLED
    assert first.settled_at == second.settled_at  # one chain
    assert 1_400_000 < first.amount_delivered_minor < 1_410_000  # CNY, at the quotes
    assert 98_000_000 < second.amount_delivered_minor < 99_500_000  # KZT
    assert posted(engine, kzt) == 100_000_00 - 1_000_000_00 + second.amount_delivered_minor
    assert posted(engine, cny) == 1_000_00 - 14_000_00 + first.amount_delivered_minor
    assert {code: posted(engine, i) for code, i in clearing.items()} == clearing_before
    # Each payment's legs are its own, in the engine's range, through the clearing accounts,
    # and the FX provider's income keeps its code.
    legs = engine.ledger.store.get_transfers(first.transfer_ids)
    assert set(legs) == set(first.transfer_ids) and first.transfer_ids[:2] == lsm_ids("KZ:1")
    assert {t.code for t in legs.values()} == {CODE_LSM, CODE_FX}
    assert all(clearing[t.currency] in (t.debit_account, t.credit_account) for t in legs.values())
    events = engine.records.events("KZ:1")
    assert events[-1].detail == f"{SETTLED_TEXT} with 2 payments"
    check_ledger(engine)


def test_a_set_that_does_not_fit_stays_queued_and_nothing_moves(view):
    """With nothing left at Halyk, what Bank of China pays it does not cover its KZT 1 m: the
    set does not fit, both wait, and the ledger is exactly as before the cycle."""
    engine = make_engine(view)
    payments = opposite_pair(engine, 0, 1_000_00)
    assert [o.status for o in engine.submit_many(payments)] == [PaymentStatus.QUEUED] * 2
    before, written = snapshot(engine), {t.id for t in engine.ledger.store.iter_transfers()}
    report = engine.run_cycle()
    assert report.settled == 0 and engine.stats.settled_by_fx_offsetting == 0
    assert snapshot(engine) == before
    # The cycle only lifted and set again the liquidity reservations of the queued payments.
    new = [t for t in engine.ledger.store.iter_transfers() if t.id not in written]
    reservation = TransferFlags.PENDING | TransferFlags.VOID_PENDING
    assert all(t.flags & reservation for t in new), new
    assert all(engine.outcome(p.payment_id).status is PaymentStatus.QUEUED for p in payments)
    assert not engine.ledger.store.get_transfers([lsm_ids(p.payment_id)[0] for p in payments])


def test_fifo_holds_back_a_payers_later_payment_unless_bypassed(view):
    """Halyk's earlier KZT payment to a Kazakh bank cannot settle, so its later cross-currency
    payment may not either (FIFO), and Bank of China's alone does not fit; with ``fifo_bypass``
    the opposite pair settles and the earlier payment keeps waiting."""
    for bypass in (False, True):
        engine = make_engine(view, fifo_bypass=bypass)
        payments = opposite_pair(engine, 100_000_00, 1_000_00)
        earlier = Payment("KZ:0", KZ_A, KZ_B, 5_000_000_00, "KZT", "KZT")
        outcomes = engine.submit_many([earlier, *payments])
        assert [o.status for o in outcomes] == [PaymentStatus.QUEUED] * 3
        engine.run_cycle()
        statuses = [engine.outcome(p.payment_id).status for p in (earlier, *payments)]
        settled = PaymentStatus.SETTLED if bypass else PaymentStatus.QUEUED
        assert statuses == [PaymentStatus.QUEUED, settled, settled]
        check_ledger(engine)


def test_a_crash_right_after_the_chain_commits_recovers_both_payments_as_settled(sqlite_engine):
    engine = sqlite_engine()
    payments = opposite_pair(engine, 100_000_00, 1_000_00)
    engine.submit_many(payments)
    moved_before = snapshot(engine)
    real_record = engine.records.record
    engine.records.record = lambda *args, **kwargs: None  # The crash: nothing recorded.
    engine.run_cycle()
    engine.records.record = real_record
    assert snapshot(engine) != moved_before
    assert all(engine.records.get(p.payment_id)[1].status is PaymentStatus.QUEUED for p in payments)
    restarted = PaymentEngine(engine.ledger, engine.view, engine.records, engine.settings)
    assert restarted.recovered.settled == 2 and not restarted.recovered.foreign
    assert not restarted.queue
    for payment in payments:
        outcome = restarted.outcome(payment.payment_id)
        assert outcome.status is PaymentStatus.SETTLED
        legs = restarted.ledger.store.get_transfers(outcome.transfer_ids)
        assert outcome.amount_delivered_minor == legs[outcome.transfer_ids[-1]].amount
        assert outcome.transfer_ids[:2] == lsm_ids(payment.payment_id)
        assert len(outcome.transfer_ids) > 2  # every leg of its route, not one pair
    check_ledger(restarted)
    after = snapshot(restarted)
    restarted.run_cycle()  # The next cycle does not settle them again.
    assert snapshot(restarted) == after


def _candidate(payer: str, number: int) -> SimpleNamespace:
    payment = Payment(f"{payer}:{number}", payer, "PBOCCNBJ", 100, "CNY", "CNY")
    return SimpleNamespace(payment=payment, queued=QueuedPayment(payment, number, 0))


def test_choose_keeps_each_payers_settled_payments_a_prefix_unless_bypassed():
    """The netting defers A's first payment: with FIFO A's later one is taken out and the rest
    netted again; without, the netting's answer stands."""
    a1, b1, a2, c1 = (_candidate(*spec) for spec in (("A", 1), ("B", 2), ("A", 3), ("C", 4)))
    rounds = []

    def netting(candidates):
        rounds.append([c.payment.payment_id for c in candidates])
        return [c is not a1 for c in candidates]

    assert choose([a1, b1, a2, c1], netting, fifo=True) == [b1, c1]
    assert rounds == [["A:1", "B:2", "A:3", "C:4"], ["B:2", "C:4"]]
    assert choose([a1, b1, a2, c1], netting, fifo=False) == [b1, a2, c1]
    assert choose([], netting, fifo=True) == []


# -- value is conserved per currency over random queued sets ---------------------------------

BANKS = sorted(HOME)
# Rough CNY prices (the quotes differ): amounts drawn in CNY, paid in the payer's currency.
PER_CNY = {"CNY": 1, "KZT": 70, "RUB": 12}


def _payment(payer: str, payee: str, number: int, cny: int, urgent: bool) -> Payment:
    priority = Priority.URGENT if urgent else Priority.NORMAL
    amount = cny * PER_CNY[HOME[payer]] * 100
    return Payment(
        f"{payer}:{number}", payer, payee, amount, HOME[payer], HOME[payee], priority=priority
    )


@st.composite
def queued_sets(draw):
    """Banks left short (up to CNY 60,000 each), and payments between countries, most of them
    with a payment back of about the same value (what offsetting is for)."""
    kept = {bic: draw(st.integers(0, 60_000)) * PER_CNY[HOME[bic]] * 100 for bic in BANKS}
    payments: list[Payment] = []
    for _ in range(draw(st.integers(1, 4))):
        payer = draw(st.sampled_from(BANKS))
        payee = draw(st.sampled_from([b for b in BANKS if HOME[b] != HOME[payer]]))
        cny = draw(st.integers(10_000, 500_000))
        payments.append(_payment(payer, payee, len(payments), cny, draw(st.booleans())))
        if draw(st.integers(0, 3)):  # Three times in four, a payment back.
            back = cny * draw(st.integers(80, 120)) // 100
            payments.append(_payment(payee, payer, len(payments), back, draw(st.booleans())))
    order = draw(st.permutations(range(len(payments))))
    return kept, [payments[i] for i in order], draw(st.booleans())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=queued_sets())
def test_offsetting_conserves_value_and_settles_each_payment_whole(view, case):
    kept, payments, bypass = case
    engine = make_engine(view, fifo_bypass=bypass)
    for bic, amount in kept.items():
        leave(engine, bic, {HOME[bic]: amount})
    before = {state.id: state.balance_tuple() for state in engine.ledger.accounts()}
    engine.submit_many(payments)
    engine.run_cycle()
    outcomes = [engine.outcome(p.payment_id) for p in payments]
    event(f"settled by cross-currency offsetting: {engine.stats.settled_by_fx_offsetting > 0}")
    assert all(o.status in (PaymentStatus.SETTLED, PaymentStatus.QUEUED) for o in outcomes)
    # Every posted change since ``before`` is a leg of a settled payment: replaying those legs
    # gives every account's balance, and the clearing accounts are back where they started.
    moved: Counter[int] = Counter()
    lookup = engine.ledger.store.get_transfers
    for payment, outcome in zip(payments, outcomes, strict=True):
        first = lsm_ids(payment.payment_id)[0]
        if outcome.status is PaymentStatus.QUEUED:
            assert not lookup([first]), "a queued payment has a leg in the ledger"
            continue
        legs = lookup(outcome.transfer_ids)
        assert len(legs) == len(outcome.transfer_ids), "a settled payment is missing a leg"
        for leg in legs.values():
            moved[leg.debit_account] -= leg.amount
            moved[leg.credit_account] += leg.amount
    for state in engine.ledger.accounts():
        start = before[state.id]
        assert Balances.of(state).posted_minor == start[3] - start[1] + moved[state.id]
        assert Balances.of(state).headroom_minor >= 0 or not (
            Balances.of(state).debits_must_not_exceed_credits
        )
    assert all(moved[account] == 0 for account in engine.clearing.values())
    check_ledger(engine)
