"""``sco-settle dst``: deterministic simulation testing. Options, progress and the summary here;
the runs are in ``dst/``.

This module is also the composition root of a run: it hands the simulation the server's real
idempotency records (``server.idempotency``), which the ``dst`` package may not import.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Annotated, Any, cast

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from sco_settle.dst import FAULT_KINDS, IdempotencyWiring, SeedResult, replay_command, run_seed
from sco_settle.dst.run import STEPS

IDEMPOTENCY_TTL_SECONDS = 24 * 3600  # the server's default (``ServerConfig``)


def server_idempotency(ttl_seconds: int = IDEMPOTENCY_TTL_SECONDS) -> IdempotencyWiring:
    """The server's ``IdempotencyStore`` over a simulated node's state database, reading the
    simulated clock where it reads ``time.time``."""
    from sco_settle.server import idempotency
    from sco_settle.server.errors import ApiError

    @contextmanager
    def wall_clock(now: Callable[[], float]) -> Iterator[None]:
        real = idempotency.time
        idempotency.time = cast(Any, SimpleNamespace(time=now))
        try:
            yield
        finally:
            idempotency.time = real

    return IdempotencyWiring(
        open=lambda db: idempotency.IdempotencyStore(cast(Any, db), ttl_seconds),
        answer=idempotency.StoredResponse,
        refused=(ApiError,),
        wall_clock=wall_clock,
    )


def summary_line(results: list[SeedResult], seconds: float) -> str:
    faults: Counter[str] = Counter()
    for result in results:
        faults.update(result.faults)
    injected = ", ".join(f"{kind} {faults[kind]:,}" for kind in FAULT_KINDS if faults[kind])
    failures = sum(1 for result in results if not result.ok)
    seeds = f"{len(results):,} seed{'' if len(results) == 1 else 's'}"
    return (
        f"dst: {seeds}, {sum(r.steps for r in results):,} steps,"
        f" {sum(r.requests for r in results):,} requests,"
        f" {sum(r.checks for r in results):,} audits, faults: {injected or 'none'};"
        f" restarts {sum(r.restarts for r in results):,}; failures {failures}"
        f" ({seconds:.1f} s)"
    )


def dst(
    seeds: Annotated[int, typer.Option(help="How many seeds to run.", min=1)] = 1,
    seed: Annotated[int, typer.Option(help="The first seed (alone: replay that seed).")] = 0,
    steps: Annotated[int, typer.Option(help="Steps per seed.", min=1)] = STEPS,
    trace: Annotated[bool, typer.Option(help="Print each run's trace.")] = False,
    carry_on: Annotated[
        bool,
        typer.Option(
            help="Run on after a failed write, as the server does today, instead of restarting."
        ),
    ] = False,
) -> None:
    """Run seeds of the whole write path under simulated faults; exit 1 on any failure."""
    console = Console(stderr=True)
    wiring = server_idempotency()
    results: list[SeedResult] = []
    started = time.process_time()
    with Progress(
        TextColumn("dst"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("seeds", total=seeds, failed=0)
        for number in range(seed, seed + seeds):
            result = run_seed(number, wiring, steps=steps, carry_on=carry_on)
            results.append(result)
            if trace:
                progress.console.print("\n".join(result.trace), markup=False, highlight=False)
            failed = sum(1 for r in results if not r.ok)
            progress.update(task, advance=1, failed=failed)
    for result in results:
        if not result.ok:
            typer.echo(f"seed {result.seed} FAILED: {result.failure}")
            typer.echo(f"  replay: {replay_command(result.seed, steps, carry_on=carry_on)}")
    typer.echo(summary_line(results, time.process_time() - started))
    if seeds == 1:
        typer.echo(f"seed {seed} digest {results[0].digest}")
    if any(not result.ok for result in results):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("dst")(dst)
