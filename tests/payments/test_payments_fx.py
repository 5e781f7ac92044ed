"""FX: exact conversion, rounding in favour of the liquidity provider, rate tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sco_settle.payments.fx import Rate, RateSide, RateTable, Rounding, convert, quote
from tests.payments.payments_strategies import AS_OF, rates

D = Decimal
CNY_KZT = Rate("CNY", "KZT", D("70.10"), D("70.50"), "HSBKKZKX", AS_OF)


def test_customer_selling_base_receives_at_bid() -> None:
    done = convert(10_000, "CNY", "KZT", CNY_KZT)  # 100.00 CNY
    assert done.converted_minor == 701_000  # 7,010.00 KZT at the bid
    assert done.side is RateSide.BID and done.rate_applied == D("70.10")
    assert done.spread_cost_minor == 2_000  # 7,030.00 at mid, less 7,010.00


def test_customer_buying_base_receives_at_ask_rounded_down() -> None:
    done = convert(703_000, "KZT", "CNY", CNY_KZT)  # 7,030.00 KZT / 70.50 = 99.716... CNY
    assert done.converted_minor == 9_971
    assert done.side is RateSide.ASK
    # At mid the customer would get exactly 100.00 CNY: the spread and rounding cost 0.29.
    assert done.spread_cost_minor == 29


def test_customer_paying_is_rounded_up_at_the_worse_side() -> None:
    # To have 100.00 CNY delivered, the customer pays KZT at the ask.
    assert convert(10_000, "CNY", "KZT", CNY_KZT, Rounding.CUSTOMER_PAYS).converted_minor == 705_000
    # To have 1.00 KZT delivered, the customer pays CNY at the bid, rounded up: 1/70.10 = 0.0142..
    paid = convert(100, "KZT", "CNY", CNY_KZT, Rounding.CUSTOMER_PAYS)
    assert paid.converted_minor == 2 and paid.side is RateSide.BID


def test_minor_units_differ_per_currency() -> None:
    cny_jpy = Rate("CNY", "JPY", D("20.5"), D("20.7"), "LP", AS_OF)
    assert convert(100, "CNY", "JPY", cny_jpy).converted_minor == 20  # JPY has no minor unit
    assert convert(100, "CNY", "JPY", cny_jpy, Rounding.CUSTOMER_PAYS).converted_minor == 21
    kwd_cny = Rate("KWD", "CNY", D("23.1"), D("23.4"), "LP", AS_OF)
    assert convert(1_000, "KWD", "CNY", kwd_cny).converted_minor == 2_310  # KWD has three
    assert convert(2_340, "CNY", "KWD", kwd_cny).converted_minor == 1_000


def test_conversion_is_exact_for_long_decimals() -> None:
    rate = Rate("CNY", "KZT", D("70.123456789012345678901"), D("70.2"), "LP", AS_OF)
    amount = 9_223_372_036_854_775
    exact = Fraction(amount) * Fraction(D("70.123456789012345678901"))
    assert (
        convert(amount, "CNY", "KZT", rate).converted_minor == exact.numerator // exact.denominator
    )


@given(rates(), st.integers(0, 10**10), st.booleans())
def test_rounding_never_favours_the_customer(rate: Rate, amount: int, from_base: bool) -> None:
    source, target = (rate.base, rate.quote) if from_base else (rate.quote, rate.base)
    received = quote(rate, source, target, Rounding.CUSTOMER_RECEIVES)
    paid = quote(rate, source, target, Rounding.CUSTOMER_PAYS)
    got = received.convert(amount)
    owed = paid.convert(amount)
    # Receiving: never more than the exact value at the rate, nor at mid. Paying: never less.
    assert got.converted_minor <= received.factor * amount <= received.mid_factor * amount
    assert owed.converted_minor >= paid.factor * amount >= paid.mid_factor * amount
    assert got.spread_cost_minor >= 0 and owed.spread_cost_minor >= 0


@given(rates(), st.integers(0, 10**10), st.booleans())
def test_round_trip_never_creates_money(rate: Rate, amount: int, from_base: bool) -> None:
    source, target = (rate.base, rate.quote) if from_base else (rate.quote, rate.base)
    there = convert(amount, source, target, rate).converted_minor
    back = convert(there, target, source, rate).converted_minor
    assert back <= amount
    # Paying the quoted price for ``amount`` of the source currency buys at least that much.
    price = convert(amount, source, target, rate, Rounding.CUSTOMER_PAYS).converted_minor
    assert convert(price, target, source, rate).converted_minor >= amount


def test_floats_are_refused() -> None:
    with pytest.raises(TypeError):
        Rate("CNY", "KZT", 70.1, D("70.5"), "LP", AS_OF)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        RateTable.from_dicts(
            [
                {
                    "base": "CNY",
                    "quote": "KZT",
                    "bid": 70.1,
                    "ask": "70.5",
                    "provider": "LP",
                    "as_of": AS_OF,
                }
            ]
        )
    with pytest.raises(TypeError):
        convert(10.0, "CNY", "KZT", CNY_KZT)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bid, ask, base, quote_code, as_of",
    [
        (D("71"), D("70"), "CNY", "KZT", AS_OF),  # crossed
        (D("0"), D("70"), "CNY", "KZT", AS_OF),  # not positive
        (D("70"), D("71"), "CNY", "CNY", AS_OF),  # same currency
        (D("70"), D("71"), "CNY", "XXX", AS_OF),  # unknown currency
        (D("70"), D("71"), "CNY", "KZT", datetime(2025, 1, 1)),  # naive timestamp
    ],
)
def test_malformed_rates_are_refused(bid, ask, base, quote_code, as_of) -> None:
    with pytest.raises(ValueError):
        Rate(base, quote_code, bid, ask, "LP", as_of)


def test_rate_table_picks_the_best_quote_either_way_round() -> None:
    table = RateTable.from_dicts(
        [
            {
                "base": "CNY",
                "quote": "KZT",
                "bid": "70.10",
                "ask": "70.50",
                "provider": "A",
                "as_of": AS_OF,
            },
            {
                "base": "CNY",
                "quote": "KZT",
                "bid": "70.20",
                "ask": "70.60",
                "provider": "B",
                "as_of": AS_OF,
            },
            # Listed the other way round: KZT/CNY 0.01420 / 0.01430 = CNY/KZT 69.93 / 70.42.
            {
                "base": "KZT",
                "quote": "CNY",
                "bid": "0.01420",
                "ask": "0.01430",
                "provider": "C",
                "as_of": "2025-09-01T09:00:00+00:00",
            },
        ]
    )
    selling_cny = table.best("CNY", "KZT")
    assert selling_cny is not None and selling_cny.rate.provider == "B"  # highest bid
    buying_cny = table.best("KZT", "CNY")
    assert buying_cny is not None and buying_cny.rate.provider == "C"  # cheapest CNY: 1/0.0142
    assert [q.rate.provider for q in table.quotes("KZT", "CNY")] == ["C", "A", "B"]
    assert table.best("KZT", "CNY", provider="A").rate.provider == "A"
    assert table.best("CNY", "KGS") is None


def test_rate_table_keeps_the_latest_quote_per_provider_and_filters_stale() -> None:
    old = Rate("CNY", "KZT", D("60"), D("61"), "A", AS_OF - timedelta(hours=1))
    new = Rate("CNY", "KZT", D("70"), D("71"), "A", AS_OF)
    table = RateTable([new, old])
    assert len(table) == 1 and table.best("CNY", "KZT").rate is new
    assert table.best("CNY", "KZT", as_of_min=AS_OF + timedelta(seconds=1)) is None
    assert table.best("CNY", "KZT", as_of_min=datetime(2025, 9, 1, 9, tzinfo=UTC)) is not None
