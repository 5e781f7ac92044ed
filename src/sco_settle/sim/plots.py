"""PNG charts of a simulation report: byte-identical for the same report.

Determinism: Agg rendering (``Figure`` without pyplot, so no global backend or figure state), a
fixed figure size and dpi, fixed colours and font, and no text chunk that varies
(``metadata={"Software": None}`` drops the matplotlib version; PNGs carry no time).
Amounts arrive as integers and become floats here only to be drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sco_settle.payments.modes import Mode
from sco_settle.sim.report import Report

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

FIGSIZE_IN = (8.0, 5.0)
DPI = 100
FEN_PER_BN_CNY = 10**11
_RC: dict[RcKeyType, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "svg.hashsalt": "sco-settle",
    "path.simplify": True,
}
SETTLED, REJECTED, GROSS, USED, EOD = "#2b6cb0", "#c53030", "#a0aec0", "#2f855a", "#d69e2e"


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=DPI, format="png", metadata={"Software": None})
    return path


def _figure() -> tuple[Figure, Axes]:
    figure = Figure(figsize=FIGSIZE_IN, dpi=DPI)
    return figure, figure.add_subplot(1, 1, 1)


def value_by_corridor(report: Report, path: Path) -> Path:
    with rc_context(_RC):
        figure, axes = _figure()
        labels = [label for label, _, _ in report.corridor_values]
        settled = [value / FEN_PER_BN_CNY for _, value, _ in report.corridor_values]
        rejected = [value / FEN_PER_BN_CNY for _, _, value in report.corridor_values]
        positions = range(len(labels))
        axes.barh(positions, settled, color=SETTLED, label="settled")
        axes.barh(positions, rejected, left=settled, color=REJECTED, label="rejected")
        axes.set_yticks(list(positions), labels)
        axes.invert_yaxis()
        axes.set_xlabel("value, CNY bn (mid-rate equivalent)")
        axes.set_title("Value by corridor (payer > payee)")
        axes.legend(loc="lower right")
        return _save(figure, path)


def liquidity(report: Report, path: Path) -> Path:
    used_label = "net per cycle (DNS)" if report.mode is Mode.DNS else "peak with LSM (RTGS)"
    with rc_context(_RC):
        figure, axes = _figure()
        codes = [code for code, _, _ in report.liquidity_cny]
        gross = [value / FEN_PER_BN_CNY for _, value, _ in report.liquidity_cny]
        used = [value / FEN_PER_BN_CNY for _, _, value in report.liquidity_cny]
        positions = list(range(len(codes)))
        axes.bar([p - 0.2 for p in positions], gross, width=0.4, color=GROSS, label="gross")
        axes.bar([p + 0.2 for p in positions], used, width=0.4, color=USED, label=used_label)
        axes.set_xticks(positions, codes)
        axes.set_ylabel("liquidity, CNY bn (mid-rate equivalent)")
        axes.set_title("Liquidity needed: gross vs used, per currency")
        axes.legend(loc="upper right")
        return _save(figure, path)


def queue_delay(report: Report, path: Path) -> Path:
    with rc_context(_RC):
        figure, axes = _figure()
        minutes = [seconds / 60 for seconds in report.waited_delays_s]
        if minutes:
            axes.hist(minutes, bins=40, color=SETTLED)
        else:
            axes.text(0.5, 0.5, "no payment waited", ha="center", transform=axes.transAxes)
        axes.set_xlabel("delay from submission to settlement, minutes")
        axes.set_ylabel("payments")
        axes.set_title(f"Delay of the {len(minutes)} payments that waited")
        return _save(figure, path)


def swap_lines(report: Report, path: Path) -> Path:
    with rc_context(_RC):
        figure, axes = _figure()
        labels = [label for label, _, _, _ in report.swap_lines]
        peak = [100 * drawn / limit for _, limit, drawn, _ in report.swap_lines]
        eod = [100 * drawn / limit for _, limit, _, drawn in report.swap_lines]
        positions = list(range(len(labels)))
        axes.barh([p - 0.2 for p in positions], peak, height=0.4, color=SETTLED, label="peak")
        axes.barh([p + 0.2 for p in positions], eod, height=0.4, color=EOD, label="end of run")
        axes.set_yticks(positions, labels)
        axes.invert_yaxis()
        axes.set_xlabel("drawn, % of the agreed size")
        axes.set_title("PBOC swap-line utilisation")
        axes.legend(loc="lower right")
        return _save(figure, path)


def scenario_comparison(baseline: Report, scenario: Report, path: Path) -> Path:
    """Settled value per corridor direction, baseline next to scenario."""
    before = {label: value for label, value, _ in baseline.corridor_values}
    after = {label: value for label, value, _ in scenario.corridor_values}
    labels = list(before) + [label for label in after if label not in before]
    with rc_context(_RC):
        figure, axes = _figure()
        positions = list(range(len(labels)))
        axes.barh(
            [p - 0.2 for p in positions],
            [before.get(label, 0) / FEN_PER_BN_CNY for label in labels],
            height=0.4,
            color=GROSS,
            label="baseline",
        )
        axes.barh(
            [p + 0.2 for p in positions],
            [after.get(label, 0) / FEN_PER_BN_CNY for label in labels],
            height=0.4,
            color=REJECTED,
            label="scenario",
        )
        axes.set_yticks(positions, labels)
        axes.invert_yaxis()
        axes.set_xlabel("settled value, CNY bn (mid-rate equivalent)")
        axes.set_title("Settled value by corridor: baseline vs scenario")
        axes.legend(loc="lower right")
        return _save(figure, path)


def write_plots(report: Report, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    return [
        value_by_corridor(report, directory / "value_by_corridor.png"),
        liquidity(report, directory / "liquidity.png"),
        queue_delay(report, directory / "queue_delay.png"),
        swap_lines(report, directory / "swap_lines.png"),
    ]
