"""PNG charts of a comparison: byte-identical for the same comparison.

Rendered as ``sim.plots`` renders (its rc settings, figure size, dpi and PNG save without a
varying text chunk). Amounts arrive as integers and become floats here only to be drawn.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib import rc_context
from matplotlib.figure import Figure

from sco_settle.sim.compare import Comparison, RunFigures
from sco_settle.sim.measures import Scope
from sco_settle.sim.plots import _RC, DPI, FEN_PER_BN_CNY, FIGSIZE_IN, _figure, _save

BAR, LOWER, UPPER, SECOND = "#2b6cb0", "#2f855a", "#c53030", "#d69e2e"


def baselines(comparison: Comparison) -> list[RunFigures]:
    return [run for run in comparison.runs if not run.stress]


def liquidity_vs_bounds(comparison: Comparison, path: Path) -> Path:
    """Liquidity used by each baseline run against the workload's bounds, per scope."""
    runs = baselines(comparison)
    with rc_context(_RC):
        figure = Figure(figsize=(FIGSIZE_IN[0] * 1.5, FIGSIZE_IN[1]), dpi=DPI)
        for index, scope in enumerate((Scope.CROSS_BORDER, Scope.DOMESTIC)):
            axes = figure.add_subplot(1, 2, index + 1)
            used = [r.scopes[scope].liquidity_cny.used_minor / FEN_PER_BN_CNY for r in runs]
            positions = list(range(len(runs)))
            axes.bar(positions, used, color=BAR, label="liquidity used")
            bounds = comparison.bounds_cny[scope]
            axes.axhline(bounds.lower_minor / FEN_PER_BN_CNY, color=LOWER, label="lower bound")
            axes.axhline(bounds.upper_minor / FEN_PER_BN_CNY, color=UPPER, label="upper bound")
            axes.set_xticks(positions, [r.label for r in runs], rotation=20, ha="right")
            axes.set_ylabel("CNY bn (mid-rate equivalent)")
            axes.set_title(f"Liquidity used, {scope.value} payments")
            axes.legend(loc="lower right")
        return _save(figure, path)


def settled_share(comparison: Comparison, path: Path) -> Path:
    """Settled share of value per baseline run, cross-border and domestic side by side."""
    runs = baselines(comparison)
    with rc_context(_RC):
        figure, axes = _figure()
        positions = list(range(len(runs)))
        for offset, scope, colour in (
            (-0.2, Scope.CROSS_BORDER, BAR),
            (0.2, Scope.DOMESTIC, SECOND),
        ):
            shares = [_share_percent(r, scope) for r in runs]
            axes.bar(
                [p + offset for p in positions], shares, width=0.4, color=colour, label=scope.value
            )
        axes.set_xticks(positions, [r.label for r in runs], rotation=20, ha="right")
        axes.set_ylabel("settled, % of submitted value")
        axes.set_ylim(0, 105)
        axes.set_title("Settled share of value per mode")
        axes.legend(loc="lower right")
        return _save(figure, path)


def _share_percent(run: RunFigures, scope: Scope) -> float:
    figures = run.scopes[scope]
    submitted = figures.submitted.value_cny_minor
    return 100 * figures.settled.value_cny_minor / submitted if submitted else 0.0


def delays(comparison: Comparison, path: Path) -> Path:
    """Delay from arrival to settlement (p50 and p95) per baseline run, all payments."""
    runs = baselines(comparison)
    with rc_context(_RC):
        figure, axes = _figure()
        positions = list(range(len(runs)))
        p50 = [r.scopes[Scope.ALL].delays.p50_s / 60 for r in runs]
        p95 = [r.scopes[Scope.ALL].delays.p95_s / 60 for r in runs]
        axes.bar([p - 0.2 for p in positions], p50, width=0.4, color=BAR, label="p50")
        axes.bar([p + 0.2 for p in positions], p95, width=0.4, color=SECOND, label="p95")
        axes.set_xticks(positions, [r.label for r in runs], rotation=20, ha="right")
        axes.set_ylabel("minutes from arrival to settlement")
        axes.set_title("Delay per mode")
        axes.legend(loc="upper left")
        return _save(figure, path)


def stress_settled(comparison: Comparison, path: Path) -> Path:
    """Change of settled cross-border value under each stress, per mode, against its baseline."""
    labels: list[str] = []
    changes: list[float] = []
    for run in comparison.runs:
        base = comparison.baseline(run.mode) if run.stress else None
        if base is None:
            continue
        after = run.scopes[Scope.CROSS_BORDER].settled.value_cny_minor
        before = base.scopes[Scope.CROSS_BORDER].settled.value_cny_minor
        labels.append(run.label)
        changes.append((after - before) / FEN_PER_BN_CNY)
    with rc_context(_RC):
        figure, axes = _figure()
        positions = list(range(len(labels)))
        axes.barh(positions, changes, color=[UPPER if c < 0 else LOWER for c in changes])
        axes.set_yticks(positions, labels)
        axes.invert_yaxis()
        axes.axvline(0, color="#4a5568")
        axes.set_xlabel("settled cross-border value vs baseline, CNY bn")
        axes.set_title("Stress scenarios: change in settled value")
        return _save(figure, path)


def write_charts(comparison: Comparison, directory: Path) -> list[Path]:
    return [
        liquidity_vs_bounds(comparison, directory / "liquidity_vs_bounds.png"),
        settled_share(comparison, directory / "settled_share.png"),
        delays(comparison, directory / "delays.png"),
        stress_settled(comparison, directory / "stress_settled.png"),
    ]
