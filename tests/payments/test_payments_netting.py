"""Netting: conservation, agreement with a plain reference, net debit caps and deferral."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sco_settle.domain.money import AMOUNT_MAX
from sco_settle.payments.netting import (
    InvariantViolation,
    Payment,
    PaymentBatch,
    bilateral_net,
    check_zero_sum,
    multilateral_net,
    net_with_caps,
)

BANKS = ["AAAAKZ22", "BBBBKZ22", "CCCCCN22", "DDDDCN22", "EEEEKG22"]
CODES = ["CNY", "KGS", "KZT"]

payments = st.lists(
    st.builds(
        Payment,
        payer=st.sampled_from(BANKS),
        payee=st.sampled_from(BANKS),
        currency=st.sampled_from(CODES),
        amount_minor=st.integers(1, 10**6),
        priority=st.integers(0, 2),
    ).filter(lambda p: p.payer != p.payee),
    max_size=60,
)


def reference_positions(rows: list[Payment]) -> dict[tuple[str, str], int]:
    net: dict[tuple[str, str], int] = defaultdict(int)
    for row in rows:
        net[(row.payer, row.currency)] -= row.amount_minor
        net[(row.payee, row.currency)] += row.amount_minor
    return net


@given(payments)
def test_multilateral_net_conserves_value_and_matches_reference(rows: list[Payment]) -> None:
    batch = PaymentBatch.from_payments(rows)
    positions = multilateral_net(batch)
    assert positions.net_minor.sum(axis=0).tolist() == [0] * len(batch.currencies)
    expected = reference_positions(rows)
    for (bic, code), value in expected.items():
        assert positions.position(bic, code) == value
    for code, need in positions.liquidity().items():
        gross = sum(r.amount_minor for r in rows if r.currency == code)
        assert need.gross_minor == gross
        assert need.net_debit_minor == sum(
            -v for (_, c), v in expected.items() if c == code and v < 0
        )
        assert 0 <= need.net_debit_minor <= need.gross_minor


@given(payments)
def test_bilateral_net_matches_reference(rows: list[Payment]) -> None:
    batch = PaymentBatch.from_payments(rows)
    pairs = bilateral_net(batch)
    expected: dict[tuple[str, str, str], int] = defaultdict(int)
    for row in rows:
        first, second = sorted((row.payer, row.payee))
        sign = 1 if row.payer == first else -1
        expected[(first, second, row.currency)] += sign * row.amount_minor
    got = {
        (batch.participants[a], batch.participants[b], batch.currencies[c]): int(n)
        for a, b, c, n in zip(
            pairs.first, pairs.second, pairs.currency, pairs.net_minor, strict=True
        )
    }
    assert got == dict(expected)
    # Bilateral netting needs no less liquidity than multilateral netting, and no more than gross.
    multilateral = multilateral_net(batch).liquidity()
    for code, need in pairs.liquidity_minor().items():
        assert multilateral[code].net_debit_minor <= need <= multilateral[code].gross_minor


@settings(max_examples=100, deadline=None)
@given(
    payments,
    st.dictionaries(
        st.tuples(st.sampled_from(BANKS), st.sampled_from(CODES)), st.integers(0, 10**6)
    ),
)
def test_caps_hold_and_nothing_is_lost(rows: list[Payment], caps: dict) -> None:
    batch = PaymentBatch.from_payments(rows)
    result = net_with_caps(batch, caps, cap_default_minor=None)
    settled_rows = [row for row, kept in zip(rows, result.settled.tolist(), strict=True) if kept]
    deferred_rows = [rows[i] for i in result.deferred.tolist()]
    assert len(settled_rows) + len(deferred_rows) == len(rows)
    assert sorted(result.deferral_order.tolist()) == result.deferred.tolist()
    expected = reference_positions(settled_rows)
    for (bic, code), value in expected.items():
        assert result.positions.position(bic, code) == value
        assert value >= -caps.get((bic, code), AMOUNT_MAX)
    # Only payments of participants that were (or became) short are ever deferred.
    assert all(caps.get((row.payer, row.currency)) is not None for row in deferred_rows)


def test_deferral_takes_the_worst_breacher_latest_lowest_priority_first() -> None:
    rows = [
        Payment("AAAAKZ22", "BBBBKZ22", "KZT", 500, priority=1),  # 0: urgent, kept
        Payment("AAAAKZ22", "CCCCCN22", "KZT", 300),  # 1
        Payment("AAAAKZ22", "BBBBKZ22", "KZT", 200),  # 2: latest normal, deferred first
        Payment("BBBBKZ22", "AAAAKZ22", "KZT", 100),  # 3
    ]
    batch = PaymentBatch.from_payments(rows)
    # A is at -900 against a cap of 600: deferring payment 2 (200) is not enough, then 1 (300).
    result = net_with_caps(batch, {("AAAAKZ22", "KZT"): 600})
    assert result.deferral_order.tolist() == [2, 1]
    assert result.settled.tolist() == [True, False, False, True]
    assert result.positions.position("AAAAKZ22", "KZT") == -400
    assert result.rounds == 1
    # With every cap at zero, A must defer all it sends; B then only pays A and is short, so
    # B's payment is deferred as well.
    strict = net_with_caps(batch, {}, cap_default_minor=0)
    assert strict.settled.tolist() == [False, False, False, False]
    assert strict.positions.net_minor.tolist() == [[0], [0], [0]]


def test_deferral_cascades_to_payees() -> None:
    # B can pay C only with A's payment; capping A defers A->B, so B breaches and defers B->C.
    rows = [
        Payment("AAAAKZ22", "BBBBKZ22", "KZT", 100),
        Payment("BBBBKZ22", "CCCCKZ22", "KZT", 100),
    ]
    batch = PaymentBatch.from_payments(rows)
    result = net_with_caps(batch, {}, cap_default_minor=0)
    assert result.deferral_order.tolist() == [0, 1]
    assert result.rounds == 2


def test_large_batches_are_vectorised_and_exact() -> None:
    rng = np.random.default_rng(7)
    size, banks, codes = 200_000, 300, 8
    participants = [f"B{chr(65 + i // 26 % 26)}{chr(65 + i % 26)}AKZ22" for i in range(banks)]
    payer = rng.integers(0, banks, size)
    payee = (payer + rng.integers(1, banks, size)) % banks
    batch = PaymentBatch.from_arrays(
        sorted(participants),
        ["CNY", "EUR", "INR", "KGS", "KZT", "PKR", "RUB", "UZS"][:codes],
        payer=payer,
        payee=payee,
        currency=rng.integers(0, codes, size),
        amount_minor=rng.integers(1, 10**12, size),
    )
    positions = multilateral_net(batch)
    check_zero_sum(positions.net_minor, batch.currencies)
    assert int(positions.outgoing_minor.sum()) == sum(int(a) for a in batch.amount_minor.tolist())


def test_invalid_batches_are_refused() -> None:
    with pytest.raises(ValueError):
        PaymentBatch.from_payments([Payment("AAAAKZ22", "AAAAKZ22", "KZT", 5)])
    with pytest.raises(ValueError):
        PaymentBatch.from_payments([Payment("AAAAKZ22", "BBBBKZ22", "KZT", 0)])
    with pytest.raises(ValueError):
        PaymentBatch.from_payments([Payment("AAAAKZ22", "BBBBKZ22", "KZT", 2.5)])  # type: ignore[arg-type]
    with pytest.raises(ValueError):  # the total would not fit in int64
        PaymentBatch.from_payments([Payment("AAAAKZ22", "BBBBKZ22", "KZT", AMOUNT_MAX)] * 2)
    with pytest.raises(ValueError):
        PaymentBatch.from_arrays(
            ["AAAAKZ22"],
            ["KZT"],
            payer=np.array([0.0]),
            payee=np.array([0]),
            currency=np.array([0]),
            amount_minor=np.array([1]),
        )
    with pytest.raises(InvariantViolation):
        check_zero_sum(np.array([[1], [0]]), ["KZT"])
