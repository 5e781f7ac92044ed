"""Ledger throughput on the PostgreSQL store: prints JSON figures, like ``ledger_bench.py``.

Same load as ``ledger_bench.py`` (10,000 accounts; batches of 8,190 transfers with random ids; a
uniform and a hot-account mix), committed durably (``synchronous_commit=on``, one transaction per
batch) into a fresh schema that is dropped afterwards.

    python benchmarks/ledger_bench_postgres.py             # 1,000,000 transfers per case
    python benchmarks/ledger_bench_postgres.py --quick     # 100,000 transfers per case
    python benchmarks/ledger_bench_postgres.py --dsn postgresql://postgres@127.0.0.1/test

The DSN defaults to SCO_TEST_POSTGRES_DSN, then to postgresql://postgres@127.0.0.1:5432/test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import psycopg
from psycopg import sql

from ledger_bench import (
    ACCOUNTS,
    make_batches,
    populate,
)
from sco_settle.ledger import BATCH_EVENTS_MAX, Ledger
from sco_settle.storage.postgres import PostgresStore

DSN_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"


def make_ledger(dsn: str, schema: str) -> Ledger:
    return populate(Ledger(PostgresStore(dsn, schema=schema)))


def drop_schema(dsn: str, schema: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )


def run_case(dsn: str, mix: str, transfers: int) -> dict[str, object]:
    schema = f"sco_bench_{os.getpid()}_{mix}"
    drop_schema(dsn, schema)
    try:
        ledger = make_ledger(dsn, schema)
        batches = make_batches(mix, transfers, seed=42)
        latencies_ms: list[float] = []
        started = time.perf_counter()
        for batch in batches:
            batch_started = time.perf_counter()
            results = ledger.create_transfers(batch)
            latencies_ms.append((time.perf_counter() - batch_started) * 1000)
            assert results.count("ok") == len(batch), set(results)
        elapsed = time.perf_counter() - started
        ledger.state.check_totals()
        ledger.close()
    finally:
        drop_schema(dsn, schema)
    latencies_ms.sort()
    return {
        "store": "postgres",
        "mix": mix,
        "transfers": transfers,
        "batch_size": BATCH_EVENTS_MAX,
        "seconds": round(elapsed, 3),
        "transfers_per_s": round(transfers / elapsed),
        "batch_latency_ms_p50": round(statistics.median(latencies_ms), 2),
        "batch_latency_ms_p99": round(latencies_ms[int(0.99 * (len(latencies_ms) - 1))], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 transfers per case")
    parser.add_argument("--transfers", type=int, help="transfers per case")
    parser.add_argument("--dsn", default=os.environ.get("SCO_TEST_POSTGRES_DSN", DSN_DEFAULT))
    args = parser.parse_args()
    transfers = args.transfers or (100_000 if args.quick else 1_000_000)
    cases = []
    for mix in ("uniform", "hot"):
        figures = run_case(args.dsn, mix, transfers)
        print(json.dumps(figures), file=sys.stderr, flush=True)
        cases.append(figures)
    print(
        json.dumps(
            {
                "benchmark": "ledger_postgres",
                "accounts": ACCOUNTS,
                "durable_transfers_per_s_min": min(c["transfers_per_s"] for c in cases),  # type: ignore[type-var]
                "cases": cases,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
