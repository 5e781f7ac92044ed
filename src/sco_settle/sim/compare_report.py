"""The comparison's report: CSV tables, one JSON file, PNG charts and one self-contained HTML page.

Byte for byte the same for the same comparison: every table is built in a fixed order, JSON keys
are sorted, no file holds a wall-clock time or the software's version, and the charts use
``sim.plots``' deterministic rendering (Agg, fixed size and dpi, no varying PNG text chunk).
The page embeds the charts as ``data:`` URLs and loads nothing (``default-src 'none'``).
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable
from pathlib import Path

from sco_settle.payments.modes import Mode
from sco_settle.sim.compare import (
    CLEARING_UNION,
    Comparison,
    Lsm,
    RunFigures,
    Tally,
    position_bp,
)
from sco_settle.sim.compare_plots import write_charts
from sco_settle.sim.measures import Bounds, Liquidity, Scope
from sco_settle.sim.report import Table, decimal_text, write_csv

SWAP_FACILITY = "swap_line_facility"  # ``sim.report.Mechanism.SWAP_FACILITY``
DEFINITIONS = (
    ("gross", "the sum of what payers pay in a currency (each payment valued at the mid rates)"),
    (
        "multilateral net",
        "for each participant, its net debit in a currency over the day (paid minus received,"
        " when positive), summed over participants and days: the multilateral net",
    ),
    (
        "liquidity used",
        "for each participant, its largest cumulative net debit over the day in the order"
        " payments settled (payments settled in one chain together - an LSM chain, a netting"
        " cycle - count together), summed over participants and days",
    ),
    (
        "upper bound",
        "BoF-PSS2: liquidity used if every payment of the workload settled alone at its arrival"
        " in RTGS with no queue: each participant's largest cumulative net outflow over the day",
    ),
    (
        "lower bound",
        "BoF-PSS2: liquidity used if all of a day's payments settled together at its end: each"
        " participant's end-of-day multilateral net debit (the net of the whole workload)",
    ),
    (
        "position",
        "where liquidity used falls between the workload's bounds, in basis points: 0 at the"
        " lower bound, 10,000 at the upper; outside 0..10,000 when a mode settled fewer payments"
        " (rejections) or delayed a payer's incoming payments past its outgoing ones",
    ),
    (
        "own bounds, own position",
        "the same bounds computed on the payments a run settled (its multilateral net is its own"
        " lower bound), and where its liquidity used falls between them",
    ),
    ("delay", "from a payment's arrival to its settlement, settled payments only, seconds"),
    (
        "swap-line use",
        "cross-border value converted by central banks' swap-line-funded facilities; tranches"
        " drawn during the run; the busiest line side's peak drawn in bp of its agreed size",
    ),
    (
        "union credit",
        "a clearing-union member's largest debit position at any cycle's end, in the unit's"
        " minor units (XSC, 4 decimals), against its swing limit",
    ),
)


def run_metrics(run: RunFigures, comparison: Comparison, scope: Scope) -> dict[str, int]:
    """One run's headline for one scope, in a fixed order (every figure is an integer)."""
    figures = run.scopes[scope]
    bounds = comparison.bounds_cny[scope]
    used = figures.liquidity_cny.used_minor
    position = position_bp(used, bounds)
    submitted, settled = figures.submitted, figures.settled
    metrics = {
        "submitted_count": submitted.count,
        "submitted_value_cny_minor": submitted.value_cny_minor,
        "settled_count": settled.count,
        "settled_value_cny_minor": settled.value_cny_minor,
        "settled_count_bp": _bp(settled.count, submitted.count),
        "settled_value_bp": _bp(settled.value_cny_minor, submitted.value_cny_minor),
        "rejected_count": submitted.count - settled.count,
        "delay_mean_s": figures.delays.mean_s,
        "delay_p50_s": figures.delays.p50_s,
        "delay_p95_s": figures.delays.p95_s,
        "gross_cny_minor": figures.liquidity_cny.gross_minor,
        "multilateral_net_cny_minor": figures.liquidity_cny.net_minor,
        "liquidity_used_cny_minor": used,
        "lower_bound_cny_minor": bounds.lower_minor,
        "upper_bound_cny_minor": bounds.upper_minor,
        "position_bp": -1 if position is None else position,
        "own_upper_bound_cny_minor": figures.liquidity_cny.upper_minor,
        "own_position_bp": _own_position(figures.liquidity_cny),
    }
    if scope is not Scope.DOMESTIC:
        carried = run.carried_by
        metrics["swap_facility_value_cny_minor"] = carried.get(
            SWAP_FACILITY, Tally()
        ).value_cny_minor
        metrics["union_value_cny_minor"] = carried.get(CLEARING_UNION, Tally()).value_cny_minor
    return metrics


def _own_position(liquidity: Liquidity) -> int:
    """``position_bp`` against the bounds of the payments the run settled (its own ``net`` and
    upper bound); -1 when they coincide."""
    own = Bounds(liquidity.gross_minor, liquidity.net_minor, liquidity.upper_minor)
    position = position_bp(liquidity.used_minor, own)
    return -1 if position is None else position


def _bp(part: int, whole: int) -> int:
    return part * 10_000 // whole if whole else 0


def _run_cells(run: RunFigures) -> tuple[str, str, str, str]:
    return (run.label, run.mode.value, run.lsm.value if run.lsm else "", run.stress)


def modes_table(comparison: Comparison) -> Table:
    """Every run's headline, for each scope; plus swap-line and union-credit use."""
    names = list(run_metrics(comparison.runs[0], comparison, Scope.ALL))
    table = Table(
        (
            "run",
            "mode",
            "lsm",
            "stress",
            "scope",
            *names,
            "tranches_drawn",
            "swap_line_peak_bp_max",
            "union_credit_peak_minor",
            "ledger_verified",
        )
    )
    for run in comparison.runs:
        credit = sum(use.peak_used_minor for use in run.union_credit)
        for scope in Scope:
            metrics = run_metrics(run, comparison, scope)
            cells = [metrics.get(name, "") for name in names]
            lines = run.swap_lines
            table.rows.append(
                (
                    *_run_cells(run),
                    scope.value,
                    *cells,
                    lines.tranches_drawn,
                    lines.peak_bp_max,
                    credit,
                    int(run.ledger_verified),
                )
            )
    return table


def bounds_table(comparison: Comparison) -> Table:
    table = Table(("scope", "currency", "gross_minor", "lower_bound_minor", "upper_bound_minor"))
    for scope in Scope:
        for code, bounds in comparison.bounds[scope].items():
            table.rows.append(
                (scope.value, code, bounds.gross_minor, bounds.lower_minor, bounds.upper_minor)
            )
        total = comparison.bounds_cny[scope]
        table.rows.append(
            (scope.value, "CNY-equivalent", total.gross_minor, total.lower_minor, total.upper_minor)
        )
    return table


def liquidity_table(comparison: Comparison) -> Table:
    """Per run, scope and currency: gross, net, used, the bounds and the position."""
    table = Table(
        (
            "run",
            "scope",
            "currency",
            "gross_minor",
            "multilateral_net_minor",
            "liquidity_used_minor",
            "lower_bound_minor",
            "upper_bound_minor",
            "position_bp",
            "own_upper_bound_minor",
        )
    )
    for run in comparison.runs:
        for scope in Scope:
            bounds = comparison.bounds[scope]
            for code, use in run.scopes[scope].liquidity.items():
                found = bounds[code]  # a settled payment is a payment of the workload
                position = position_bp(use.used_minor, found)
                table.rows.append(
                    (
                        run.label,
                        scope.value,
                        code,
                        use.gross_minor,
                        use.net_minor,
                        use.used_minor,
                        found.lower_minor,
                        found.upper_minor,
                        "" if position is None else position,
                        use.upper_minor,
                    )
                )
    return table


def rejections_table(comparison: Comparison) -> Table:
    table = Table(("run", "scope", "reason", "count", "value_cny_minor"))
    for run in comparison.runs:
        for scope in Scope:
            for reason, tally in run.scopes[scope].rejected.items():
                table.rows.append(
                    (run.label, scope.value, reason, tally.count, tally.value_cny_minor)
                )
    return table


def directions_table(comparison: Comparison) -> Table:
    table = Table(
        (
            "run",
            "direction",
            "submitted_count",
            "submitted_value_cny_minor",
            "settled_count",
            "settled_value_cny_minor",
        )
    )
    for run in comparison.runs:
        for direction, (submitted, settled) in run.directions.items():
            table.rows.append(
                (
                    run.label,
                    direction,
                    submitted.count,
                    submitted.value_cny_minor,
                    settled.count,
                    settled.value_cny_minor,
                )
            )
    return table


def union_credit_table(comparison: Comparison) -> Table:
    table = Table(("run", "member", "unit", "swing_limit_minor", "peak_used_minor", "peak_bp"))
    for run in comparison.runs:
        for use in run.union_credit:
            bp = _bp(use.peak_used_minor, use.swing_limit_minor)
            table.rows.append(
                (run.label, use.member, use.unit, use.swing_limit_minor, use.peak_used_minor, bp)
            )
    return table


def lsm_table(comparison: Comparison) -> Table:
    """RTGS with the LSM off, on, and on with FIFO bypass: liquidity used and what the
    mechanism saved against off, per scope (the same seed and workload)."""
    table = Table(
        ("lsm", "scope", "settled_count", "liquidity_used_cny_minor", "saved_vs_off_cny_minor")
    )
    off = comparison.baseline(Mode.RTGS, Lsm.OFF)
    if off is None:
        return table
    for lsm in Lsm:
        run = comparison.baseline(Mode.RTGS, lsm)
        if run is None:
            continue
        for scope in Scope:
            used = run.scopes[scope].liquidity_cny.used_minor
            saved = off.scopes[scope].liquidity_cny.used_minor - used
            table.rows.append(
                (lsm.value, scope.value, run.scopes[scope].settled.count, used, saved)
            )
    return table


def stress_delta_table(comparison: Comparison) -> Table:
    """Each stressed run against its mode's baseline: every headline metric per scope, and the
    settled value of every direction."""
    table = Table(("stress", "mode", "scope", "metric", "baseline", "stressed", "delta"))
    for run in comparison.runs:
        base = comparison.baseline(run.mode) if run.stress else None
        if base is None:
            continue
        for scope, metric, before, after in _deltas(base, run, comparison):
            table.rows.append(
                (run.stress, run.mode.value, scope, metric, before, after, after - before)
            )
    return table


def _deltas(
    base: RunFigures, run: RunFigures, comparison: Comparison
) -> Iterable[tuple[str, str, int, int]]:
    for scope in Scope:
        before = run_metrics(base, comparison, scope)
        after = run_metrics(run, comparison, scope)
        for name, value in after.items():
            yield scope.value, name, before[name], value
    for direction, (_, settled) in run.directions.items():
        before_settled = base.directions[direction][1]
        name = f"settled_value_cny_minor[{direction}]"
        yield "direction", name, before_settled.value_cny_minor, settled.value_cny_minor


def comparison_json(comparison: Comparison) -> str:
    """Everything the tables hold, as one document (sorted keys, integers and strings only)."""
    options = comparison.options
    document = {
        "options": {
            "days": options.days,
            "seed": options.seed,
            "scale": decimal_text(comparison.scale),
            "national_share": "calibration"
            if options.national_share is None
            else decimal_text(options.national_share),
            "retail": options.retail,
            "stresses": list(options.stresses),
        },
        "definitions": dict(DEFINITIONS),
        "tables": {name: _rows(table) for name, table in tables(comparison).items()},
    }
    return json.dumps(document, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def _rows(table: Table) -> list[dict[str, object]]:
    return [dict(zip(table.header, row, strict=True)) for row in table.rows]


def tables(comparison: Comparison) -> dict[str, Table]:
    return {
        "modes": modes_table(comparison),
        "bounds": bounds_table(comparison),
        "liquidity": liquidity_table(comparison),
        "lsm": lsm_table(comparison),
        "rejections": rejections_table(comparison),
        "directions": directions_table(comparison),
        "union_credit": union_credit_table(comparison),
        "stress_delta": stress_delta_table(comparison),
    }


FEN_PER_M_CNY = 10**8
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_STYLE = (
    "body{font-family:sans-serif;max-width:75rem;margin:1rem auto;padding:0 1rem;color:#1a202c}"
    "table{border-collapse:collapse;margin:.5rem 0 1.5rem}th,td{border:1px solid #cbd5e0;"
    "padding:.2rem .5rem;text-align:right}th:first-child,td:first-child{text-align:left}"
    "caption{text-align:left;font-weight:bold}img{max-width:100%}dt{font-weight:bold}"
)
_HEADLINE = (
    ("settled_value_bp", "settled value, %", 100),
    ("settled_count", "settled", 0),
    ("rejected_count", "rejected", 0),
    ("liquidity_used_cny_minor", "liquidity used, CNY m", FEN_PER_M_CNY),
    ("lower_bound_cny_minor", "lower bound, CNY m", FEN_PER_M_CNY),
    ("upper_bound_cny_minor", "upper bound, CNY m", FEN_PER_M_CNY),
    ("position_bp", "position, %", 100),
    ("own_position_bp", "own position, %", 100),
    ("delay_mean_s", "delay mean, s", 0),
    ("delay_p50_s", "p50, s", 0),
    ("delay_p95_s", "p95, s", 0),
)
_STRESS_METRICS = ("settled_value_cny_minor", "liquidity_used_cny_minor", "delay_p95_s")


def _shown(value: object, divisor: int) -> str:
    if not isinstance(value, int) or not divisor:
        return f"{value:,}" if isinstance(value, int) else str(value)
    sign = "-" if value < 0 else ""
    whole, rest = divmod(abs(value) * 100 // divisor, 100)
    return f"{sign}{whole:,}.{rest:02d}"


def _html_table(caption: str, header: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    head = "".join(f"<th scope=col>{html.escape(str(cell))}</th>" for cell in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f"<table><caption>{html.escape(caption)}</caption><tr>{head}</tr>{body}</table>"


def _headline_html(comparison: Comparison) -> str:
    parts = []
    for scope in (Scope.CROSS_BORDER, Scope.DOMESTIC, Scope.ALL):
        rows = []
        for run in comparison.runs:
            if run.stress:
                continue
            metrics = run_metrics(run, comparison, scope)
            rows.append([run.label, *(_shown(metrics[k], d) for k, _, d in _HEADLINE)])
        header = ["run", *(text for _, text, _ in _HEADLINE)]
        parts.append(_html_table(f"Modes, {scope.value} payments", header, rows))
    return "".join(parts)


def _stress_html(comparison: Comparison) -> str:
    """The stress table's headline metrics, and the directions whose settled value moved."""
    rows = []
    for run in comparison.runs:
        base = comparison.baseline(run.mode) if run.stress else None
        if base is None:
            continue
        for scope, metric, before, after in _deltas(base, run, comparison):
            moved = scope == "direction" and before != after
            if metric in _STRESS_METRICS or moved:
                cells = (_shown(v, _divisor(metric)) for v in (before, after, after - before))
                rows.append([run.stress, run.mode.value, scope, metric, *cells])
    header = ["stress", "mode", "scope", "metric", "baseline", "stressed", "delta"]
    return _html_table("Stress scenarios against each mode's baseline", header, rows)


def _divisor(metric: str) -> int:
    return FEN_PER_M_CNY if "cny_minor" in metric else 0


def _figure_html(path: Path, text: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(text)}" src="data:image/png;base64,{data}"></figure>'


def page(comparison: Comparison, charts: list[tuple[Path, str]]) -> str:
    options = comparison.options
    definitions = "".join(
        f"<dt>{html.escape(name)}</dt><dd>{html.escape(text)}</dd>" for name, text in DEFINITIONS
    )
    lsm = lsm_table(comparison)
    credit = union_credit_table(comparison)
    bounds = bounds_table(comparison)
    sections = [
        f"<h1>SCO Settle: settlement modes compared (seed {options.seed}, {options.days} day(s),"
        f" scale {decimal_text(comparison.scale)})</h1>",
        "<p>One workload, every mode. Amounts in CNY at the calibration's mid rates"
        " (assumptions of the simulation, see docs/simulator.md). Every figure is in the CSV and"
        " JSON files next to this page.</p>",
        f"<h2>Definitions</h2><dl>{definitions}</dl>",
        "<h2>Modes</h2>",
        _headline_html(comparison),
        "<h2>Charts</h2>",
        "".join(_figure_html(path, text) for path, text in charts),
        "<h2>Bounds (BoF-PSS2), per currency</h2>",
        _html_table("Bounds of the workload, minor units", bounds.header, bounds.rows),
        "<h2>Liquidity-saving mechanism</h2>",
        _html_table("RTGS, LSM off and on, CNY fen", lsm.header, lsm.rows),
        "<h2>Clearing-union credit</h2>",
        _html_table("Union credit used per member", credit.header, credit.rows),
        "<h2>Stress scenarios</h2>",
        _stress_html(comparison),
    ]
    body = "\n".join(sections)
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>SCO Settle: modes compared</title><style>{_STYLE}</style></head>"
        f"<body>\n{body}\n</body></html>\n"
    )


_CHART_TEXT = {
    "liquidity_vs_bounds.png": "Liquidity used per mode against the lower and upper bounds",
    "settled_share.png": "Settled share of value per mode, cross-border and domestic",
    "delays.png": "Delay from arrival to settlement per mode, p50 and p95",
    "stress_settled.png": "Change in settled cross-border value under each stress scenario",
}


def write_comparison(comparison: Comparison, directory: Path) -> list[Path]:
    """Every file of the report into ``directory``: CSV tables, comparison.json, the charts and
    compare.html."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in tables(comparison).items():
        path = directory / f"{name}.csv"
        write_csv(table, path)
        written.append(path)
    document = directory / "comparison.json"
    document.write_text(comparison_json(comparison), encoding="utf-8")
    charts = write_charts(comparison, directory)
    report = directory / "compare.html"
    report.write_text(page(comparison, [(c, _CHART_TEXT[c.name]) for c in charts]), "utf-8")
    return [*written, document, *charts, report]
