"""``sco-settle simulate``: parse options, show progress, print the summary. The work is in sim/."""

from __future__ import annotations

import time
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

if TYPE_CHECKING:  # Imported where used, so that the other commands start fast.
    from sco_settle.sim import Outcome
    from sco_settle.sim.report import Report

FEN_PER_M_CNY = 10**8
_HEADLINE = (
    ("payments_submitted", "payments submitted", None),
    ("payments_settled", "payments settled", None),
    ("payments_rejected", "payments rejected", None),
    ("unsettled_at_close", "still queued at close (then TM01)", None),
    ("settled_value_cny_minor", "value settled, CNY m", FEN_PER_M_CNY),
    ("rejected_value_cny_minor", "value rejected, CNY m", FEN_PER_M_CNY),
    ("liquidity_gross_cny_minor", "liquidity gross, CNY m", FEN_PER_M_CNY),
    ("liquidity_used_cny_minor", "liquidity used (LSM peak / DNS net), CNY m", FEN_PER_M_CNY),
    ("liquidity_saved_bp", "liquidity saved, %", 100),
    ("payments_waited", "payments that waited", None),
    ("waited_delay_p50_s", "delay of those, p50 (s)", None),
    ("waited_delay_p99_s", "delay of those, p99 (s)", None),
    ("swap_line_peak_bp_max", "busiest swap line at peak, %", 100),
)


def _fraction(text: str, name: str, *, at_most_one: bool) -> Fraction:
    """A decimal option as an exact Fraction: positive, and at most 1 for a share."""
    try:
        value = Fraction(Decimal(text))
    except (ArithmeticError, ValueError) as error:
        raise typer.BadParameter(f"{text!r} is not a decimal number", param_hint=name) from error
    if at_most_one and not 0 <= value <= 1:
        raise typer.BadParameter(f"{text} must be in 0 .. 1", param_hint=name)
    if not at_most_one and value <= 0:
        raise typer.BadParameter(f"{text} must be positive", param_hint=name)
    return value


def _shown(value: object, divisor: int | None) -> str:
    if divisor is None or not isinstance(value, int):
        return f"{value:,}" if isinstance(value, int) else str(value)
    return f"{Decimal(value) / Decimal(divisor):,.2f}"


def _count(report: Report, key: str) -> int:
    """A headline or rejection metric of ``report`` (0 if absent): these are all counts."""
    value = report.metrics.get(key, 0)
    assert isinstance(value, int), (key, value)
    return value


def _summary(outcome: Outcome, console: Console) -> None:
    reports = [("baseline", outcome.baseline)]
    if outcome.scenario is not None:
        reports.append(("scenario", outcome.scenario))
    metrics = outcome.baseline.metrics
    table = Table(
        title=f"SCO Settle simulation: {metrics['mode']}, {metrics['days']} day(s),"
        f" seed {metrics['seed']}, scale {metrics['scale']}"
    )
    table.add_column("metric")
    for label, _ in reports:
        table.add_column(label, justify="right")
    if outcome.scenario is not None:
        table.add_column("delta", justify="right")
    for key, text, divisor in _HEADLINE:
        cells = [_shown(report.metrics.get(key, 0), divisor) for _, report in reports]
        if outcome.scenario is not None:
            before = _count(outcome.baseline, key)
            after = _count(outcome.scenario, key)
            cells.append(_shown(after - before, divisor))
        table.add_row(text, *cells)
    reasons = sorted({k for _, r in reports for k in r.metrics if k.startswith("rejected[")})
    for key in reasons:
        cells = [_shown(report.metrics.get(key, 0), None) for _, report in reports]
        if outcome.scenario is not None:
            before = _count(outcome.baseline, key)
            cells.append(_shown(_count(outcome.scenario, key) - before, None))
        table.add_row(f"rejected {key[9:-1]}", *cells)
    console.print(table)


def _compare(
    days: int,
    seed: int,
    shares: tuple[str | None, str | None],
    psp: bool,
    specs: tuple[str, ...],
    out: Path,
) -> None:
    """``simulate --compare``: run the comparison with progress bars, write its report
    (``--scenario`` specs replace the default stresses; docs/simulator.md, "Comparing modes")."""
    from sco_settle.sim.compare import CompareOptions, run_comparison
    from sco_settle.sim.compare_report import write_comparison
    from sco_settle.sim.run import ScenarioError
    from sco_settle.sim.stress import DEFAULT_STRESSES

    options = CompareOptions(
        days=days,
        seed=seed,
        scale=None if shares[0] is None else _fraction(shares[0], "--scale", at_most_one=False),
        national_share=None
        if shares[1] is None
        else _fraction(shares[1], "--national-share", at_most_one=True),
        retail=psp,
        stresses=specs or DEFAULT_STRESSES,
    )
    console = Console(soft_wrap=True)
    started = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeRemainingColumn(), console=console, transient=True) as bar:
        runs = bar.add_task("runs", total=None)
        minutes = bar.add_task("simulated minutes", total=None)

        def progress(label: str, number: int, total_runs: int, done: int, total: int) -> None:
            bar.update(runs, description=f"run {label}", completed=number - 1, total=total_runs)
            bar.update(minutes, completed=done, total=total)

        try:
            comparison = run_comparison(options, progress)
        except ScenarioError as error:
            raise typer.BadParameter(str(error), param_hint="--scenario") from error
    files = write_comparison(comparison, out)
    for run in comparison.runs:
        if not run.ledger_verified:
            console.print(f"ledger ({run.label}): {run.verify_text}")
    console.print(
        f"Compared {len(comparison.runs)} runs; wrote {len(files)} files to {out}/"
        f" (open {out / 'compare.html'}) in {time.perf_counter() - started:.1f} s."
    )
    if not all(run.ledger_verified for run in comparison.runs):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``simulate`` command to ``app``."""
    app.command()(simulate)


def simulate(
    days: Annotated[int, typer.Option(min=1, max=366, help="Simulated business days.")] = 1,
    seed: Annotated[int, typer.Option(min=0, help="Random seed (same seed, same files).")] = 7,
    mode: Annotated[str, typer.Option(help="rtgs, dns or union.")] = "rtgs",
    scale: Annotated[
        str | None, typer.Option(help="Share of the calibrated daily value (default 1).")
    ] = None,
    db: Annotated[Path | None, typer.Option(help="SQLite ledger file (replaced).")] = None,
    out: Annotated[Path, typer.Option(help="Directory for CSV and PNG files.")] = Path("sim-out"),
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            help="bank-failure:BIC, swapline-exhausted:CN-KZ or corridor-cut:CN-KZ (repeatable;"
            " all apply together)."
        ),
    ] = None,
    national_share: Annotated[
        str | None,
        typer.Option(help="Share of every corridor paid in national currencies (0..1)."),
    ] = None,
    psp: Annotated[
        bool, typer.Option(help="Payment-service providers' retail flows, netted and settled.")
    ] = True,
    compare: Annotated[
        bool, typer.Option(help="Every mode and stress on one workload: one report (docs).")
    ] = False,
) -> None:
    """Simulate calibrated SCO trade payments; write CSV, PNG and a summary."""
    if db is not None:
        from sco_settle.sim.run import replace_refusal

        refusal = replace_refusal(db)
        if refusal:
            raise typer.BadParameter(refusal, param_hint="--db")
    if compare:  # --mode and --db do not apply: every mode runs, in memory.
        return _compare(days, seed, (scale, national_share), psp, tuple(scenario or ()), out)
    from sco_settle.network import load_network
    from sco_settle.payments.modes import Mode
    from sco_settle.sim import ScenarioError, SimOptions, parse_scenario
    from sco_settle.sim import simulate as run

    if mode not in {m.value for m in Mode}:
        raise typer.BadParameter(f"must be one of {', '.join(Mode)}", param_hint="--mode")
    specs = tuple(scenario or ())
    try:
        stress = parse_scenario(specs, load_network("sco"))
    except ScenarioError as error:
        raise typer.BadParameter(str(error), param_hint="--scenario") from error
    options = SimOptions(
        days=days,
        seed=seed,
        mode=Mode(mode),
        scale=None if scale is None else _fraction(scale, "--scale", at_most_one=False),
        national_share=None
        if national_share is None
        else _fraction(national_share, "--national-share", at_most_one=True),
        db=db,
        scenario=stress,
        scenario_specs=specs,
        retail=psp,
    )
    console = Console(soft_wrap=True)
    started = time.perf_counter()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("simulated minutes"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total)
            bar.update(tasks[label], completed=done)

        outcome = run(options, out, progress=progress)
    _summary(outcome, console)
    for label, _, text in outcome.verdicts:
        console.print(f"ledger ({label}): {text}")
    console.print(
        f"Wrote {len(outcome.files)} files to {out}/ in {time.perf_counter() - started:.1f} s."
    )
    if not all(ok for _, ok, _ in outcome.verdicts):
        raise typer.Exit(1)
