"""Deferred net settlement: routing on balances, re-routing around a short account, the one
deferral rule of ``payments.netting``, caps and conservation in every cycle."""

from __future__ import annotations

import itertools
import random

import pytest

from sco_settle.domain.transfer import Transfer
from sco_settle.ledger.invariants import verify
from sco_settle.payments import netting
from sco_settle.payments.engine import EngineSettings, Mode
from sco_settle.payments.model import Payment, PaymentStatus, Priority

from .conftest import balance

KZ_A, KZ_B, KZ_C = "HSBKKZKX", "KCJBKZKX", "BKCHKZKA"
KICB, AIYL, BOXJ, ICBC = "KICBKG22", "AIYLKG22", "BOXJCNU0", "ICBKCNBJ"
KICB_NOSTRO = f"vostro:{BOXJ}:{KICB}:CNY"  # KICB's CNY account at Bank of Xinjiang
AIYL_NOSTRO = f"vostro:{BOXJ}:{AIYL}:CNY"
# Client transfer ids for the tests' own moves (drains and top-ups), below the engine's range.
_move_ids = itertools.count(10_000)


@pytest.fixture(autouse=True)
def forget_graphs(view):
    """The session's ``NetworkView`` is shared by every engine, and a compiled graph may serve a
    few routes after its ledger moved on: leave none of these drained balances to the next test."""
    yield
    view.invalidate()


def pay(payment_id, debtor_agent, creditor_agent, amount, currency="KZT", to=None, **extra):
    return Payment(
        payment_id, debtor_agent, creditor_agent, amount, currency, to or currency, **extra
    )


def dns_engine(make_engine, **settings):
    return make_engine(EngineSettings(mode=Mode.DNS, **settings))


def set_balance(engine, key, target_minor):
    """Move money between ``key`` and its currency's clearing account until ``key`` holds
    ``target_minor`` (a test's way to drain or fund an account)."""
    account = engine.view.accounts_by_key[key]
    clearing = engine.clearing[account.currency]
    change = target_minor - balance(engine, key)
    if change == 0:
        return
    debit, credit = (clearing, account.id) if change > 0 else (account.id, clearing)
    move = Transfer(next(_move_ids), debit, credit, abs(change))
    assert engine.ledger.create_transfers([move]) == ["ok"]
    assert balance(engine, key) == target_minor


def clearing_balances(engine):
    """Each clearing account's balance (credits less debits), by currency."""
    found = {code: engine.ledger.lookup_account(i) for code, i in engine.clearing.items()}
    return {code: state.credits_posted - state.debits_posted for code, state in found.items()}


def check_cycle(engine, clearing_before):
    """Per currency, debits equal credits and the journal replays to the balances; the net chain
    passed through every clearing account and left it as it was."""
    engine.ledger.state.check_totals()
    report = verify(engine.ledger.store)
    assert report.ok, report.violation
    assert clearing_balances(engine) == clearing_before


def test_held_payment_settles_in_the_first_cycle_over_a_route_that_has_the_balance(make_engine):
    # The review's D11: KICB's CNY nostro holds CNY 1,000.00, too little; Aiyl's can carry it.
    engine = dns_engine(make_engine)
    set_balance(engine, KICB_NOSTRO, 1_000_00)
    held = engine.submit(pay("d11", KICB, ICBC, 1_000_000_00, "KGS", "CNY"))
    assert held.status is PaymentStatus.QUEUED
    clearing = clearing_balances(engine)
    report = engine.run_cycle()
    assert (report.settled, report.deferred) == (1, 0)
    outcome = engine.outcome("d11")
    assert outcome.status is PaymentStatus.SETTLED
    assert f"{AIYL}/CNY" in outcome.route and f"{KICB}/CNY" not in outcome.route
    assert balance(engine, KICB_NOSTRO) == 1_000_00
    check_cycle(engine, clearing)


def test_a_payment_deferred_at_a_short_correspondent_takes_its_alternative_in_the_same_cycle(
    make_engine,
):
    # Each payment alone fits KICB's nostro (CNY 120,000.00; each delivers about 82,000.00), so
    # both are routed through it; together they do not, and the later one is deferred there.
    engine = dns_engine(make_engine)
    set_balance(engine, KICB_NOSTRO, 120_000_00)
    aiyl_before = balance(engine, AIYL_NOSTRO)
    engine.submit_many(
        [
            pay("alt1", KICB, ICBC, 1_000_000_00, "KGS", "CNY"),
            pay("alt2", KICB, ICBC, 1_000_000_00, "KGS", "CNY"),
        ]
    )
    clearing = clearing_balances(engine)
    report = engine.run_cycle()
    assert (report.settled, report.deferred) == (2, 0)
    first, second = engine.outcome("alt1"), engine.outcome("alt2")
    assert first.status is second.status is PaymentStatus.SETTLED
    assert f"{KICB}/CNY" in first.route  # The earlier payment keeps the cheapest route.
    assert f"{AIYL}/CNY" in second.route  # The later one goes around the short nostro.
    assert balance(engine, KICB_NOSTRO) == 120_000_00 - first.amount_delivered_minor
    assert balance(engine, AIYL_NOSTRO) == aiyl_before - second.amount_delivered_minor
    check_cycle(engine, clearing)


def test_a_deferred_payment_is_routed_afresh_in_the_next_cycle(make_engine):
    engine = dns_engine(make_engine)
    set_balance(engine, KICB_NOSTRO, 1_000_00)
    set_balance(engine, AIYL_NOSTRO, 1_000_00)
    engine.submit(pay("again", KICB, ICBC, 1_000_000_00, "KGS", "CNY"))
    clearing = clearing_balances(engine)
    first = engine.run_cycle()
    assert (first.settled, first.deferred) == (0, 1)  # No route has the CNY: it waits.
    assert engine.outcome("again").status is PaymentStatus.QUEUED
    check_cycle(engine, clearing)
    set_balance(engine, AIYL_NOSTRO, 500_000_00)  # Aiyl is funded between the cycles.
    clearing = clearing_balances(engine)
    second = engine.run_cycle()
    assert (second.settled, second.deferred) == (1, 0)
    outcome = engine.outcome("again")
    assert outcome.status is PaymentStatus.SETTLED and f"{AIYL}/CNY" in outcome.route
    check_cycle(engine, clearing)


def test_a_payment_only_passing_through_a_short_account_is_not_deferred_for_it(make_engine):
    # Bank of Xinjiang's own CNY payment overdraws its settlement account. KICB's payment only
    # passes through that account (credited, then debited by the same amount): deferring it would
    # not help, so the rule defers only payments that leave the account a net debit.
    engine = dns_engine(make_engine)
    set_balance(engine, f"settlement:{BOXJ}:CNY", 500_00)
    engine.submit_many(
        [pay("own", BOXJ, ICBC, 1_000_00, "CNY"), pay("through", KICB, ICBC, 1_000_00, "CNY")]
    )
    clearing = clearing_balances(engine)
    report = engine.run_cycle()
    assert (report.settled, report.deferred) == (1, 1)
    assert engine.outcome("through").status is PaymentStatus.SETTLED
    assert engine.outcome("own").status is PaymentStatus.QUEUED
    assert balance(engine, f"settlement:{BOXJ}:CNY") == 500_00
    check_cycle(engine, clearing)


def test_the_deferral_follows_the_netting_rule_lowest_priority_first_then_latest(make_engine):
    # KCJB may be a net debtor of at most 350.00: its payments go in netting's removal order.
    cap = 350_00
    engine = dns_engine(make_engine, net_debit_caps={(KZ_B, "KZT"): cap})
    payments = [
        pay("n1", KZ_B, KZ_A, 400_00),
        pay("u1", KZ_B, KZ_C, 300_00, priority=Priority.URGENT),
        pay("n2", KZ_B, KZ_C, 200_00),
        pay("in", KZ_A, KZ_B, 50_00),
    ]
    engine.submit_many(payments)
    before = balance(engine, f"settlement:{KZ_B}:KZT")
    report = engine.run_cycle()
    # The same instructions through the netting core: the queue's order of service (urgent
    # first, then arrival) is the batch order, and urgent is the higher priority.
    order = sorted(range(len(payments)), key=lambda i: (payments[i].priority != "urgent", i))
    rows = [
        netting.NettingInstruction(
            payments[i].debtor_agent,
            payments[i].creditor_agent,
            "KZT",
            payments[i].amount_minor,
            priority=int(payments[i].priority == "urgent"),
        )
        for i in order
    ]
    expected = netting.net_with_caps(
        netting.PaymentBatch.from_instructions(rows), {(KZ_B, "KZT"): cap}
    )
    deferred = {payments[order[i]].payment_id for i in expected.deferral_order.tolist()}
    assert deferred == {"n2", "n1"}
    assert report.deferred == len(deferred)
    for payment in payments:
        status = engine.outcome(payment.payment_id).status
        wanted = PaymentStatus.QUEUED if payment.payment_id in deferred else PaymentStatus.SETTLED
        assert status is wanted, payment.payment_id
    assert before - balance(engine, f"settlement:{KZ_B}:KZT") == 300_00 - 50_00 <= cap


def test_netting_makes_a_route_fit_that_balances_alone_do_not(make_engine):
    # HSBK holds nothing: its payment fits only with the incoming one of the same cycle, so it is
    # routed on structure (no route fits the balances) and settles by netting.
    engine = dns_engine(make_engine)
    set_balance(engine, f"settlement:{KZ_A}:KZT", 0)
    engine.submit_many([pay("out", KZ_A, KZ_C, 300_00), pay("in", KZ_B, KZ_A, 500_00)])
    clearing = clearing_balances(engine)
    report = engine.run_cycle()
    assert (report.settled, report.deferred) == (2, 0)
    assert balance(engine, f"settlement:{KZ_A}:KZT") == 200_00
    check_cycle(engine, clearing)


@pytest.mark.parametrize("seed", range(3))
def test_every_cycle_respects_caps_and_balances_and_conserves_value(make_engine, seed):
    rng = random.Random(seed)
    banks = [KZ_A, KZ_B, KZ_C]
    caps = {(bank, "KZT"): rng.randrange(0, 2_000) for bank in banks[:2]}
    engine = dns_engine(make_engine, net_debit_caps=caps)
    for bank in banks:
        set_balance(engine, f"settlement:{bank}:KZT", rng.randrange(0, 1_500))
    payments = []
    for n in range(40):
        debtor, creditor = rng.sample(banks, 2)
        urgent = rng.random() < 0.3
        priority = Priority.URGENT if urgent else Priority.NORMAL
        payments.append(
            pay(f"p{seed}-{n}", debtor, creditor, rng.randrange(1, 900), priority=priority)
        )
    for start in range(0, len(payments), 10):
        engine.submit_many(payments[start : start + 10])
        before = {bank: balance(engine, f"settlement:{bank}:KZT") for bank in banks}
        settled_before = {p.payment_id for p in payments if _settled(engine, p)}
        clearing = clearing_balances(engine)
        report = engine.run_cycle()
        newly = [p for p in payments if _settled(engine, p) and p.payment_id not in settled_before]
        assert report.settled == len(newly)
        expected = dict.fromkeys(banks, 0)
        for payment in newly:  # Each bank moves exactly the net of what settled in the cycle.
            expected[payment.debtor_agent] -= payment.amount_minor
            expected[payment.creditor_agent] += payment.amount_minor
        for bank in banks:
            after = balance(engine, f"settlement:{bank}:KZT")
            assert after - before[bank] == expected[bank]
            assert after >= 0
            assert -expected[bank] <= caps.get((bank, "KZT"), 10**18)
        check_cycle(engine, clearing)
    statuses = {engine.outcome(p.payment_id).status for p in payments}
    assert statuses <= {PaymentStatus.SETTLED, PaymentStatus.QUEUED}


def _settled(engine, payment):
    outcome = engine.outcome(payment.payment_id)  # None: not submitted yet
    return outcome is not None and outcome.status is PaymentStatus.SETTLED
