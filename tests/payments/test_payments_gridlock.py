"""Gridlock resolution: feasibility, FIFO, exact >= heuristics, exact = brute force."""

from __future__ import annotations

from itertools import combinations

import pytest
from hypothesis import given, settings

from sco_settle.ledger import InvariantViolation
from sco_settle.payments.gridlock import (
    QueuedPayment,
    bilateral_offsetting,
    check_feasible,
    exact_clearing,
    multilateral_offsetting,
    partial_netting,
)
from tests.payments.payments_strategies import gridlock_instances

A, B, C = "AAAAKZ22", "BBBBKZ22", "CCCCKZ22"
HEURISTICS = (bilateral_offsetting, multilateral_offsetting, partial_netting)


def queue_order(queue: list[QueuedPayment]) -> list[QueuedPayment]:
    return sorted(queue, key=lambda p: (-p.priority, p.enqueue_seq, p.id))


def brute_force(balances: dict, limits: dict, queue: list[QueuedPayment]) -> tuple[int, int]:
    best = (0, 0)
    for size in range(len(queue) + 1):
        for chosen in combinations(queue, size):
            try:
                check_feasible(balances, queue, [p.id for p in chosen], limits)
            except InvariantViolation:
                continue
            best = max(best, (sum(p.amount_minor for p in chosen), size))
    return best


@settings(max_examples=100, deadline=None)
@given(gridlock_instances(payments_max=9))
def test_exact_is_the_brute_force_optimum_and_bounds_every_heuristic(instance) -> None:
    balances, limits, queue = instance
    exact = exact_clearing(balances, queue, limits)
    assert (exact.settled_value_minor, exact.settled_count) == brute_force(balances, limits, queue)
    for heuristic in HEURISTICS:
        found = heuristic(balances, queue, limits)
        assert found.settled_value_minor <= exact.settled_value_minor, heuristic.__name__


@settings(max_examples=100, deadline=None)
@given(gridlock_instances(payments_max=16))
def test_every_result_is_feasible_and_accounts_for_every_payment(instance) -> None:
    balances, limits, queue = instance
    ids = sorted(p.id for p in queue)
    for solver in (*HEURISTICS, exact_clearing):
        found = solver(balances, queue, limits)
        check_feasible(balances, queue, found.settled_ids, limits)  # raises if anyone is overdrawn
        assert sorted(found.settled_ids + found.queued_ids) == ids
        assert found.settled_count == len(found.settled_ids)
        by_id = {p.id: p for p in queue}
        assert found.settled_value_minor == sum(by_id[i].amount_minor for i in found.settled_ids)
        assert sum(found.balances_minor.values()) == sum(balances.values())
        for bic, balance in found.balances_minor.items():
            assert balance >= -limits.get(bic, 0)


@settings(max_examples=100, deadline=None)
@given(gridlock_instances(payments_max=16))
def test_partial_netting_settles_a_prefix_of_each_payers_queue(instance) -> None:
    balances, limits, queue = instance
    settled = set(partial_netting(balances, queue, limits).settled_ids)
    for payer in balances:
        mine = [p.id in settled for p in queue_order(queue) if p.payer == payer]
        assert mine == sorted(mine, reverse=True), (payer, mine)  # True..., then False...


def test_circular_gridlock_clears_multilaterally() -> None:
    # Nobody can pay first, yet the circle nets to zero: all-or-nothing settles everything.
    queue = [QueuedPayment(1, A, B, 100), QueuedPayment(2, B, C, 100), QueuedPayment(3, C, A, 100)]
    balances = {A: 0, B: 0, C: 0}
    assert multilateral_offsetting(balances, queue).settled_ids == (1, 2, 3)
    assert partial_netting(balances, queue).settled_ids == (1, 2, 3)
    assert bilateral_offsetting(balances, queue).settled_ids == ()  # no pair offsets alone


def test_bilateral_offsetting_frees_a_pair() -> None:
    queue = [QueuedPayment(1, A, B, 100), QueuedPayment(2, B, A, 90), QueuedPayment(3, A, C, 50)]
    result = bilateral_offsetting({A: 10, B: 0, C: 0}, queue)
    assert result.settled_ids == (1, 2)  # A pays a net 10; A->C (50) stays queued
    assert result.balances_minor == {A: 0, B: 10, C: 0}


def test_partial_netting_removes_from_the_tail() -> None:
    queue = [
        QueuedPayment(1, A, B, 60, enqueue_seq=1),
        QueuedPayment(2, A, C, 40, enqueue_seq=2),
        QueuedPayment(3, B, A, 70, enqueue_seq=3),
    ]
    # All three: A = -60 - 40 + 70 = -30, B = +60 - 70 = -10. A is worst: its tail (2) goes and
    # A = +10. B is still short: its only payment (3) goes, which leaves A at -60: 1 goes too.
    assert partial_netting({A: 0, B: 0, C: 0}, queue).settled_ids == ()
    assert exact_clearing({A: 0, B: 0, C: 0}, queue).settled_ids == ()
    # With 10 more at B, removing A's tail is enough, and that is the optimum.
    assert partial_netting({A: 0, B: 10, C: 0}, queue).settled_ids == (1, 3)
    assert exact_clearing({A: 0, B: 10, C: 0}, queue).settled_value_minor == 130


def test_fifo_costs_value_that_the_exact_solver_finds() -> None:
    # A cannot pay its first, large payment; FIFO keeps the small one behind it queued too.
    queue = [QueuedPayment(1, A, B, 100, enqueue_seq=1), QueuedPayment(2, A, C, 10, enqueue_seq=2)]
    balances = {A: 10, B: 0, C: 0}
    assert partial_netting(balances, queue).settled_ids == ()
    assert exact_clearing(balances, queue).settled_ids == (2,)


def test_priorities_come_first_in_the_queue() -> None:
    queue = [
        QueuedPayment(1, A, B, 50, priority=0, enqueue_seq=1),
        QueuedPayment(2, A, C, 50, priority=1, enqueue_seq=2),
    ]
    assert partial_netting({A: 50, B: 0, C: 0}, queue).settled_ids == (2,)


def test_exact_refuses_large_queues_and_inputs_are_checked() -> None:
    queue = [QueuedPayment(i, A, B, 1) for i in range(30)]
    with pytest.raises(ValueError):
        exact_clearing({A: 0, B: 0}, queue)
    with pytest.raises(ValueError):
        partial_netting({A: 0}, [QueuedPayment(1, A, B, 5)])  # B has no balance
    with pytest.raises(ValueError):
        partial_netting({A: -5, B: 0}, [])  # starts below its limit
    with pytest.raises(ValueError):
        partial_netting({A: 0, B: 0}, [QueuedPayment(1, A, B, 5), QueuedPayment(1, B, A, 5)])
