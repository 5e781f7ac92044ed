"""The SCO Settle simulator: calibrated, seeded payment traffic through the payment engine.

``simulate`` runs one configuration (and, with a scenario, the baseline with the same seed),
then writes CSV tables and PNG charts. Layers: ``calibration`` (figures and exact FX) ->
``workload`` (payments) -> ``run`` (clock, engine, ledger, verification) -> ``report`` (tables,
metrics, deltas) -> ``plots``. See docs/simulator.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from sco_settle.network import load_network
from sco_settle.payments.network_view import Scenario
from sco_settle.sim.calibration import Calibration, Rates, load_calibration
from sco_settle.sim.plots import scenario_comparison, write_plots
from sco_settle.sim.report import (
    Report,
    Table,
    build_report,
    scenario_delta,
    write_csv,
    write_tables,
)
from sco_settle.sim.run import ScenarioError, SimOptions, SimResult, parse_scenario, run_simulation

__all__ = [
    "Outcome",
    "ScenarioError",
    "SimOptions",
    "parse_scenario",
    "simulate",
]

LabelledProgress = Callable[[str, int, int], None]


@dataclass
class Outcome:
    baseline: Report
    scenario: Report | None
    delta: Table | None
    files: list[Path]
    verdicts: list[tuple[str, bool, str]]  # (run label, ledger verified, text)


def simulate(
    options: SimOptions,
    out: Path,
    *,
    calibration: Calibration | None = None,
    progress: LabelledProgress | None = None,
) -> Outcome:
    """Run, report, and write ``out``: flat for one run; baseline/, scenario/ and the deltas when
    a scenario is given (the baseline then runs in memory, the scenario on ``options.db``)."""
    calibration = calibration or load_calibration()
    network = load_network("sco")
    rates = Rates.load(calibration.usd_cny)
    stressed = options.scenario != Scenario()
    runs: list[tuple[str, SimOptions]] = []
    if stressed:
        runs.append(("baseline", replace(options, scenario=Scenario(), scenario_specs=(), db=None)))
        runs.append(("scenario", options))
    else:
        runs.append(("baseline", options))
    reports: list[Report] = []
    files: list[Path] = []
    verdicts: list[tuple[str, bool, str]] = []
    for label, run_options in runs:
        result = _run(label, run_options, calibration, progress)
        report = build_report(result, calibration, network, rates)
        directory = out / label if stressed else out
        directory.mkdir(parents=True, exist_ok=True)
        files += write_tables(report, directory) + write_plots(report, directory)
        reports.append(report)
        verdicts.append((label, result.verify_ok, result.verify_text))
    delta = None
    if stressed:
        delta = scenario_delta(reports[0], reports[1])
        write_csv(delta, out / "scenario_delta.csv")
        files.append(out / "scenario_delta.csv")
        files.append(scenario_comparison(reports[0], reports[1], out / "scenario_delta.png"))
    return Outcome(reports[0], reports[1] if stressed else None, delta, files, verdicts)


def _run(
    label: str,
    options: SimOptions,
    calibration: Calibration,
    progress: LabelledProgress | None,
) -> SimResult:
    def step(done: int, total: int) -> None:
        if progress is not None:
            progress(label, done, total)

    return run_simulation(options, calibration, step)
