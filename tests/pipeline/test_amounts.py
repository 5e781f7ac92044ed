"""Amounts as promised: a fixed sent amount, or a fixed received amount delivered exactly.

ISO 20022's ``IntrBkSttlmAmt`` is what the creditor agent receives; the review (D2) found the
sample promising CNY 14,100.00 delivering CNY 14,103.54, and CNY 1.00 against an instructed
KZT 10 trillion queued for hours. Each test here failed on the code before fixed amounts.
"""

from __future__ import annotations

import functools
from decimal import Decimal

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sco_settle.domain.money import applied_rate
from sco_settle.ledger import Ledger
from sco_settle.network import load_network
from sco_settle.network.install import install_network
from sco_settle.payments.model import AmountType, Payment, PaymentStatus, Reason
from sco_settle.payments.network_view import NetworkView, load_rates
from sco_settle.payments.routing import find_routes, find_routes_delivering
from sco_settle.storage.memory import MemoryStore

from .conftest import balance
from .test_engine import check_ledger

KZ_A, KZ_B, CN_A = "HSBKKZKX", "KCJBKZKX", "BKCHCNBJ"


def receive(payment_id, amount, currency="KZT", to="CNY", **extra):
    return Payment(
        payment_id, KZ_A, CN_A, amount, currency, to, amount_type=AmountType.RECEIVE, **extra
    )


def test_fixed_received_amount_is_delivered_exactly_and_the_payer_pays_its_cost(make_engine):
    engine = make_engine()
    kzt_before = balance(engine, f"settlement:{KZ_A}:KZT")
    cny_before = balance(engine, f"settlement:{CN_A}:CNY")
    outcome = engine.submit(receive("r1", 14_100_00))
    assert outcome.status is PaymentStatus.SETTLED
    assert outcome.amount_delivered_minor == 14_100_00
    assert balance(engine, f"settlement:{CN_A}:CNY") == cny_before + 14_100_00
    sent = kzt_before - balance(engine, f"settlement:{KZ_A}:KZT")
    assert sent == outcome.amount_sent_minor
    # About KZT 70.8 per CNY: CNY 14,100 costs roughly KZT 1,000,000, rounded up for the payer.
    assert 990_000_00 < sent < 1_010_000_00
    # The least that delivers it: one minor unit less would not.
    sent_less = engine.submit(Payment("s1", KZ_A, CN_A, sent - 1, "KZT", "CNY"))
    assert sent_less.amount_delivered_minor < 14_100_00
    assert applied_rate(sent, "KZT", 14_100_00, "CNY") < Decimal("0.0142")
    check_ledger(engine)


def test_fixed_sent_amount_reports_both_amounts(make_engine):
    engine = make_engine()
    outcome = engine.submit(Payment("s2", KZ_A, CN_A, 1_000_000_00, "KZT", "CNY"))
    assert outcome.status is PaymentStatus.SETTLED
    assert outcome.amount_sent_minor == 1_000_000_00
    assert 1_400_000 < outcome.amount_delivered_minor < 1_420_000


def test_amounts_that_disagree_with_the_instruction_are_refused_am09(make_engine):
    engine = make_engine()
    before = balance(engine, f"settlement:{KZ_A}:KZT")
    wild = engine.submit(receive("w1", 1_00, instructed_minor=10_000_000_000_000_00))
    assert (wild.status, wild.reason) == (PaymentStatus.REJECTED, Reason.AM09)
    stated = engine.submit(
        receive("w2", 14_100_00, instructed_minor=1_000_000_00, exchange_rate="0.5")
    )
    assert (stated.status, stated.reason) == (PaymentStatus.REJECTED, Reason.AM09)
    assert "stated rate 0.5" in stated.reason_text
    assert balance(engine, f"settlement:{KZ_A}:KZT") == before
    assert len(engine.queue) == 0
    fine = engine.submit(
        receive("w3", 14_100_00, instructed_minor=1_000_000_00, exchange_rate="0.0141")
    )
    assert fine.status is PaymentStatus.SETTLED and fine.amount_delivered_minor == 14_100_00


def test_fixed_received_amount_survives_the_record_and_a_resubmission(make_engine):
    engine = make_engine()
    first = engine.submit(receive("r2", 5_000_00))
    again = engine.submit(receive("r2", 5_000_00))
    assert again.duplicate and again.amount_sent_minor == first.amount_sent_minor
    found = engine.records.get("r2")
    assert found is not None
    assert found[0].amount_type is AmountType.RECEIVE
    assert found[1].amount_sent_minor == first.amount_sent_minor
    assert engine.audit().ok


@functools.cache
def _graph():
    network = load_network("sco")
    view = NetworkView(network, load_rates())
    ledger = Ledger(MemoryStore(), lambda: 1_800_000_000 * 10**9)
    install_network(ledger, network)
    return view, view.graph(ledger, ignore_balances=True)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(deliver=st.integers(min_value=1, max_value=10**11))
def test_delivering_route_is_exact_and_least(deliver):
    """For any amount: the route delivers exactly it, from the least amount sent on its path."""
    view, graph = _graph()
    result = find_routes_delivering(graph, KZ_A, CN_A, deliver, "KZT", "CNY", view.rates, k=1)
    assume(result.routes)  # Not over the swap line's headroom.
    route = result.routes[0]
    assert route.amount_delivered_minor == deliver
    sent = route.legs[0].amount_minor
    for leg in route.legs:
        assert leg.converted_minor <= leg.amount_minor or leg.kind.value in ("fx", "swap_line")
    if sent > 1:
        less = find_routes(graph, KZ_A, CN_A, sent - 1, "KZT", "CNY", view.rates, k=5)
        same_path = [r for r in less.routes if r.signature == route.signature]
        assert all(r.amount_delivered_minor < deliver for r in same_path)


def test_an_amount_over_every_routes_dealing_limit_is_refused_at_once(make_engine):
    """Review: a payment no liquidity could ever carry is refused at once (AM02), not queued
    for hours. Optima Bank (no CNY account of its own) pays the Bank of China in CNY: the only
    bank dealing CNY for other Kyrgyz banks is Aiyl Bank, up to CNY 20 m a deal."""
    engine = make_engine()
    about_cny_41_m = 500_000_000_00  # KGS 500 m at about 12.08 KGS per CNY
    over = engine.submit(Payment("h1", "ENEJKG22", CN_A, about_cny_41_m, "KGS", "CNY"))
    assert (over.status, over.reason) == (PaymentStatus.REJECTED, Reason.AM02)
    assert "dealing limits" in over.reason_text and len(engine.queue) == 0
    within = engine.submit(Payment("h2", "ENEJKG22", CN_A, 1_000_000_00, "KGS", "CNY"))
    assert within.status is PaymentStatus.SETTLED
    assert "AIYLKG22/CNY" in within.route
