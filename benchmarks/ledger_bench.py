"""Ledger throughput benchmark: prints JSON figures.

10,000 accounts; batches of 8,190 transfers; a uniform mix (random debit and credit accounts) and
a hot-account mix (80 % of transfers touch one of 10 hot accounts); durable SQLite (WAL,
synchronous=FULL, one fsync'd commit per batch) and the pure in-memory store.

    python benchmarks/ledger_bench.py            # full run (1,000,000 transfers per case)
    python benchmarks/ledger_bench.py --quick    # under 30 s
    python benchmarks/ledger_bench.py --profile  # also print a cProfile of one durable run

Transfers are built before the clock starts, as a client would send them; the timed part is
``Ledger.create_transfers`` (prefetch, apply, durable commit).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sco_settle.domain.account import Account, AccountFlags
from sco_settle.domain.transfer import Transfer
from sco_settle.ledger import BATCH_EVENTS_MAX, Ledger
from sco_settle.storage import MemoryStore, SqliteStore

ACCOUNTS = 10_000
HOT_ACCOUNTS = 10
HOT_SHARE = 0.8
ISSUANCE_ID = 1
FIRST_ACCOUNT_ID = 100


def make_ledger(store_kind: str, directory: Path) -> Ledger:
    store = MemoryStore() if store_kind == "memory" else SqliteStore(directory / "bench.db")
    return populate(Ledger(store))


def populate(ledger: Ledger) -> Ledger:
    """The benchmark's accounts: one issuance account and 10,000 funded settlement accounts."""
    constrained = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
    accounts = [Account(ISSUANCE_ID, "PBOCCNBJ", "CNY", "issuance")]
    accounts += [
        Account(FIRST_ACCOUNT_ID + i, "BKCHCNBJ", "CNY", "settlement", flags=constrained)
        for i in range(ACCOUNTS)
    ]
    for start in range(0, len(accounts), BATCH_EVENTS_MAX):
        results = ledger.create_accounts(accounts[start : start + BATCH_EVENTS_MAX])
        assert all(r == "ok" for r in results), set(results)
    funding = [
        Transfer(10**30 + i, ISSUANCE_ID, FIRST_ACCOUNT_ID + i, 10**13) for i in range(ACCOUNTS)
    ]
    for start in range(0, len(funding), BATCH_EVENTS_MAX):
        results = ledger.create_transfers(funding[start : start + BATCH_EVENTS_MAX])
        assert all(r == "ok" for r in results), set(results)
    return ledger


def make_batches(mix: str, transfers: int, seed: int) -> list[list[Transfer]]:
    rng = random.Random(seed)
    ids = rng.sample(range(1, 10**12), transfers)  # Random ids: the realistic index load.
    batches: list[list[Transfer]] = []
    batch: list[Transfer] = []
    for transfer_id in ids:
        debit = rng.randrange(ACCOUNTS)
        credit = rng.randrange(ACCOUNTS - 1)
        if mix == "hot" and rng.random() < HOT_SHARE:
            hot = rng.randrange(HOT_ACCOUNTS)
            if rng.random() < 0.5:
                debit = hot
            else:
                credit = hot
        if credit >= debit:
            credit += 1
        if credit == debit or credit >= ACCOUNTS:
            credit = (debit + 1) % ACCOUNTS
        batch.append(
            Transfer(
                transfer_id,
                FIRST_ACCOUNT_ID + debit,
                FIRST_ACCOUNT_ID + credit,
                rng.randrange(1, 100_000),
                code=1,
            )
        )
        if len(batch) == BATCH_EVENTS_MAX:
            batches.append(batch)
            batch = []
    if batch:
        batches.append(batch)
    return batches


def run_case(store_kind: str, mix: str, transfers: int, profile: bool) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as directory:
        ledger = make_ledger(store_kind, Path(directory))
        batches = make_batches(mix, transfers, seed=42)
        latencies_ms: list[float] = []
        profiler = cProfile.Profile() if profile else None
        started = time.perf_counter()
        for batch in batches:
            batch_started = time.perf_counter()
            if profiler:
                profiler.enable()
            results = ledger.create_transfers(batch)
            if profiler:
                profiler.disable()
            latencies_ms.append((time.perf_counter() - batch_started) * 1000)
            assert results.count("ok") == len(batch), set(results)
        elapsed = time.perf_counter() - started
        ledger.state.check_totals()
        ledger.close()
    latencies_ms.sort()
    figures: dict[str, object] = {
        "store": store_kind,
        "mix": mix,
        "transfers": transfers,
        "batch_size": BATCH_EVENTS_MAX,
        "seconds": round(elapsed, 3),
        "transfers_per_s": round(transfers / elapsed),
        "batch_latency_ms_p50": round(statistics.median(latencies_ms), 2),
        "batch_latency_ms_p99": round(latencies_ms[int(0.99 * (len(latencies_ms) - 1))], 2),
    }
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
        print(out.getvalue(), file=sys.stderr)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a run under 30 seconds")
    parser.add_argument("--transfers", type=int, help="transfers per case")
    parser.add_argument("--profile", action="store_true", help="cProfile the durable run (stderr)")
    args = parser.parse_args()
    transfers = args.transfers or (100_000 if args.quick else 1_000_000)
    cases = []
    for store_kind in ("sqlite", "memory"):
        for mix in ("uniform", "hot"):
            profile = args.profile and store_kind == "sqlite" and mix == "uniform"
            figures = run_case(store_kind, mix, transfers, profile)
            print(json.dumps(figures), file=sys.stderr, flush=True)
            cases.append(figures)
    durable = [c["transfers_per_s"] for c in cases if c["store"] == "sqlite"]
    print(
        json.dumps(
            {
                "benchmark": "ledger",
                "accounts": ACCOUNTS,
                "target_durable_transfers_per_s": 100_000,
                "durable_transfers_per_s_min": min(durable),  # type: ignore[type-var]
                "cases": cases,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
