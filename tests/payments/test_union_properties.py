"""Properties of the SCO clearing union (issue 11): union netting conserves value in every
currency and in the unit of account; no member passes its swing limit; a cycle is all or
nothing per payment; deferral never settles a payment partially."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sco_settle.domain.account_key import AccountKey
from sco_settle.network import load_network
from sco_settle.payments.model import Payment, PaymentStatus, Reason
from sco_settle.payments.network_view import NetworkView, load_rates
from sco_settle.payments.union import convert_payment
from sco_settle.payments.union_config import load_union
from sco_settle.payments.union_unit import UnitPrices, convert_delivered, convert_sent

from .test_union_engine import (
    balance,
    check_books,
    positions,
    set_balance,
    union_engine,
    with_limits,
)

# Commercial banks of six member currencies (each holds a settlement account in its own).
BANKS = (
    ("HSBKKZKX", "KZT"),
    ("KCJBKZKX", "KZT"),
    ("BKCHCNBJ", "CNY"),
    ("ICBKCNBJ", "CNY"),
    ("SABRRUMM", "RUB"),
    ("NBFAUZ2X", "UZS"),
    ("SBININBB", "INR"),
    ("KICBKG22", "KGS"),
)
CENTRAL_BANKS = {"KZT": "NBRKKZKX", "CNY": "PBOCCNBJ", "RUB": "CBRFRUMM", "UZS": "CBUZUZ22",
                 "INR": "RBISINBB", "KGS": "NBKIKG22"}  # fmt: skip


@pytest.fixture(scope="module")
def view():
    return NetworkView(load_network("sco"), load_rates())


@st.composite
def union_payments(draw):
    count = draw(st.integers(1, 10))
    found = []
    for number in range(count):
        payer = draw(st.sampled_from(BANKS))
        payee = draw(st.sampled_from([bank for bank in BANKS if bank[1] != payer[1]]))
        amount = draw(st.integers(1, 5 * 10**9))
        found.append(Payment(f"p{number}", payer[0], payee[0], amount, payer[1], payee[1]))
    return found


limits = st.dictionaries(
    st.sampled_from(sorted(CENTRAL_BANKS.values())),
    st.integers(0, 400_000).map(str),  # XSC, major units: from none to far beyond any draw
)
drained = st.dictionaries(st.sampled_from(BANKS), st.integers(0, 10**9))


@st.composite
def prices_and_amounts(draw):
    """Arbitrary positive unit prices of two currencies (unit minor units per minor unit)."""
    first = Fraction(draw(st.integers(1, 10**9)), draw(st.integers(1, 10**9)))
    second = Fraction(draw(st.integers(1, 10**9)), draw(st.integers(1, 10**9)))
    return UnitPrices("XSC", {"AAA": first, "BBB": second}), draw(st.integers(0, 10**15))


@given(prices_and_amounts())
def test_a_conversion_books_the_whole_unit_value_with_a_residue_that_is_never_negative(drawn):
    prices, amount = drawn
    for conversion in (
        convert_sent(prices, amount, "AAA", "BBB"),
        convert_delivered(prices, amount, "AAA", "BBB"),
    ):
        assert conversion.residue_unit_minor >= 0
        assert conversion.debit_unit_minor == (
            conversion.credit_unit_minor + conversion.residue_unit_minor
        )
        # The payee never receives more than the payer's money is worth at the unit's price.
        assert conversion.delivered_minor * prices.per_minor["BBB"] <= (
            conversion.sent_minor * prices.per_minor["AAA"]
        )


def _snapshot(engine):
    keys = {AccountKey.settlement(bic, code) for bic, code in BANKS}
    keys |= {AccountKey.issuance(bank, code) for code, bank in CENTRAL_BANKS.items()}
    return {key: balance(engine, key) for key in keys}, positions(engine)


def _expected_changes(engine, settled: list[Payment]):
    """What the settled payments, each in full, move: per bank and central-bank account in its
    currency, and per member position in the unit."""
    book = engine.mode.book(engine)
    prices = book.prices(engine)
    accounts: Counter[AccountKey] = Counter()
    unit: Counter[str] = Counter()
    for payment in settled:
        conversion = convert_payment(book, prices, payment)
        source, target = payment.currency, payment.creditor_currency
        accounts[AccountKey.settlement(payment.debtor_agent, source)] -= conversion.sent_minor
        accounts[AccountKey.issuance(CENTRAL_BANKS[source], source)] += conversion.sent_minor
        accounts[AccountKey.settlement(payment.creditor_agent, target)] += (
            conversion.delivered_minor
        )
        accounts[AccountKey.issuance(CENTRAL_BANKS[target], target)] -= conversion.delivered_minor
        unit[CENTRAL_BANKS[source]] -= conversion.debit_unit_minor
        unit[CENTRAL_BANKS[target]] += conversion.credit_unit_minor
    return accounts, unit


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(union_payments(), limits, drained)
def test_each_cycle_settles_whole_payments_within_the_swing_limits_and_conserves_value(
    view, payments, swing_limits, balances
):
    engine = union_engine(view, config=with_limits(swing_limits))
    for (bic, code), amount in balances.items():
        set_balance(engine, AccountKey.settlement(bic, code), amount)
    engine.submit_many(payments)
    limit_of = engine.mode.config.swing_limits_minor()
    for _cycle in range(2):  # the second cycle retries what the first deferred
        before_accounts, before_unit = _snapshot(engine)
        waiting = [p for p in payments if p.payment_id in engine.queue]
        engine.run_cycle()
        outcomes = {p.payment_id: engine.outcome(p.payment_id) for p in waiting}
        settled = [p for p in waiting if outcomes[p.payment_id].status is PaymentStatus.SETTLED]
        event(f"cycle {_cycle}: {'some' if len(settled) < len(waiting) else 'none'} deferred")
        for payment in waiting:
            outcome = outcomes[payment.payment_id]
            assert (
                outcome.status is PaymentStatus.SETTLED
                or (outcome.status is PaymentStatus.QUEUED and payment.payment_id in engine.queue)
                or outcome.reason is Reason.AM01
            ), outcome  # dust converts to nothing: refused
        after_accounts, after_unit = _snapshot(engine)
        accounts, unit = _expected_changes(engine, settled)
        # All or nothing per payment: exactly the settled payments' full amounts moved, and
        # nothing of a deferred one (any partial leg would show in some account's change).
        for key, value in after_accounts.items():
            assert value - before_accounts[key] == accounts[key], key
        for bic, value in after_unit.items():
            assert value - before_unit[bic] == unit[bic], bic
            assert value >= -limit_of[bic]  # never past the swing limit
        check_books(engine)  # debits = credits per currency and in the unit; residue booked


def test_the_shipped_limits_are_whole_units():
    for member in load_union().members:
        assert member.swing_limit == member.swing_limit.to_integral_value() > Decimal(0)
