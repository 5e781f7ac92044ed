"""Gridlock resolution for a liquidity-saving queue: which queued payments settle together.

The bank clearing problem: given each participant's balance and credit limit in one currency and a
queue of payments, choose a set S of queued payments to settle simultaneously such that every
participant's resulting balance stays >= -limit:

    balance[p] + incoming(S, p) - outgoing(S, p) >= -limit[p]   for every participant p.

Maximising the value of S is NP-hard (Güntzer, Jungnickel and Leclerc, 1998), so an LSM runs
heuristics and this module also ships an exact solver for small queues to measure them against.

Queue order: by ``priority`` descending, then ``enqueue_seq`` ascending, then ``id``. "The tail of
a participant's queue" means its outgoing payments last in that order.

Invariants:
- Every result is feasible: no participant ends below -limit. Checked explicitly on every result
  (``check_feasible`` raises ``InvariantViolation``).
- ``partial_netting`` respects FIFO: each payer's settled payments are a prefix of its queue.
- ``exact_clearing`` maximises settled value (then count); every heuristic's value is <= it.
- Results are a pure function of the inputs: ties are broken by queue order and BIC order.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from sco_settle.domain.money import AMOUNT_MAX
from sco_settle.ledger import InvariantViolation

EXACT_PAYMENTS_MAX = 24


class QueuedPayment(NamedTuple):
    id: int
    payer: str
    payee: str
    amount_minor: int
    priority: int = 0
    enqueue_seq: int = 0


@dataclass(frozen=True, slots=True)
class GridlockResult:
    """The payments to settle now (in queue order), those left queued, and balances after."""

    algorithm: str
    settled_ids: tuple[int, ...]
    queued_ids: tuple[int, ...]
    settled_value_minor: int
    settled_count: int
    balances_minor: Mapping[str, int]


class _Problem(NamedTuple):
    """The queue in queue order, with participants as indices into sorted BICs."""

    participants: tuple[str, ...]
    payments: tuple[QueuedPayment, ...]
    payer: tuple[int, ...]
    payee: tuple[int, ...]
    amount: tuple[int, ...]
    headroom: tuple[int, ...]  # balance + limit: what each participant may pay out net


def _problem(
    balances_minor: Mapping[str, int],
    queue: Iterable[QueuedPayment],
    limits_minor: Mapping[str, int] | None,
) -> _Problem:
    limits_minor = limits_minor or {}
    payments = sorted(
        (QueuedPayment(*item) for item in queue), key=lambda p: (-p.priority, p.enqueue_seq, p.id)
    )
    if len({p.id for p in payments}) != len(payments):
        raise ValueError("queued payment ids must be unique")
    participants = tuple(
        sorted(set(balances_minor) | {p.payer for p in payments} | {p.payee for p in payments})
    )
    index = {bic: i for i, bic in enumerate(participants)}
    headroom = []
    for bic in participants:
        if bic not in balances_minor:
            raise ValueError(f"no balance given for participant {bic}")
        balance, limit = balances_minor[bic], limits_minor.get(bic, 0)
        if (
            not all(isinstance(v, int) and not isinstance(v, bool) for v in (balance, limit))
            or limit < 0
        ):
            raise ValueError(f"balance and limit of {bic} must be ints, limit >= 0")
        if balance < -limit:
            raise ValueError(f"{bic} starts below its limit: balance {balance}, limit {limit}")
        headroom.append(balance + limit)
    for p in payments:
        if p.payer == p.payee:
            raise ValueError(f"payment {p.id} pays its own payer")
        if not isinstance(p.amount_minor, int) or not 0 < p.amount_minor <= AMOUNT_MAX:
            raise ValueError(f"payment {p.id} amount_minor must be an int in 1..AMOUNT_MAX")
    return _Problem(
        participants=participants,
        payments=tuple(payments),
        payer=tuple(index[p.payer] for p in payments),
        payee=tuple(index[p.payee] for p in payments),
        amount=tuple(p.amount_minor for p in payments),
        headroom=tuple(headroom),
    )


def _slack(problem: _Problem, chosen: Iterable[int]) -> list[int]:
    """headroom + incoming - outgoing of the chosen payments (positions in queue order)."""
    slack = list(problem.headroom)
    for i in chosen:
        slack[problem.payer[i]] -= problem.amount[i]
        slack[problem.payee[i]] += problem.amount[i]
    return slack


def _result(
    problem: _Problem,
    algorithm: str,
    chosen: Iterable[int],
    balances_minor: Mapping[str, int],
    limits_minor: Mapping[str, int] | None,
) -> GridlockResult:
    chosen_set = set(chosen)
    ordered = [i for i in range(len(problem.payments)) if i in chosen_set]
    slack = _slack(problem, ordered)
    if any(value < 0 for value in slack):
        raise InvariantViolation(f"{algorithm} chose a set that overdraws a participant")
    limits_minor = limits_minor or {}
    balances = {
        bic: slack[i] - limits_minor.get(bic, 0) for i, bic in enumerate(problem.participants)
    }
    assert sum(balances.values()) == sum(balances_minor.get(bic, 0) for bic in problem.participants)
    settled_ids = tuple(problem.payments[i].id for i in ordered)
    result = GridlockResult(
        algorithm=algorithm,
        settled_ids=settled_ids,
        queued_ids=tuple(p.id for i, p in enumerate(problem.payments) if i not in chosen_set),
        settled_value_minor=sum(problem.amount[i] for i in ordered),
        settled_count=len(ordered),
        balances_minor=balances,
    )
    check_feasible(balances_minor, problem.payments, result.settled_ids, limits_minor)
    return result


def check_feasible(
    balances_minor: Mapping[str, int],
    queue: Iterable[QueuedPayment],
    settled_ids: Iterable[int],
    limits_minor: Mapping[str, int] | None = None,
) -> None:
    """Raise ``InvariantViolation`` if settling ``settled_ids`` together overdraws anyone."""
    limits_minor = limits_minor or {}
    by_id = {p.id: QueuedPayment(*p) for p in queue}
    resulting = dict(balances_minor)
    for payment_id in settled_ids:
        payment = by_id[payment_id]
        resulting[payment.payer] = resulting.get(payment.payer, 0) - payment.amount_minor
        resulting[payment.payee] = resulting.get(payment.payee, 0) + payment.amount_minor
    for bic, balance in resulting.items():
        if balance < -limits_minor.get(bic, 0):
            raise InvariantViolation(
                f"{bic} would end at {balance}, below -{limits_minor.get(bic, 0)}"
            )


# --- (a) bilateral offsetting -------------------------------------------------------------------


def bilateral_offsetting(
    balances_minor: Mapping[str, int],
    queue: Iterable[QueuedPayment],
    limits_minor: Mapping[str, int] | None = None,
) -> GridlockResult:
    """Offset each pair's queued payments against each other, one pair at a time.

    Pairs are taken in BIC order. For a pair, all its still-queued payments (both directions) are
    settled together if both stay within their limits; otherwise the one with the larger shortfall
    drops payments from the tail of its queue to the other until both are within limits (partial
    netting restricted to the pair). Participants outside the pair are untouched, so every step is
    feasible. Passes repeat until one settles nothing new (liquidity received in a later pair can
    unlock an earlier one); each pass but the last settles at least one payment.
    """
    problem = _problem(balances_minor, queue, limits_minor)
    pairs: dict[tuple[int, int], list[int]] = {}
    for i in range(len(problem.payments)):
        a, b = sorted((problem.payer[i], problem.payee[i]))
        pairs.setdefault((a, b), []).append(i)
    slack = list(problem.headroom)
    settled: set[int] = set()
    for _ in range(len(problem.payments) + 1):
        progress = False
        for pair in sorted(pairs):
            queued = [i for i in pairs[pair] if i not in settled]
            chosen = _partial_net(problem, slack, queued)
            for i in chosen:
                slack[problem.payer[i]] -= problem.amount[i]
                slack[problem.payee[i]] += problem.amount[i]
            settled.update(chosen)
            progress = progress or bool(chosen)
        if not progress:
            break
    return _result(problem, "bilateral_offsetting", settled, balances_minor, limits_minor)


# --- (b) multilateral offsetting ----------------------------------------------------------------


def multilateral_offsetting(
    balances_minor: Mapping[str, int],
    queue: Iterable[QueuedPayment],
    limits_minor: Mapping[str, int] | None = None,
) -> GridlockResult:
    """All or nothing: settle the whole queue at once if every participant stays within its limit.

    This is the first, cheapest test an LSM runs (TARGET2's "all-or-nothing" algorithm): it frees
    a pure gridlock, where circular payments block each other but the net positions are covered.
    """
    problem = _problem(balances_minor, queue, limits_minor)
    everything = range(len(problem.payments))
    feasible = all(value >= 0 for value in _slack(problem, everything))
    return _result(
        problem,
        "multilateral_offsetting",
        everything if feasible else (),
        balances_minor,
        limits_minor,
    )


# --- (c) partial netting (FIFO-respecting heuristic) --------------------------------------------


def partial_netting(
    balances_minor: Mapping[str, int],
    queue: Iterable[QueuedPayment],
    limits_minor: Mapping[str, int] | None = None,
) -> GridlockResult:
    """Settle everything, then remove payments from the tails of queues until feasible.

    As in BoF-PSS2 and Güntzer-Jungnickel-Leclerc: start from the whole queue; while some
    participant is below its limit, take the one with the largest shortfall (ties: BIC order) and
    remove its outgoing payments from the tail of its queue (lowest priority, latest enqueued
    first) until its shortfall is gone. Removing a payment only helps its payer and hurts its
    payee, so the loop revisits payees; each round removes at least one payment.
    """
    problem = _problem(balances_minor, queue, limits_minor)
    chosen = _partial_net(problem, list(problem.headroom), range(len(problem.payments)))
    return _result(problem, "partial_netting", chosen, balances_minor, limits_minor)


def _partial_net(
    problem: _Problem, headroom: Sequence[int], candidates: Iterable[int]
) -> list[int]:
    """Partial netting of ``candidates`` (queue positions) over the given headroom."""
    outgoing: dict[int, list[int]] = {}
    slack = list(headroom)
    chosen = set()
    for i in sorted(candidates):
        outgoing.setdefault(problem.payer[i], []).append(i)
        slack[problem.payer[i]] -= problem.amount[i]
        slack[problem.payee[i]] += problem.amount[i]
        chosen.add(i)
    # A heap of (slack, participant); entries go stale when slack changes and are re-checked.
    deficits = [(value, p) for p, value in enumerate(slack) if value < 0]
    heapq.heapify(deficits)
    removals_max = len(chosen)
    while deficits:
        value, worst = heapq.heappop(deficits)
        if value != slack[worst] or value >= 0:
            continue
        while slack[worst] < 0:
            assert outgoing[worst], "a participant with no outgoing payments cannot be short"
            i = outgoing[worst].pop()
            chosen.discard(i)
            removals_max -= 1
            assert removals_max >= 0
            slack[worst] += problem.amount[i]
            payee = problem.payee[i]
            slack[payee] -= problem.amount[i]
            if slack[payee] < 0:
                heapq.heappush(deficits, (slack[payee], payee))
    assert all(slack[p] >= 0 for p in range(len(slack)))
    return sorted(chosen)


# --- (d) exact solver for small queues ----------------------------------------------------------


def exact_clearing(
    balances_minor: Mapping[str, int],
    queue: Iterable[QueuedPayment],
    limits_minor: Mapping[str, int] | None = None,
    *,
    payments_max: int = EXACT_PAYMENTS_MAX,
) -> GridlockResult:
    """The feasible set of maximum value (then maximum count), by depth-first branch and bound.

    Payments are decided in queue order, "settle" before "leave queued", so among optimal sets the
    one preferring earlier payments is found first and kept (only strictly better sets replace
    it). Pruning: (1) value bound - settled value so far plus all undecided value cannot beat the
    best; (2) feasibility bound - each participant's headroom plus every incoming payment not yet
    refused, minus outgoing payments already chosen, must stay >= 0, since deciding the rest can
    only lower it. FIFO is not imposed, so this is an upper bound for every heuristic here.

    Raises:
        ValueError: more than ``payments_max`` queued payments (the search is exponential).
    """
    problem = _problem(balances_minor, queue, limits_minor)
    count = len(problem.payments)
    if count > payments_max:
        raise ValueError(f"exact clearing takes at most {payments_max} payments, got {count}")
    best = _branch_and_bound(problem)
    return _result(problem, "exact_clearing", best, balances_minor, limits_minor)


def _branch_and_bound(problem: _Problem) -> list[int]:
    count = len(problem.payments)
    payer, payee, amount = problem.payer, problem.payee, problem.amount
    suffix_value = [0] * (count + 1)
    for i in range(count - 1, -1, -1):
        suffix_value[i] = suffix_value[i + 1] + amount[i]
    # Optimistic slack: headroom + incoming not yet refused - outgoing chosen.
    optimistic = _slack(problem, ())
    for i in range(count):
        optimistic[payee[i]] += amount[i]
    chosen: list[int] = []
    best_score = (-1, -1)  # (value, count) of the best set found so far.
    best_set: list[int] = []

    def visit(i: int, value: int) -> None:
        nonlocal best_score, best_set
        if (value + suffix_value[i], len(chosen) + count - i) <= best_score:
            return
        if i == count:
            best_score, best_set = (value, len(chosen)), list(chosen)
            return
        source, target, size = payer[i], payee[i], amount[i]
        optimistic[source] -= size
        if optimistic[source] >= 0:
            chosen.append(i)
            visit(i + 1, value + size)
            chosen.pop()
        optimistic[source] += size
        optimistic[target] -= size
        if optimistic[target] >= 0:
            visit(i + 1, value)
        optimistic[target] += size

    visit(0, 0)
    return best_set
