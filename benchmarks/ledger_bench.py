"""Ledger throughput benchmark: prints JSON figures, every path side by side in one run.

10,000 accounts; batches of 8,190 transfers; a uniform mix (random debit and credit accounts) and
a hot-account mix (80 % of transfers touch one of 10 hot accounts). Stores and engines:

- ``sqlite``: the default, the reference engine on SQLite (WAL, synchronous=FULL, one fsync'd
  commit per batch);
- ``log``: the compiled engine (``FastLedger``) on the log store (one fdatasync'd append per
  batch), fed ``Transfer`` tuples; ``log-columns``: the same fed ``TransferColumns`` (numpy
  struct-of-arrays, as a client sending packed batches would);
- ``naive``: a naive Python + SQLite ledger (a dict of balances, one INSERT per transfer into a
  table keyed by id, one fsync'd transaction per batch): the baseline the issue compares with;
- ``memory``: the reference engine on the in-memory store; ``log-memory`` and
  ``log-memory-columns``: the compiled engine without a file.

After the durable ``log`` case the log is reopened, and the recovery time (load every record,
rebuild the indexes, check the invariants) is reported with the file's size.

    python benchmarks/ledger_bench.py            # full run (1,000,000 transfers per case)
    python benchmarks/ledger_bench.py --quick    # 100,000 per case, under a minute
    python benchmarks/ledger_bench.py --profile  # also print a cProfile of one durable run

Transfers are built before the clock starts, as a client would send them; the timed part is
``Ledger.create_transfers`` (prefetch, apply, durable commit).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sco_settle.domain.account import Account, AccountFlags
from sco_settle.domain.transfer import Transfer
from sco_settle.ledger import BATCH_EVENTS_MAX, Ledger
from sco_settle.ledger.columnar import TransferColumns
from sco_settle.ledger.fast import FastLedger
from sco_settle.storage import MemoryStore, SqliteStore
from sco_settle.storage.log import LogStore

ACCOUNTS = 10_000
HOT_ACCOUNTS = 10
HOT_SHARE = 0.8
ISSUANCE_ID = 1
FIRST_ACCOUNT_ID = 100


STORES = {
    "sqlite": lambda directory: SqliteStore(directory / "bench.db"),
    "memory": lambda directory: MemoryStore(),
    "log": lambda directory: LogStore(directory / "bench.log"),
    "log-columns": lambda directory: LogStore(directory / "bench.log"),
    "log-memory": lambda directory: LogStore(None),
    "log-memory-columns": lambda directory: LogStore(None),
}


def make_ledger(store_kind: str, directory: Path) -> Ledger:
    return populate(Ledger(STORES[store_kind](directory)))


class NaiveLedger:
    """The baseline: what a developer writes in an afternoon with Python and SQLite."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            "CREATE TABLE transfers (id INTEGER PRIMARY KEY, debit INTEGER, credit INTEGER,"
            " amount INTEGER, ts INTEGER)"
        )
        self.balances: dict[int, int] = {}  # account -> credits - debits
        self.limited: set[int] = set()

    def create_account(self, account_id: int, limited: bool) -> None:
        self.balances[account_id] = 0
        if limited:
            self.limited.add(account_id)

    def create_transfers(self, batch: list[Transfer]) -> list[str]:
        results, rows, now = [], [], time.time_ns()
        for t in batch:
            if t.debit_account not in self.balances or t.credit_account not in self.balances:
                results.append("account_not_found")
            elif t.debit_account in self.limited and self.balances[t.debit_account] < t.amount:
                results.append("exceeds_credits")
            else:
                self.balances[t.debit_account] -= t.amount
                self.balances[t.credit_account] += t.amount
                rows.append((t.id, t.debit_account, t.credit_account, t.amount, now))
                results.append("ok")
        self.db.execute("BEGIN")
        self.db.executemany("INSERT INTO transfers VALUES (?,?,?,?,?)", rows)
        self.db.execute("COMMIT")
        return results


def make_naive(directory: Path) -> NaiveLedger:
    naive = NaiveLedger(directory / "naive.db")
    naive.create_account(ISSUANCE_ID, limited=False)
    for i in range(ACCOUNTS):
        naive.create_account(FIRST_ACCOUNT_ID + i, limited=True)
    funding = [
        Transfer(10**15 + i, ISSUANCE_ID, FIRST_ACCOUNT_ID + i, 10**13) for i in range(ACCOUNTS)
    ]
    for start in range(0, len(funding), BATCH_EVENTS_MAX):
        naive.create_transfers(funding[start : start + BATCH_EVENTS_MAX])
    return naive


def as_columns(batch: list[Transfer]) -> TransferColumns:
    return TransferColumns.from_arrays(
        [t.id for t in batch],
        [t.debit_account for t in batch],
        [t.credit_account for t in batch],
        [t.amount for t in batch],
        codes=[t.code for t in batch],
    )


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
        path = Path(directory)
        batches = make_batches(mix, transfers, seed=42)
        columns = store_kind.endswith("columns")
        naive = store_kind == "naive"
        ledger: Ledger | None = None
        driver: NaiveLedger | None = None
        if naive:
            driver = make_naive(path)
            send = driver.create_transfers
        else:
            ledger = make_ledger(store_kind, path)
            if columns:
                assert isinstance(ledger, FastLedger)
                fast = ledger
                payloads = [as_columns(batch) for batch in batches]
                batches = payloads  # type: ignore[assignment]

                def send(batch: TransferColumns) -> list[str]:
                    failed = fast.create_transfers_columns(batch).any()
                    return ["failed"] if failed else ["ok"] * len(batch)

            else:
                send = ledger.create_transfers  # type: ignore[assignment]
        latencies_ms: list[float] = []
        profiler = cProfile.Profile() if profile else None
        started = time.perf_counter()
        for batch in batches:
            batch_started = time.perf_counter()
            if profiler:
                profiler.enable()
            results = send(batch)  # type: ignore[arg-type]
            if profiler:
                profiler.disable()
            latencies_ms.append((time.perf_counter() - batch_started) * 1000)
            assert results.count("ok") == len(batch), set(results)
        elapsed = time.perf_counter() - started
        recovery: dict[str, object] = {}
        if ledger is not None:
            ledger.state.check_totals()
            ledger.close()
            if store_kind in ("log", "log-columns"):
                size = (path / "bench.log").stat().st_size
                opened = time.perf_counter()
                reopened = Ledger(LogStore(path / "bench.log"))
                recovery = {
                    "recovery_s": round(time.perf_counter() - opened, 3),
                    "log_mb": round(size / 2**20, 1),
                    "recovered_transfers": reopened.tables.n_tr,  # type: ignore[attr-defined]
                }
                reopened.close()
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
        **recovery,
    }
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
        print(out.getvalue(), file=sys.stderr)
    return figures


def warm_up() -> None:
    """Load (or compile, after an install) the compiled engine before any clock starts."""
    with tempfile.TemporaryDirectory() as directory:
        ledger = Ledger(LogStore(Path(directory) / "warm.log"))
        ledger.create_accounts([Account(1, "PBOCCNBJ", "CNY", "issuance")])
        ledger.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 transfers per case")
    parser.add_argument("--transfers", type=int, help="transfers per case")
    parser.add_argument("--profile", action="store_true", help="cProfile the durable run (stderr)")
    parser.add_argument(
        "--stores",
        default="sqlite,log,log-columns,naive,memory,log-memory,log-memory-columns",
        help="comma-separated cases",
    )
    args = parser.parse_args()
    transfers = args.transfers or (100_000 if args.quick else 1_000_000)
    warm_up()
    cases = []
    for mix in ("uniform", "hot"):
        for store_kind in args.stores.split(","):
            profile = args.profile and store_kind in ("sqlite", "log") and mix == "uniform"
            figures = run_case(store_kind, mix, transfers, profile)
            print(json.dumps(figures), file=sys.stderr, flush=True)
            cases.append(figures)

    def rate(store: str, mix: str) -> int | None:
        found = [c["transfers_per_s"] for c in cases if c["store"] == store and c["mix"] == mix]
        return found[0] if found else None  # type: ignore[return-value]

    ratios = {}
    for mix in ("uniform", "hot"):
        log, sqlite, naive = rate("log", mix), rate("sqlite", mix), rate("naive", mix)
        fast_memory, memory = rate("log-memory", mix), rate("memory", mix)
        ratios[mix] = {
            "log_vs_sqlite": round(log / sqlite, 2) if log and sqlite else None,
            "log_vs_naive": round(log / naive, 2) if log and naive else None,
            "log_vs_tigerbeetle_134k": round(log / 134_000, 2) if log else None,
            "log_memory_vs_memory": round(fast_memory / memory, 2)
            if fast_memory and memory
            else None,
            "log_memory_vs_1m_target": round(fast_memory / 1_000_000, 2) if fast_memory else None,
        }
    durable = [c["transfers_per_s"] for c in cases if c["store"] in ("log", "sqlite")]
    print(
        json.dumps(
            {
                "benchmark": "ledger",
                "accounts": ACCOUNTS,
                "cpus": os.cpu_count(),
                "target_durable_transfers_per_s": 134_000,
                "target_memory_transfers_per_s": 1_000_000,
                "durable_transfers_per_s_min": min(durable) if durable else None,  # type: ignore[type-var]
                "ratios": ratios,
                "cases": cases,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
