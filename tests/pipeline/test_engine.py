"""The payment pipeline on the SCO network: PvP, idempotency, queue, LSM, DNS, reason codes."""

from __future__ import annotations

import pytest

from sco_settle.domain.transfer import Transfer
from sco_settle.ledger.invariants import verify
from sco_settle.payments.engine import EngineSettings, Mode, NameScreen
from sco_settle.payments.model import Party, Payment, PaymentStatus, Priority, Reason
from sco_settle.payments.network_view import Scenario

from .conftest import balance

KZ_A, KZ_B, KZ_C = "HSBKKZKX", "KCJBKZKX", "BKCHKZKA"
CN_A = "BKCHCNBJ"


def pay(payment_id, debtor_agent, creditor_agent, amount, currency="KZT", to=None, **extra):
    return Payment(
        payment_id, debtor_agent, creditor_agent, amount, currency, to or currency, **extra
    )


def check_ledger(engine):
    """Debits equal credits in memory, and the store's journal replays to its balances."""
    engine.ledger.state.check_totals()
    report = verify(engine.ledger.store)
    assert report.ok, report.violation


def test_cross_currency_payment_settles_both_legs_through_an_fx_provider(make_engine):
    """Halyk pays Bank of China KZT 1 m in CNY. ICBC Almaty, the RMB clearing bank in
    Kazakhstan, quotes the best price for Kazakh banks: it receives the KZT on its settlement
    account, keeps its spread on its FX income account and pays the CNY from its CNY account at
    ICBC. Nobody's swap line moves."""
    engine = make_engine()
    kzt_before = balance(engine, f"settlement:{KZ_A}:KZT")
    cny_before = balance(engine, f"settlement:{CN_A}:CNY")
    drawn_before = balance(engine, "swap-line:NBRKKZKX:PBOCCNBJ:CNY")
    clearing = "ICBKKZKX"
    kzt_at_provider = balance(engine, f"settlement:{clearing}:KZT")
    outcome = engine.submit(pay("x1", KZ_A, CN_A, 1_000_000_00, "KZT", "CNY"))
    assert outcome.status is PaymentStatus.SETTLED
    assert outcome.route == (
        "HSBKKZKX/KZT",
        "NBRKKZKX/KZT",
        f"{clearing}/KZT",
        f"{clearing}/CNY",
        "ICBKCNBJ/CNY",
        "PBOCCNBJ/CNY",
        "BKCHCNBJ/CNY",
    )
    assert balance(engine, f"settlement:{KZ_A}:KZT") == kzt_before - 1_000_000_00
    assert balance(engine, f"settlement:{CN_A}:CNY") == cny_before + outcome.amount_delivered_minor
    # About KZT 70.8 per CNY: 1,000,000 KZT buys roughly 14,100 CNY (rounded down for the customer).
    assert 1_400_000 < outcome.amount_delivered_minor < 1_420_000
    kept = balance(engine, f"fx-income:{clearing}:KZT")
    assert 0 < kept < 1_000_000_00 * 40 // 10_000  # its 30 bp half-spread and the rounding
    assert balance(engine, f"settlement:{clearing}:KZT") == kzt_at_provider + 1_000_000_00 - kept
    assert balance(engine, "swap-line:NBRKKZKX:PBOCCNBJ:CNY") == drawn_before
    check_ledger(engine)


def test_a_central_bank_facility_funded_by_a_tranche_carries_what_the_market_cannot(make_engine):
    """The Bank of Russia draws a CNY tranche on its swap line with the PBOC; when the market
    (ICBC Moscow, the RMB clearing bank) has no CNY left, a Russian bank's payment to China is
    converted by the Bank of Russia's facility: the CNY comes out of the tranche, the RUB the
    facility receives is retired, and the payment draws nothing on the line itself."""
    import datetime as dt
    from decimal import Decimal

    from sco_settle.payments.swap_lines import SwapLineDesk

    engine = make_engine()
    desk = SwapLineDesk(engine.ledger, engine.view)
    tranche = desk.draw(
        "CBRFRUMM",
        "PBOCCNBJ",
        500_000_000_00,
        dt.date(2027, 1, 15),
        3,
        Decimal("0.025"),
        engine.view.rates,
    )
    drawn = -balance(engine, "swap-line:CBRFRUMM:PBOCCNBJ:CNY")
    assert drawn == tranche.principal_minor
    assert balance(engine, "settlement:CBRFRUMM:CNY") == tranche.principal_minor
    key = "vostro:ICBKCNBJ:ICBKRUMM:CNY"
    drain = Transfer(78, engine.view.account_id(key), engine.clearing["CNY"], balance(engine, key))
    assert engine.ledger.create_transfers([drain]) == ["ok"]
    engine.view.invalidate()
    outcome = engine.submit(pay("f1", "SABRRUMM", CN_A, 10_000_000_00, "RUB", "CNY"))
    assert outcome.status is PaymentStatus.SETTLED, outcome
    assert outcome.route[1:3] == ("CBRFRUMM/RUB", "CBRFRUMM/CNY")
    assert balance(engine, "settlement:CBRFRUMM:CNY") == (
        tranche.principal_minor - outcome.amount_delivered_minor
    )
    assert -balance(engine, "swap-line:CBRFRUMM:PBOCCNBJ:CNY") == drawn
    assert balance(engine, "fx-income:CBRFRUMM:RUB") > 0
    check_ledger(engine)


def test_kyrgyz_bank_pays_china_through_bank_of_xinjiang(make_engine):
    engine = make_engine()
    outcome = engine.submit(pay("k1", "KICBKG22", "ICBKCNBJ", 50_000_00, "KGS", "CNY"))
    assert outcome.status is PaymentStatus.SETTLED
    assert "BOXJCNU0/CNY" in outcome.route
    check_ledger(engine)


def test_pvp_chain_is_never_half_settled(make_engine):
    engine = make_engine()
    # Empty ICBC Almaty's CNY account behind the router's back: the route through the clearing
    # bank still looks feasible to a stale graph, but the ledger refuses the CNY leg, so the KZT
    # legs must not stay.
    graph = engine.view.graph(engine.ledger)
    key = "vostro:ICBKCNBJ:ICBKKZKX:CNY"
    nostro = engine.view.account_id(key)
    sink = engine.clearing["CNY"]
    assert engine.ledger.create_transfers([Transfer(77, nostro, sink, balance(engine, key))]) == [
        "ok"
    ]
    assert engine.view.graph(engine.ledger) is graph  # Reused while the ledger moves on.
    kzt_before = balance(engine, f"settlement:{KZ_A}:KZT")
    provider_before = balance(engine, "settlement:ICBKKZKX:KZT")
    outcome = engine.submit(pay("x2", KZ_A, CN_A, 1_000_000_00, "KZT", "CNY"))
    details = [detail for _, _, detail in engine.records.events("x2")]
    assert any("route refused by the ledger: exceeds_credits" in d for d in details), details
    # The refused chain left nothing: the clearing bank received no KZT and the debtor paid at
    # most once, through another route (or not at all, queued).
    assert balance(engine, "settlement:ICBKKZKX:KZT") == provider_before
    assert balance(engine, key) == 0
    if outcome.status is PaymentStatus.SETTLED:
        assert "ICBKKZKX/CNY" not in outcome.route
        assert balance(engine, f"settlement:{KZ_A}:KZT") >= kzt_before - 1_000_000_00
    else:
        assert outcome.status is PaymentStatus.QUEUED and outcome.reason is Reason.AM04
        assert balance(engine, f"settlement:{KZ_A}:KZT") == kzt_before
    check_ledger(engine)


def test_resubmission_returns_the_first_outcome_and_moves_nothing(make_engine):
    engine = make_engine()
    payment = pay("dup", KZ_A, KZ_B, 5_000_00)
    first = engine.submit(payment)
    before = balance(engine, f"settlement:{KZ_A}:KZT")
    again = engine.submit(payment)
    changed = engine.submit(pay("dup", KZ_A, KZ_B, 1))  # Same id, other content: DUPL.
    assert first.status is PaymentStatus.SETTLED and not first.duplicate
    assert (
        again.duplicate
        and again.status is first.status
        and again.transfer_ids == first.transfer_ids
    )
    assert changed.status is PaymentStatus.REJECTED and changed.reason is Reason.DUPL
    assert changed.transfer_ids == () and engine.outcome("dup") == first
    assert balance(engine, f"settlement:{KZ_A}:KZT") == before


def test_rejections_carry_iso_reason_codes(make_engine):
    engine = make_engine(screen=NameScreen(["Sanctioned Trading LLC"]))
    cases = [
        (pay("r1", KZ_A, KZ_B, 0), Reason.AM01),
        (pay("r2", KZ_A, KZ_B, 2**64), Reason.AM02),
        (pay("r3", KZ_A, KZ_B, 5, "USD"), Reason.AM03),
        (pay("r4", KZ_A, KZ_B, 5, "XYZ"), Reason.AM11),
        (pay("r5", "NOTABIC", KZ_B, 5), Reason.RC03),
        (pay("r6", KZ_A, "XXXXKZKX", 5), Reason.CNOR),
        (pay("r7", "ABCDKZKX", KZ_B, 5), Reason.DNOR),
        (pay("r8", KZ_A, KZ_A, 5), Reason.AG03),
        (pay("r9", KZ_A, KZ_B, 5, creditor=Party("sanctioned  trading llc")), Reason.RR04),
        (pay("r10", KZ_A, "SABRRUMM", 5, "KZT", "KZT"), Reason.AM03),
    ]
    outcomes = engine.submit_many([payment for payment, _ in cases])
    for (payment, expected), outcome in zip(cases, outcomes, strict=True):
        assert outcome.status is PaymentStatus.REJECTED, payment
        assert outcome.reason is expected, (payment.payment_id, outcome)
        assert outcome.reason_text
    events = engine.records.events("r9")
    assert [e[0] for e in events] == ["received", "validated", "rejected"]


def test_suspended_bank_and_cut_corridor_are_refused(make_engine):
    engine = make_engine(scenario=Scenario(suspended=frozenset({"PBOCCNBJ"})))
    # Xinjiang Huihe Bank has no correspondent: every way to it crosses the suspended PBOC.
    assert engine.submit(pay("s1", KZ_A, "XIHCCNB2", 5_000_00, "KZT", "CNY")).reason is Reason.AG01
    engine = make_engine(scenario=Scenario(corridor_cuts=frozenset({("CN", "KZ")})))
    outcome = engine.submit(pay("s2", KZ_A, CN_A, 5_000_00, "KZT", "CNY"))
    assert outcome.status is PaymentStatus.REJECTED and outcome.reason is Reason.AG01
    engine = make_engine(scenario=Scenario(exhausted_swap_lines=frozenset({("CN", "KZ")})))
    outcome = engine.submit(pay("s3", KZ_A, CN_A, 5_000_00, "KZT", "CNY"))
    # An exhausted line leaves the central banks' facilities dry; the market still converts.
    assert outcome.status is PaymentStatus.SETTLED
    assert not {"NBRKKZKX/CNY", "PBOCCNBJ/KZT"} & set(outcome.route)


def test_gridlock_is_resolved_simultaneously(make_engine):
    engine = make_engine()
    # Empty three banks' KZT accounts, then queue a cycle A->B->C->A that no single payment can
    # start: only simultaneous settlement (the LSM) can clear it.
    banks = [KZ_A, KZ_B, KZ_C]
    drain = []
    for i, bank in enumerate(banks):
        account = engine.view.account_id(f"settlement:{bank}:KZT")
        drain.append(
            Transfer(
                900 + i, account, engine.clearing["KZT"], balance(engine, f"settlement:{bank}:KZT")
            )
        )
    assert engine.ledger.create_transfers(drain) == ["ok"] * 3
    cycle = [
        pay("g1", KZ_A, KZ_B, 300),
        pay("g2", KZ_B, KZ_C, 300),
        pay("g3", KZ_C, KZ_A, 300, priority=Priority.URGENT),
    ]
    outcomes = engine.submit_many(cycle)
    assert [o.status for o in outcomes] == [PaymentStatus.QUEUED] * 3
    engine.run_cycle()
    assert [engine.outcome(p.payment_id).status for p in cycle] == [PaymentStatus.SETTLED] * 3
    assert engine.stats.settled_by_offsetting + engine.stats.settled_by_gridlock == 3
    assert all(balance(engine, f"settlement:{bank}:KZT") == 0 for bank in banks)
    check_ledger(engine)


def test_queue_is_fifo_per_payer_urgent_first_and_times_out(make_engine):
    engine = make_engine(EngineSettings(queue_timeout_ns=60 * 10**9))
    account = engine.view.account_id(f"settlement:{KZ_A}:KZT")
    funds = balance(engine, f"settlement:{KZ_A}:KZT")
    assert engine.ledger.create_transfers(
        [Transfer(901, account, engine.clearing["KZT"], funds)]
    ) == ["ok"]
    normal = pay("q1", KZ_A, KZ_B, 100)
    urgent = pay("q2", KZ_A, KZ_B, 100, priority=Priority.URGENT)
    engine.submit_many([normal, urgent])
    # 150 arrives: only one of the two can settle, and it must be the urgent one.
    payer_in = engine.view.account_id(f"settlement:{KZ_B}:KZT")
    assert engine.ledger.create_transfers([Transfer(902, payer_in, account, 150)]) == ["ok"]
    engine.run_cycle()
    assert engine.outcome("q2").status is PaymentStatus.SETTLED
    assert engine.outcome("q1").status is PaymentStatus.QUEUED
    engine.clock.advance(61)
    engine.run_cycle()
    late = engine.outcome("q1")
    assert late.status is PaymentStatus.REJECTED and late.reason is Reason.TM01
    assert balance(engine, f"settlement:{KZ_A}:KZT") == 50
    check_ledger(engine)


def test_dns_nets_defers_over_cap_and_conserves_value(make_engine):
    cap = 10**9
    engine = make_engine(EngineSettings(mode=Mode.DNS, net_debit_caps={(KZ_B, "KZT"): cap}))
    big = 140_000_000_000_00
    payments = [
        pay("d1", KZ_A, KZ_B, big),
        pay("d2", KZ_B, KZ_A, big),
        pay("d3", KZ_B, KZ_C, cap + 1),
        pay("d4", KZ_A, CN_A, 5_000_000_00, "KZT", "CNY"),
    ]
    before = {bank: balance(engine, f"settlement:{bank}:KZT") for bank in (KZ_A, KZ_B, KZ_C)}
    assert {o.status for o in engine.submit_many(payments)} == {PaymentStatus.QUEUED}
    report = engine.run_cycle()
    assert report.settled == 3 and report.deferred == 1
    assert engine.outcome("d3").status is PaymentStatus.QUEUED  # Deferred, not lost.
    assert report.net_minor["KZT"] < report.gross_minor["KZT"] // 1000
    assert balance(engine, f"settlement:{KZ_B}:KZT") == before[KZ_B]
    assert balance(engine, f"settlement:{KZ_A}:KZT") == before[KZ_A] - 5_000_000_00
    check_ledger(engine)


@pytest.mark.parametrize("seed", range(3))
def test_queue_never_settles_beyond_liquidity(make_engine, seed):
    import random

    rng = random.Random(seed)
    engine = make_engine()
    banks = [KZ_A, KZ_B, KZ_C]
    for i, bank in enumerate(banks):
        account = engine.view.account_id(f"settlement:{bank}:KZT")
        keep = rng.randrange(0, 1_000)
        amount = balance(engine, f"settlement:{bank}:KZT") - keep
        assert engine.ledger.create_transfers(
            [Transfer(950 + i, account, engine.clearing["KZT"], amount)]
        ) == ["ok"]
    payments = []
    for n in range(60):
        debtor, creditor = rng.sample(banks, 2)
        payments.append(pay(f"r{seed}-{n}", debtor, creditor, rng.randrange(1, 400)))
    for start in range(0, 60, 7):
        engine.submit_many(payments[start : start + 7])
        engine.run_cycle()
        for bank in banks:
            assert balance(engine, f"settlement:{bank}:KZT") >= 0
    settled = [p for p in payments if engine.outcome(p.payment_id).status is PaymentStatus.SETTLED]
    assert settled, "some payments must settle"
    check_ledger(engine)


def test_a_return_is_a_new_payment_back_partial_or_full_and_only_by_the_creditor_agent(
    make_engine,
):
    """A pacs.004 return is a payment from the creditor agent back to the debtor agent, for the
    returned amount at today's rate; returns never exceed what was received (review D3)."""
    engine = make_engine()
    paid = engine.submit(pay("ret1", KZ_A, CN_A, 2_000_000_00, "KZT", "CNY"))
    assert paid.status is PaymentStatus.SETTLED
    received = paid.amount_delivered_minor
    for intruder in (KZ_B, KZ_A):  # A third party, and the debtor itself.
        wrong = engine.return_payment("ret1", returned_by=intruder, reason="AC04")
        # For anyone but the creditor agent the payment does not exist: no existence oracle.
        assert not wrong.accepted and wrong.payment is None
        assert wrong.reason is Reason.NARR and "not found" in wrong.reason_text
    kzt, cny = balance(engine, f"settlement:{KZ_A}:KZT"), balance(engine, f"settlement:{CN_A}:CNY")
    part = engine.return_payment(
        "ret1", returned_by=CN_A, reason="AC04", amount=(100_00, "CNY"), return_id="R1"
    )
    assert part.accepted and part.payment.status is PaymentStatus.SETTLED
    assert part.payment.amount_sent_minor == 100_00  # CNY 100.00 back, not the whole payment
    assert balance(engine, f"settlement:{CN_A}:CNY") == cny - 100_00
    back = balance(engine, f"settlement:{KZ_A}:KZT") - kzt
    assert back == part.payment.amount_delivered_minor and 6_500_00 < back < 7_500_00
    original = engine.outcome("ret1")
    assert original.status is PaymentStatus.SETTLED and original.amount_returned_minor == 100_00
    again = engine.return_payment(
        "ret1", returned_by=CN_A, reason="AC04", amount=(100_00, "CNY"), return_id="R1"
    )
    assert again.accepted and again.payment.duplicate  # the same return, answered once
    assert balance(engine, f"settlement:{CN_A}:CNY") == cny - 100_00
    too_much = engine.return_payment(
        "ret1", returned_by=CN_A, reason="AC04", amount=(received, "CNY"), return_id="R2"
    )
    assert not too_much.accepted and too_much.reason is Reason.AM09
    rest = engine.return_payment("ret1", returned_by=CN_A, reason="AC04", return_id="R3")
    assert rest.accepted and rest.payment.amount_sent_minor == received - 100_00
    original = engine.outcome("ret1")
    assert original.status is PaymentStatus.RETURNED
    assert original.amount_returned_minor == received
    done = engine.return_payment("ret1", returned_by=CN_A, reason="AC04", return_id="R4")
    assert not done.accepted and done.reason is Reason.AM09
    assert "fully returned" in done.reason_text
    short = balance(engine, f"settlement:{KZ_A}:KZT") + 1
    queued = engine.submit(pay("ret2", KZ_A, KZ_B, short))
    assert queued.status is PaymentStatus.QUEUED
    assert not engine.return_payment("ret2", returned_by=KZ_B, reason="AC04").accepted
    assert [e[0] for e in engine.records.events("ret1")][-1] == "returned"
    assert engine.audit().ok, engine.audit().findings
    check_ledger(engine)


def test_a_return_waits_for_liquidity_and_counts_once_it_settles(make_engine):
    engine = make_engine()
    assert engine.submit(pay("w1", KZ_A, KZ_B, 3_000_00)).status is PaymentStatus.SETTLED
    # The creditor agent spends everything first: its return must wait in the queue.
    spent = engine.submit(pay("w2", KZ_B, KZ_A, balance(engine, f"settlement:{KZ_B}:KZT")))
    assert spent.status is PaymentStatus.SETTLED
    waiting = engine.return_payment("w1", returned_by=KZ_B, reason="AC04", return_id="R")
    assert waiting.accepted and waiting.payment.status is PaymentStatus.QUEUED
    assert engine.outcome("w1").amount_returned_minor == 0
    # A second return may not take what the queued one will pay back.
    assert not engine.return_payment("w1", returned_by=KZ_B, reason="AC04").accepted
    engine.submit(pay("w3", KZ_A, KZ_B, 5_000_00))  # liquidity arrives
    engine.run_cycle()
    assert engine.outcome("w1").status is PaymentStatus.RETURNED
    assert engine.audit().ok


def test_a_net_settled_payment_can_be_returned(make_engine):
    engine = make_engine(EngineSettings(mode=Mode.DNS))
    engine.submit(pay("n1", KZ_A, KZ_B, 2_000_00))
    engine.run_cycle()
    assert engine.outcome("n1").status is PaymentStatus.SETTLED
    answer = engine.return_payment("n1", returned_by=KZ_B, reason="AC04")
    assert answer.accepted and answer.payment.status is PaymentStatus.QUEUED  # held for a cycle
    engine.run_cycle()
    assert engine.outcome("n1").status is PaymentStatus.RETURNED
    assert engine.audit().ok


def test_dns_cycle_whose_positions_all_net_to_zero_settles_without_moving_money(make_engine):
    engine = make_engine(EngineSettings(mode=Mode.DNS))
    before = {bank: balance(engine, f"settlement:{bank}:KZT") for bank in (KZ_A, KZ_B)}
    engine.submit_many([pay("z1", KZ_A, KZ_B, 7_000), pay("z2", KZ_B, KZ_A, 7_000)])
    report = engine.run_cycle()
    assert report.settled == 2 and report.net_minor == {}
    assert {bank: balance(engine, f"settlement:{bank}:KZT") for bank in before} == before
    assert engine.outcome("z1").status is PaymentStatus.SETTLED
    check_ledger(engine)
