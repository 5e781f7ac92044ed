"""`sco-settle demo`: the SCO network, funded, then N transfers, a progress bar and a summary.

The workload is seeded and integer-only: amounts are drawn digit-length first (10^2 .. 10^9 minor
units, so sizes are heavy-tailed) and then uniformly within that decade. It mixes plain transfers,
two-phase transfers (pending, then posted or voided in the next batch) and linked pairs (a chain
A -> B -> C that settles as a whole), among settlement and vostro accounts of the same currency.
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from sco_settle.domain.account import AccountFlags, AccountKind
from sco_settle.domain.money import format_minor_amount
from sco_settle.domain.results import CreateTransferResult
from sco_settle.domain.transfer import Transfer, TransferFlags
from sco_settle.ledger import BATCH_EVENTS_MAX, Ledger
from sco_settle.ledger.invariants import VerifyReport, verify
from sco_settle.network import load_network
from sco_settle.storage import SqliteStore

_FUNDED_KINDS = {AccountKind.SETTLEMENT.value, AccountKind.VOSTRO.value}
_PENDING_TIMEOUT_SECONDS = 3600


def run_demo(db: Path, transfers: int, seed: int, console: Console) -> None:
    from sco_settle.network.install import install_network

    network = load_network("sco")
    ledger = Ledger(SqliteStore(db))
    try:
        install_network(ledger, network)
        by_currency = _transfer_accounts(ledger)
        console.print(
            f"Network [bold]sco[/]: {len(network.participants)} participants,"
            f" {len(ledger.state.accounts)} accounts, {len(by_currency)} currencies; running"
            f" {transfers:,} transfers (seed {seed})."
        )
        outcome, elapsed = _run_workload(ledger, by_currency, transfers, seed)
    finally:
        ledger.close()
    verify_started = time.perf_counter()
    store = SqliteStore(db, readonly=True)
    try:
        report = verify(store)
    finally:
        store.close()
    verify_seconds = time.perf_counter() - verify_started
    _print_summary(console, outcome, elapsed, report, verify_seconds)


def _transfer_accounts(ledger: Ledger) -> dict[str, list[int]]:
    """Accounts that may move money: funded settlement and vostro accounts, by currency."""
    constrained = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
    by_currency: dict[str, list[int]] = defaultdict(list)
    for state in sorted(ledger.accounts(), key=lambda s: s.id):
        if state.account.kind in _FUNDED_KINDS and state.flags & constrained:
            by_currency[state.currency].append(state.id)
    return {currency: ids for currency, ids in sorted(by_currency.items()) if len(ids) >= 2}


class _Outcome:
    def __init__(self) -> None:
        self.results: Counter[str] = Counter()
        self.volume: Counter[str] = Counter()
        self.count: Counter[str] = Counter()
        self.events = 0


def _run_workload(
    ledger: Ledger, by_currency: dict[str, list[int]], transfers: int, seed: int
) -> tuple[_Outcome, float]:
    rng = random.Random(seed)
    currencies = list(by_currency)
    outcome = _Outcome()
    next_id = 1 << 64  # Demo ids live above the network's hashed range boundary for readability.
    pending_to_resolve: list[Transfer] = []
    progress = Progress(
        TextColumn("[bold]transfers"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    started = time.perf_counter()
    with progress:
        task = progress.add_task("transfers", total=transfers, rate="")
        done = 0
        while done < transfers:
            batch: list[Transfer] = []
            room = min(BATCH_EVENTS_MAX, transfers - done)
            for pending in pending_to_resolve[:room]:
                flag = (
                    TransferFlags.POST_PENDING if rng.random() < 0.7 else TransferFlags.VOID_PENDING
                )
                batch.append(Transfer(next_id, flags=int(flag), pending_id=pending.id, code=2))
                next_id += 1
            pending_to_resolve = []
            while len(batch) < room:
                currency = currencies[rng.randrange(len(currencies))]
                accounts = by_currency[currency]
                roll = rng.random()
                if roll < 0.10 and len(accounts) >= 3 and len(batch) + 2 <= room:
                    first, second, third = rng.sample(accounts, 3)
                    amount = _amount(rng)
                    batch.append(
                        Transfer(next_id, first, second, amount, int(TransferFlags.LINKED), code=1)
                    )
                    batch.append(Transfer(next_id + 1, second, third, amount, code=1))
                    next_id += 2
                    continue
                debit, credit = rng.sample(accounts, 2)
                if roll < 0.20:
                    pending = Transfer(
                        next_id,
                        debit,
                        credit,
                        _amount(rng),
                        int(TransferFlags.PENDING),
                        timeout=_PENDING_TIMEOUT_SECONDS,
                        code=1,
                    )
                    batch.append(pending)
                    pending_to_resolve.append(pending)
                else:
                    batch.append(Transfer(next_id, debit, credit, _amount(rng), code=1))
                next_id += 1
            results = ledger.create_transfers(batch)
            _tally(outcome, ledger, batch, results)
            pending_ok = {t.id for t, r in zip(batch, results, strict=True) if r == "ok"}
            pending_to_resolve = [p for p in pending_to_resolve if p.id in pending_ok]
            done += len(batch)
            rate = done / (time.perf_counter() - started)
            progress.update(task, completed=min(done, transfers), rate=f"{rate:,.0f}/s")
    return outcome, time.perf_counter() - started


def _amount(rng: random.Random) -> int:
    digits = rng.randrange(2, 10)
    return rng.randrange(10**digits, 10 ** (digits + 1))


def _tally(
    outcome: _Outcome, ledger: Ledger, batch: list[Transfer], results: list[CreateTransferResult]
) -> None:
    outcome.events += len(batch)
    for transfer, result in zip(batch, results, strict=True):
        outcome.results[str(result)] += 1
        if result == "ok" and not transfer.flags & TransferFlags.PENDING:
            state = (
                ledger.lookup_account(transfer.debit_account) if transfer.debit_account else None
            )
            if state is not None and transfer.amount:
                outcome.volume[state.currency] += transfer.amount
                outcome.count[state.currency] += 1


def _print_summary(
    console: Console,
    outcome: _Outcome,
    elapsed: float,
    report: VerifyReport,
    verify_seconds: float,
) -> None:
    table = Table(title="SCO Settle demo")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("transfers submitted", f"{outcome.events:,}")
    table.add_row("seconds", f"{elapsed:.2f}")
    table.add_row("transfers/s (durable, SQLite WAL + fsync)", f"{outcome.events / elapsed:,.0f}")
    for result, count in outcome.results.most_common():
        table.add_row(f"result: {result}", f"{count:,}")
    table.add_row(
        "invariant check (sco-settle verify)",
        "[green]OK[/]" if report.ok else f"[red]FAILED: {report.violation}[/]",
    )
    table.add_row("verify seconds", f"{verify_seconds:.2f}")
    console.print(table)
    totals = Table(title="Per currency: value moved by plain and linked transfers; ledger totals")
    for column in ("currency", "transfers", "value moved", "total posted debits = credits"):
        totals.add_column(column, justify="right")
    for currency, (posted, _pending) in report.currencies.items():
        if not outcome.count.get(currency):
            continue
        totals.add_row(
            currency,
            f"{outcome.count.get(currency, 0):,}",
            format_minor_amount(outcome.volume.get(currency, 0), currency),
            format_minor_amount(posted, currency),
        )
    console.print(totals)
