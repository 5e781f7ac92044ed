"""Netting throughput: 1,000,000 payments, 1,000 participants, 20 currencies; prints JSON.

    python benchmarks/netting_bench.py            # full size; target: multilateral net < 1 s
    python benchmarks/netting_bench.py --quick    # 100,000 payments

Payments are seeded random (numpy ``default_rng``), amounts log-uniform from 1.00 to 10 million
major units. Caps for the capped run: every participant may be a net debtor of at most 25 % of
what it sends in a currency. The same batch also runs as legs between position holders
(``NettingLegs``, the shape deferred net settlement nets: there, each holder is a ledger account),
with the caps as (participant, currency) caps; both must defer the same payments.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from sco_settle.payments.netting import (
    NettingLegs,
    PaymentBatch,
    bilateral_net,
    multilateral_net,
    net_legs,
    net_with_caps,
)

# SCO members, partners and neighbours, plus the Gulf: 20 settlement currencies.
CURRENCIES = [
    "AED",
    "AMD",
    "AZN",
    "BHD",
    "BYN",
    "CNY",
    "EGP",
    "INR",
    "IRR",
    "KGS",
    "KHR",
    "KWD",
    "KZT",
    "MMK",
    "MNT",
    "NPR",
    "PKR",
    "RUB",
    "TJS",
    "UZS",
]
COUNTRIES = ["CN", "RU", "IN", "KZ", "KG", "TJ", "UZ", "PK", "IR", "BY"]


def participant_bics(count: int) -> list[str]:
    bics = []
    for number in range(count):
        letters = "".join(chr(ord("A") + (number // 26**i) % 26) for i in range(4))
        bics.append(f"{letters}{COUNTRIES[number % len(COUNTRIES)]}2A")
    return sorted(bics)


def make_batch(payments: int, participants: int, seed: int) -> PaymentBatch:
    rng = np.random.default_rng(seed)
    payer = rng.integers(0, participants, payments)
    payee = (payer + rng.integers(1, participants, payments)) % participants
    # log-uniform amounts in minor units without floats near money: 10**k * mantissa
    exponent = rng.integers(2, 9, payments)
    amount = rng.integers(1, 10, payments) * np.power(10, exponent, dtype=np.int64)
    return PaymentBatch.from_arrays(
        participant_bics(participants),
        CURRENCIES,
        payer=payer,
        payee=payee,
        currency=rng.integers(0, len(CURRENCIES), payments),
        amount_minor=amount,
        priority=rng.integers(0, 3, payments),
    )


def as_legs(batch: PaymentBatch) -> NettingLegs:
    """The batch as one leg per payment, between holders that are (participant, currency)."""
    columns = len(batch.currencies)
    holders = len(batch.participants) * columns
    return NettingLegs.from_arrays(
        range(holders),
        [(bic, code) for bic in batch.participants for code in batch.currencies],
        holder_group=np.arange(holders, dtype=np.int64),
        instruction=np.arange(len(batch), dtype=np.int64),
        debit=batch.payer * columns + batch.currency,
        credit=batch.payee * columns + batch.currency,
        amount_minor=batch.amount_minor,
        priority=batch.priority,
    )


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def run(payments: int, participants: int, seed: int) -> dict[str, object]:
    batch, build_s = timed(make_batch, payments, participants, seed)
    positions, multilateral_s = timed(multilateral_net, batch)
    pairs, bilateral_s = timed(bilateral_net, batch)
    caps = {
        (batch.participants[p], batch.currencies[c]): int(positions.outgoing_minor[p, c]) // 4
        for p in range(len(batch.participants))
        for c in range(len(batch.currencies))
    }
    capped, capped_s = timed(net_with_caps, batch, caps)
    legs, legs_build_s = timed(as_legs, batch)
    by_legs, legs_s = timed(net_legs, legs, {}, caps)
    if by_legs.deferral_order.tolist() != capped.deferral_order.tolist():
        raise SystemExit("net_legs and net_with_caps deferred different payments")
    liquidity = positions.liquidity()
    gross = sum(need.gross_minor for need in liquidity.values())
    net = sum(need.net_debit_minor for need in liquidity.values())
    bilateral = sum(pairs.liquidity_minor().values())
    return {
        "benchmark": "netting",
        "payments": payments,
        "participants": participants,
        "currencies": len(CURRENCIES),
        "batch_build_and_validate_s": round(build_s, 3),
        "multilateral_net_s": round(multilateral_s, 3),
        "bilateral_net_s": round(bilateral_s, 3),
        "net_with_caps_s": round(capped_s, 3),
        "legs_build_and_validate_s": round(legs_build_s, 3),
        "net_legs_s": round(legs_s, 3),
        "target_multilateral_s": 1.0,
        "deferred_payments": len(capped.deferred),
        "deferral_rounds": capped.rounds,
        # Liquidity, summed over currencies in minor units (a mix of currencies: a size, not a sum
        # of money), and the shares of gross each netting needs.
        "gross_minor": gross,
        "bilateral_net_share": round(bilateral / gross, 4),
        "multilateral_net_share": round(net / gross, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 payments")
    parser.add_argument("--payments", type=int, default=None)
    parser.add_argument("--participants", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    payments = args.payments or (100_000 if args.quick else 1_000_000)
    print(json.dumps(run(payments, args.participants, args.seed), indent=2))


if __name__ == "__main__":
    main()
