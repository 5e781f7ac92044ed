"""Netting: conservation, agreement with a plain reference, net debit limits and deferral.

The deferral rule is stated once, in ``payments.netting``'s docstring; ``reference_deferral``
below is that rule written plainly (slow, obviously right), and both netting shapes must agree
with it exactly: the same instructions deferred, in the same order, for the same limits."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sco_settle.domain.money import AMOUNT_MAX
from sco_settle.payments.netting import (
    InvariantViolation,
    NetDebitLimit,
    NettingInstruction,
    NettingLeg,
    NettingLegs,
    PaymentBatch,
    bilateral_net,
    check_zero_sum,
    multilateral_net,
    net_legs,
    net_with_caps,
)

BANKS = ["AAAAKZ22", "BBBBKZ22", "CCCCCN22", "DDDDCN22", "EEEEKG22"]
CODES = ["CNY", "KGS", "KZT"]

payments = st.lists(
    st.builds(
        NettingInstruction,
        payer=st.sampled_from(BANKS),
        payee=st.sampled_from(BANKS),
        currency=st.sampled_from(CODES),
        amount_minor=st.integers(1, 10**6),
        priority=st.integers(0, 2),
    ).filter(lambda p: p.payer != p.payee),
    max_size=60,
)


def reference_positions(rows: list[NettingInstruction]) -> dict[tuple[str, str], int]:
    net: dict[tuple[str, str], int] = defaultdict(int)
    for row in rows:
        net[(row.payer, row.currency)] -= row.amount_minor
        net[(row.payee, row.currency)] += row.amount_minor
    return net


@given(payments)
def test_multilateral_net_conserves_value_and_matches_reference(
    rows: list[NettingInstruction],
) -> None:
    batch = PaymentBatch.from_instructions(rows)
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
def test_bilateral_net_matches_reference(rows: list[NettingInstruction]) -> None:
    batch = PaymentBatch.from_instructions(rows)
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
def test_caps_hold_and_nothing_is_lost(rows: list[NettingInstruction], caps: dict) -> None:
    batch = PaymentBatch.from_instructions(rows)
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
        NettingInstruction("AAAAKZ22", "BBBBKZ22", "KZT", 500, priority=1),  # 0: urgent, kept
        NettingInstruction("AAAAKZ22", "CCCCCN22", "KZT", 300),  # 1
        NettingInstruction("AAAAKZ22", "BBBBKZ22", "KZT", 200),  # 2: latest normal, deferred first
        NettingInstruction("BBBBKZ22", "AAAAKZ22", "KZT", 100),  # 3
    ]
    batch = PaymentBatch.from_instructions(rows)
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
        NettingInstruction("AAAAKZ22", "BBBBKZ22", "KZT", 100),
        NettingInstruction("BBBBKZ22", "CCCCKZ22", "KZT", 100),
    ]
    batch = PaymentBatch.from_instructions(rows)
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
        PaymentBatch.from_instructions([NettingInstruction("AAAAKZ22", "AAAAKZ22", "KZT", 5)])
    with pytest.raises(ValueError):
        PaymentBatch.from_instructions([NettingInstruction("AAAAKZ22", "BBBBKZ22", "KZT", 0)])
    with pytest.raises(ValueError):
        PaymentBatch.from_instructions([NettingInstruction("AAAAKZ22", "BBBBKZ22", "KZT", 2.5)])  # type: ignore[arg-type]
    with pytest.raises(ValueError):  # the total would not fit in int64
        PaymentBatch.from_instructions(
            [NettingInstruction("AAAAKZ22", "BBBBKZ22", "KZT", AMOUNT_MAX)] * 2
        )
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


# -- legs between position holders: the generalised core --------------------------------------

# Holder ids (e.g. ledger account ids) and their (participant, currency); AAAA holds two KZT
# accounts, so its cap spans both.
GROUP_OF = {
    5: ("AAAAKZ22", "KZT"),
    17: ("AAAAKZ22", "KZT"),
    23: ("BBBBKZ22", "KZT"),
    42: ("BBBBKZ22", "CNY"),
    99: ("CCCCCN22", "CNY"),
    1000: ("CCCCCN22", "KZT"),
    2**100: ("DDDDCN22", "CNY"),  # Ledger account ids are 128-bit: holders are Python ints.
}
LEG_PAIRS = [
    (debit, credit)
    for debit in GROUP_OF
    for credit in GROUP_OF
    if debit != credit and GROUP_OF[debit][1] == GROUP_OF[credit][1]
]

instructions = st.lists(
    st.tuples(
        st.lists(st.tuples(st.sampled_from(LEG_PAIRS), st.integers(1, 10**6)), max_size=3),
        st.integers(0, 2),
    ),
    max_size=40,
)
capacities = st.dictionaries(st.sampled_from(sorted(GROUP_OF)), st.integers(0, 2 * 10**6))
group_caps = st.dictionaries(st.sampled_from(sorted(set(GROUP_OF.values()))), st.integers(0, 10**6))


def legs_of(rows: list) -> tuple[list[NettingLeg], list[int]]:
    legs = [
        NettingLeg(index, debit, credit, amount)
        for index, (pairs, _) in enumerate(rows)
        for (debit, credit), amount in pairs
    ]
    return legs, [priority for _, priority in rows]


def reference_deferral(
    legs: list[NettingLeg],
    priority: list[int],
    group_of: dict[int, tuple[str, str]],
    capacity: dict[int, int],
    caps: dict[tuple[str, str], int],
) -> tuple[list[int], list[NetDebitLimit], int]:
    """The module's deferral rule, written plainly: (deferral order, limits, rounds)."""
    holders = sorted({leg.debit_holder for leg in legs} | {leg.credit_holder for leg in legs})
    groups = sorted({group_of[holder] for holder in holders})
    # Limits in index order: holders' capacities, then (participant, currency) caps.
    limits = [NetDebitLimit(*group_of[h], h) for h in holders if h in capacity]
    limits += [NetDebitLimit(*g, None) for g in groups if g in caps]
    index = {limit: i for i, limit in enumerate(limits)}
    order = {
        limit: n
        for n, limit in enumerate(
            [NetDebitLimit(*group_of[h], h) for h in holders]
            + [NetDebitLimit(*g, None) for g in groups]
        )
    }

    def bound(limit: NetDebitLimit) -> int:
        return capacity[limit.holder] if limit.holder is not None else caps[limit[:2]]

    def effect(instruction: int, limit: NetDebitLimit) -> int:
        def inside(holder: int) -> bool:
            if limit.holder is not None:
                return holder == limit.holder
            return group_of[holder] == (limit.participant, limit.currency)

        return sum(
            (leg.amount_minor if inside(leg.credit_holder) else 0)
            - (leg.amount_minor if inside(leg.debit_holder) else 0)
            for leg in legs
            if leg.instruction == instruction
        )

    settled = set(range(len(priority)))
    deferred: list[int] = []
    causes: list[NetDebitLimit] = []
    rounds = 0
    while True:
        position = {limit: sum(effect(i, limit) for i in settled) for limit in index}
        breaches = [(position[lim] + bound(lim), order[lim], lim) for lim in index]
        breaches = [breach for breach in breaches if breach[0] < 0]
        if not breaches:
            return deferred, causes, rounds
        worst = min(breaches)[2]
        rounds += 1
        while sum(effect(i, worst) for i in settled) < -bound(worst):
            debiting = [i for i in settled if effect(i, worst) < 0]
            chosen = min(debiting, key=lambda i: (priority[i], -i))
            settled.remove(chosen)
            deferred.append(chosen)
            causes.append(worst)


@settings(max_examples=150, deadline=None)
@given(instructions, capacities, group_caps)
def test_net_legs_follows_the_rule_and_conserves_value(rows, capacity, caps) -> None:
    legs, priority = legs_of(rows)
    batch = NettingLegs.from_legs(legs, priority=priority, group_of=GROUP_OF)
    result = net_legs(batch, capacity, caps)
    order, causes, rounds = reference_deferral(legs, priority, GROUP_OF, capacity, caps)
    assert result.deferral_order.tolist() == order
    assert list(result.deferral_limits) == causes
    assert result.rounds == rounds
    assert result.settled.tolist() == [i not in order for i in range(len(rows))]
    # Positions are exactly the settled legs' nets: they sum to zero in each currency and stay
    # within every capacity and every cap.
    expected: dict[int, int] = defaultdict(int)
    for leg in legs:
        if leg.instruction not in order:
            expected[leg.debit_holder] -= leg.amount_minor
            expected[leg.credit_holder] += leg.amount_minor
    positions = result.positions()
    assert positions == {holder: expected[holder] for holder in batch.holders}
    by_currency: dict[str, int] = defaultdict(int)
    by_group: dict[tuple[str, str], int] = defaultdict(int)
    for holder, position in positions.items():
        by_currency[GROUP_OF[holder][1]] += position
        by_group[GROUP_OF[holder]] += position
        assert position >= -capacity.get(holder, AMOUNT_MAX)
    assert set(by_currency.values()) <= {0}
    assert all(by_group[group] >= -cap for group, cap in caps.items())
    # Liquidity reports: net debits per currency, and the settled legs' gross value.
    net_debit: dict[str, int] = defaultdict(int)
    for holder, position in positions.items():
        if position < 0:
            net_debit[GROUP_OF[holder][1]] -= position
    assert result.net_debit_minor() == dict(sorted(net_debit.items()))
    gross: dict[str, int] = defaultdict(int)
    for leg in legs:
        if leg.instruction not in order:
            gross[GROUP_OF[leg.debit_holder][1]] += leg.amount_minor
    assert result.gross_minor() == dict(sorted(gross.items()))


@settings(max_examples=100, deadline=None)
@given(
    payments,
    st.dictionaries(
        st.tuples(st.sampled_from(BANKS), st.sampled_from(CODES)), st.integers(0, 10**6)
    ),
)
def test_net_with_caps_is_the_same_rule_with_one_holder_per_participant_and_currency(
    rows: list[NettingInstruction], caps: dict
) -> None:
    result = net_with_caps(PaymentBatch.from_instructions(rows), caps)
    # The same batch as legs: holder n is the n-th (participant, currency) pair in sorted order.
    pairs = sorted({(r.payer, r.currency) for r in rows} | {(r.payee, r.currency) for r in rows})
    holder = {pair: n for n, pair in enumerate(pairs)}
    legs = [
        NettingLeg(i, holder[(r.payer, r.currency)], holder[(r.payee, r.currency)], r.amount_minor)
        for i, r in enumerate(rows)
    ]
    group_of = {n: pair for pair, n in holder.items()}
    priority = [row.priority for row in rows]
    capacity = {holder[pair]: cap for pair, cap in caps.items() if pair in holder}
    order, _, rounds = reference_deferral(legs, priority, group_of, capacity, {})
    assert result.deferral_order.tolist() == order
    assert result.rounds == rounds
    batch = NettingLegs.from_legs(legs, priority=priority, group_of=group_of)
    # As capacities of holders, or as caps of their (participant, currency): one rule.
    for as_legs in (net_legs(batch, capacity, {}), net_legs(batch, {}, caps)):
        assert as_legs.deferral_order.tolist() == order
        assert as_legs.settled.tolist() == result.settled.tolist()


def test_an_instruction_passing_through_a_short_holder_is_not_deferred_for_it() -> None:
    # Holder 5 may not be a net debtor. Instruction 0 pays from it; the later instruction 1 only
    # passes through it (credited, then debited by the same amount): deferring 1 would not help.
    legs = [
        NettingLeg(0, 5, 23, 50),
        NettingLeg(1, 1000, 5, 70),
        NettingLeg(1, 5, 23, 70),
    ]
    batch = NettingLegs.from_legs(legs, priority=[0, 0], group_of=GROUP_OF)
    result = net_legs(batch, {5: 0}, {})
    assert result.deferral_order.tolist() == [0]
    assert result.deferral_limits == (NetDebitLimit("AAAAKZ22", "KZT", 5),)
    assert result.positions() == {5: 0, 23: 70, 1000: -70}


def test_a_participants_cap_spans_its_holders_in_the_currency() -> None:
    legs = [
        NettingLeg(0, 5, 23, 80),  # AAAA from its first KZT account
        NettingLeg(
            1,
            17,
            23,
            80,
        ),  # and from its second
        NettingLeg(2, 23, 17, 30),  # BBBB pays AAAA's second account
    ]
    batch = NettingLegs.from_legs(legs, priority=[0, 1, 0], group_of=GROUP_OF)
    result = net_legs(batch, {}, {("AAAAKZ22", "KZT"): 100})
    # AAAA is at -130: instruction 0 (priority 0) goes first, although 1 is later.
    assert result.deferral_order.tolist() == [0]
    assert result.deferral_limits == (NetDebitLimit("AAAAKZ22", "KZT", None),)
    assert result.positions() == {5: 0, 17: -50, 23: 50}
    # Account 17 may pay out at most 40 as well. The worst breach goes first: the cap's (30)
    # before account 17's (10); then 17 is still short, and only instruction 1 debits it.
    both = net_legs(batch, {17: 40}, {("AAAAKZ22", "KZT"): 100})
    assert both.deferral_order.tolist() == [0, 1]
    assert both.deferral_limits == (
        NetDebitLimit("AAAAKZ22", "KZT", None),
        NetDebitLimit("AAAAKZ22", "KZT", 17),
    )
    assert both.positions() == {5: 0, 17: 30, 23: -30}


def test_invalid_legs_are_refused() -> None:
    def build(legs, priority=(0,), group_of=GROUP_OF):
        return NettingLegs.from_legs(legs, priority=list(priority), group_of=group_of)

    with pytest.raises(ValueError, match="differ"):
        build([NettingLeg(0, 5, 5, 10)])
    with pytest.raises(ValueError, match="same currency"):
        build([NettingLeg(0, 5, 42, 10)])
    with pytest.raises(ValueError, match="positive"):
        build([NettingLeg(0, 5, 23, 0)])
    with pytest.raises(ValueError, match="int"):
        build([NettingLeg(0, 5, 23, 2.5)])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no \\(participant, currency\\)"):
        build([NettingLeg(0, 5, 7, 10)])
    with pytest.raises(ValueError, match="instruction index"):
        build([NettingLeg(1, 5, 23, 10)])
    with pytest.raises(ValueError, match="KZT exceeds AMOUNT_MAX"):
        build([NettingLeg(0, 5, 23, AMOUNT_MAX), NettingLeg(0, 23, 1000, 1)])
    batch = build([NettingLeg(0, 5, 23, 10)])
    with pytest.raises(ValueError, match="capacity"):
        net_legs(batch, {5: -1}, {})
    with pytest.raises(ValueError, match="cap for"):
        net_legs(batch, {}, {("AAAAKZ22", "KZT"): AMOUNT_MAX + 1})
