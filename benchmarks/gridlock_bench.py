"""Gridlock resolution: time on a 10,000-payment queue, and value settled versus the optimum.

    python benchmarks/gridlock_bench.py            # 10,000 queued payments; 300 small instances
    python benchmarks/gridlock_bench.py --quick    # 2,000 queued payments; 60 small instances

Large queue: 100 participants holding little liquidity (a gridlock: each could pay only a few of
its queued payments alone). Small instances: 6 participants, 14 payments, solved exactly by
branch and bound; each heuristic's settled value is reported as a share of the optimum.
All inputs are seeded (``random.Random``), so runs are reproducible.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from sco_settle.payments.gridlock import (
    QueuedPayment,
    bilateral_offsetting,
    exact_clearing,
    multilateral_offsetting,
    partial_netting,
)

HEURISTICS = {
    "bilateral_offsetting": bilateral_offsetting,
    "multilateral_offsetting": multilateral_offsetting,
    "partial_netting": partial_netting,
}


def bic(number: int) -> str:
    letters = "".join(chr(ord("A") + (number // 26**i) % 26) for i in range(4))
    return f"{letters}KZ2A"


def instance(rng: random.Random, participants: int, payments: int, liquidity_share: float):
    """Random queue; each participant's balance is a share of what it has queued to pay."""
    bics = [bic(i) for i in range(participants)]
    queue = []
    outgoing = dict.fromkeys(bics, 0)
    for number in range(payments):
        payer, payee = rng.sample(bics, 2)
        amount = rng.randrange(1, 100) * 10 ** rng.randrange(2, 6)
        outgoing[payer] += amount
        queue.append(
            QueuedPayment(number + 1, payer, payee, amount, rng.choice((0, 0, 0, 1)), number)
        )
    balances = {b: int(outgoing[b] * liquidity_share * rng.random()) for b in bics}
    limits = {b: 0 for b in bics}
    return balances, limits, queue


def large(payments: int, seed: int) -> dict[str, object]:
    balances, limits, queue = instance(random.Random(seed), 100, payments, 0.3)
    total = sum(p.amount_minor for p in queue)
    report: dict[str, object] = {}
    for name, solve in HEURISTICS.items():
        started = time.perf_counter()
        result = solve(balances, queue, limits)
        report[name] = {
            "seconds": round(time.perf_counter() - started, 3),
            "settled_count": result.settled_count,
            "settled_value_share": round(result.settled_value_minor / total, 4),
        }
    return report


def small(instances: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    shares: dict[str, list[float]] = {name: [] for name in HEURISTICS}
    optimal_hits = dict.fromkeys(HEURISTICS, 0)
    exact_seconds = []
    for _ in range(instances):
        balances, limits, queue = instance(rng, 6, 14, 0.5)
        started = time.perf_counter()
        best = exact_clearing(balances, queue, limits)
        exact_seconds.append(time.perf_counter() - started)
        for name, solve in HEURISTICS.items():
            found = solve(balances, queue, limits)
            assert found.settled_value_minor <= best.settled_value_minor
            share = (
                found.settled_value_minor / best.settled_value_minor
                if best.settled_value_minor
                else 1.0
            )
            shares[name].append(share)
            optimal_hits[name] += found.settled_value_minor == best.settled_value_minor
    return {
        "instances": instances,
        "payments_per_instance": 14,
        "exact_mean_ms": round(statistics.mean(exact_seconds) * 1000, 3),
        "exact_max_ms": round(max(exact_seconds) * 1000, 3),
        "share_of_optimal_value_mean": {
            name: round(statistics.mean(v), 4) for name, v in shares.items()
        },
        "share_of_instances_at_optimum": {
            name: round(hits / instances, 4) for name, hits in optimal_hits.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller queue, fewer instances")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    payments = 2_000 if args.quick else 10_000
    instances = 60 if args.quick else 300
    report = {
        "benchmark": "gridlock",
        "queue_payments": payments,
        "queue": large(payments, args.seed),
        "small_instances": small(instances, args.seed + 1),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
