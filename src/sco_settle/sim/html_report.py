"""A simulation as one page: the CSV files of ``sco-settle simulate --out`` rendered as a single,
self-contained HTML file (``sco-settle report SIM_OUT_DIR``).

Self-contained means the page loads nothing. plotly.js (from the installed ``plotly`` package),
the page's own script and every chart's data are inlined. The page's Content-Security-Policy
allows no source at all, only the two inline scripts by their hashes, so the page opens from a
file, offline, or as a mail attachment, and shows the same charts everywhere.

The page is built from the CSV files alone, never from the run that wrote them: a directory from
another machine or an older run renders the same way. Each file is checked as it is read (its
columns, and integers where integers belong). A problem raises ``ReportError``, whose message
is one line naming the file and the line. The same directory gives the same bytes, because the page
holds no wall-clock time.

Amounts stay integers (minor units, as the CSV files hold them) in the tables. They become floats
only in the charts' data (CNY millions, percentages, minutes), to be drawn.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import jinja2

from sco_settle.sim.report import COLUMNS

__all__ = ["ReportError", "read_output", "render_report", "write_report"]

_HERE = Path(__file__).resolve().parent
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(_HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)
CSV_BYTES_MAX = 64 * 1024 * 1024  # a year of days at scale 1 is far below this
FEN_PER_M_CNY = 10**8
NOWRAP_CHARS_MAX = 32
_INTEGER = re.compile(r"-?[0-9]+")
# Colours of the charts' marks: each has at least 3:1 contrast against the white background
# (WCAG 2.1, 1.4.11 non-text contrast), and settled/rejected differ in lightness, not only in hue.
SETTLED, REJECTED, USED, SAVED, PEAK, EOD = (
    "#2b6cb0",
    "#c53030",
    "#2f855a",
    "#718096",
    "#2b6cb0",
    "#975a16",
)
DELAY_COLOURS = ("#2b6cb0", "#2f855a", "#975a16", "#c53030")


class ReportError(Exception):
    """A report that cannot be made: an input file is missing or malformed, or the output cannot
    be written. The message is one line, naming the file (and the line)."""


@dataclass(frozen=True, slots=True)
class FileSpec:
    """What one CSV file must hold: its columns (in order) and which of them are integers."""

    columns: tuple[str, ...]
    integers: tuple[str, ...] = ()
    blank_ok: tuple[str, ...] = ()  # integer columns that may be empty
    required: bool = True


_COUNTS = (
    "submitted",
    "settled",
    "rejected",
    "submitted_value_cny_minor",
    "settled_value_cny_minor",
    "rejected_value_cny_minor",
)
# The columns ``sim/report.py`` writes (``COLUMNS``, stated there once), and which of them hold
# numbers.
SPECS: dict[str, FileSpec] = {
    "summary": FileSpec(COLUMNS["summary"]),
    "corridors": FileSpec(COLUMNS["corridors"], _COUNTS),
    "tiers": FileSpec(COLUMNS["tiers"], _COUNTS),
    "liquidity": FileSpec(
        COLUMNS["liquidity"],
        ("gross_minor", "peak_minor", "net_minor", "used_minor", "saved_minor", "saved_bp"),
        blank_ok=("net_minor",),  # RTGS runs have no net figure
    ),
    "delays": FileSpec(COLUMNS["delays"], ("count", "p50_s", "p90_s", "p99_s", "max_s")),
    "rejections": FileSpec(COLUMNS["rejections"], ("count", "value_cny_minor")),
    "swap_lines": FileSpec(
        COLUMNS["swap_lines"],
        ("limit_minor", "peak_drawn_minor", "eod_drawn_minor", "peak_bp", "eod_bp"),
    ),
    "cycles": FileSpec(
        COLUMNS["cycles"],
        ("day", "cycle", "settled", "deferred", "gross_minor", "net_minor"),
        required=False,  # DNS runs only
    ),
    "calibration": FileSpec(COLUMNS["calibration"], ("daily_usd_cents",)),
    # Written since the FX-provider release; older runs lack them.
    "mechanisms": FileSpec(COLUMNS["mechanisms"], ("count", "value_cny_minor"), required=False),
    "fx_providers": FileSpec(COLUMNS["fx_providers"], ("income_minor",), required=False),
    "tranches": FileSpec(
        COLUMNS["tranches"],
        ("day", "principal_minor", "interest_minor_in_drawer_currency"),
        required=False,
    ),
    # Written when the run carried payment-service providers' retail flows.
    "psp": FileSpec(
        COLUMNS["psp"],
        tuple(column for column in COLUMNS["psp"] if column != "provider"),
        required=False,
    ),
    "psp_pairs": FileSpec(
        COLUMNS["psp_pairs"],
        tuple(column for column in COLUMNS["psp_pairs"] if column == "day" or "_minor" in column),
        required=False,
    ),
}
DELTA_SPEC = FileSpec(("metric", "baseline", "scenario", "delta"))
SUMMARY_KEYS = ("mode", "days", "seed", "scale")


@dataclass(frozen=True, slots=True)
class CsvTable:
    """One CSV file as read: its header and its rows of text cells, checked against its spec."""

    name: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def records(self) -> list[dict[str, str]]:
        return [dict(zip(self.header, row, strict=True)) for row in self.rows]


@dataclass(frozen=True, slots=True)
class Run:
    """The files of one run: the whole directory, or its ``baseline/`` or ``scenario/``."""

    label: str  # "" for a plain run; "baseline" or "scenario"
    tables: dict[str, CsvTable]

    @property
    def metrics(self) -> dict[str, str]:
        return dict((row[0], row[1]) for row in self.tables["summary"].rows)


def read_csv(path: Path, spec: FileSpec, name: str) -> CsvTable:
    """Read and check one CSV file; every problem is a one-line ``ReportError``."""
    try:
        size = path.stat().st_size
        if size > CSV_BYTES_MAX:
            raise ReportError(f"{path}: {size} bytes, more than {CSV_BYTES_MAX}")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(f"{path}: missing (sco-settle simulate writes it)") from None
    except UnicodeDecodeError:
        raise ReportError(f"{path}: not UTF-8 text") from None
    except OSError as error:
        raise ReportError(f"{path}: cannot read: {error.strerror}") from None
    try:
        lines = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as error:
        raise ReportError(f"{path}: not CSV: {error}") from None
    if not lines:
        raise ReportError(f"{path}: empty; expected the header {','.join(spec.columns)}")
    header = tuple(lines[0])
    if header != spec.columns:
        raise ReportError(
            f"{path}: line 1: header is {','.join(header)}; expected {','.join(spec.columns)}"
        )
    rows = []
    for number, cells in enumerate(lines[1:], start=2):
        if len(cells) != len(header):
            raise ReportError(f"{path}: line {number}: {len(cells)} cells; expected {len(header)}")
        for column in spec.integers:
            cell = cells[header.index(column)]
            if not _INTEGER.fullmatch(cell) and not (cell == "" and column in spec.blank_ok):
                raise ReportError(f"{path}: line {number}: {column} is {cell!r}, not an integer")
        rows.append(tuple(cells))
    return CsvTable(name, header, tuple(rows))


def _read_run(directory: Path, label: str) -> Run:
    tables = {}
    for name, spec in SPECS.items():
        path = directory / f"{name}.csv"
        if spec.required or path.exists():
            tables[name] = read_csv(path, spec, name)
    metrics = dict((row[0], row[1]) for row in tables["summary"].rows)
    for key in SUMMARY_KEYS:
        if key not in metrics:
            raise ReportError(f"{directory / 'summary.csv'}: no {key!r} metric")
    return Run(label, tables)


def read_output(directory: Path) -> tuple[list[Run], CsvTable | None]:
    """The runs in a simulation's output directory, and the scenario's deltas if it has them."""
    if not directory.is_dir():
        raise ReportError(f"{directory}: not a directory (give sco-settle simulate's --out)")
    if (directory / "summary.csv").exists():
        return [_read_run(directory, "")], None
    if (directory / "baseline" / "summary.csv").exists():  # Written with --scenario.
        runs = [_read_run(directory / label, label) for label in ("baseline", "scenario")]
        return runs, read_csv(directory / "scenario_delta.csv", DELTA_SPEC, "scenario_delta")
    raise ReportError(
        f"{directory}: no summary.csv (nor baseline/summary.csv): not the output of"
        " sco-settle simulate --out"
    )


# The page: sections of charts and tables, as plain values for the template.


@dataclass(frozen=True, slots=True)
class Chart:
    id: str
    label: str  # says what the chart shows: its caption and its accessible name
    figure: dict[str, Any]  # plotly.js data and layout


@dataclass(frozen=True, slots=True)
class Cell:
    text: str
    numeric: bool = False

    @property
    def short(self) -> bool:
        """Kept on one line: a code or a number, not a sentence."""
        return len(self.text) <= NOWRAP_CHARS_MAX


@dataclass(frozen=True, slots=True)
class HtmlTable:
    id: str
    caption: str
    header: tuple[str, ...]
    rows: list[list[Cell]]
    folded: bool = False  # shown inside a closed <details>


@dataclass(slots=True)
class Section:
    id: str
    title: str
    intro: str = ""
    charts: list[Chart] = field(default_factory=list)
    tables: list[HtmlTable] = field(default_factory=list)


def _number(text: str) -> str:
    """An integer cell with thousands separators; any other cell unchanged."""
    return f"{int(text):,}" if _INTEGER.fullmatch(text) else text


def html_table(table: CsvTable, table_id: str, caption: str) -> HtmlTable:
    """The CSV table as written, integers grouped by thousands and aligned right."""
    rows = [
        [Cell(_number(cell), bool(_INTEGER.fullmatch(cell))) for cell in row] for row in table.rows
    ]
    return HtmlTable(table_id, caption, table.header, rows)


def _cny_m(minor: str | int) -> float:
    """CNY fen as CNY millions, for drawing only."""
    return round(int(minor) / FEN_PER_M_CNY, 2)


def _percent_of(part: int, whole: int) -> float:
    return round(100 * part / whole, 2) if whole else 0.0


def _figure(
    traces: list[dict[str, Any]],
    *,
    value_title: str,
    bars: int,
    horizontal: bool = True,
    barmode: str = "group",
) -> dict[str, Any]:
    """A bar chart: one category axis (listed top to bottom when horizontal) and one value axis."""
    value_axis = {
        "title": {"text": value_title},
        "automargin": True,
        "gridcolor": "#d0d0d0",
        "rangemode": "tozero",
    }
    category_axis: dict[str, Any] = {"automargin": True, "type": "category"}
    if horizontal:
        category_axis["autorange"] = "reversed"
    layout = {
        "barmode": barmode,
        "height": max(320, 26 * bars + 150) if horizontal else 380,
        "margin": {"l": 8, "r": 16, "t": 48, "b": 8},
        "font": {"family": "system-ui, sans-serif", "size": 13, "color": "#1a1a1a"},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "legend": {
            "orientation": "h",
            "x": 0,
            "y": 1.02,
            "yanchor": "bottom",
            "traceorder": "normal",
        },
        "xaxis": value_axis if horizontal else category_axis,
        "yaxis": category_axis if horizontal else value_axis,
    }
    return {"data": traces, "layout": layout}


def _trace(
    name: str, labels: Sequence[str], values: Sequence[float], colour: str, *, horizontal: bool
) -> dict[str, Any]:
    """One series of bars (``labels`` on the category axis)."""
    axes = ("x", "y") if horizontal else ("y", "x")
    return {
        "name": name,
        axes[0]: list(values),
        axes[1]: list(labels),
        "marker": {"color": colour},
        "orientation": "h" if horizontal else "v",
        "type": "bar",
    }


def _readable(metric: str, value: str) -> str:
    """A summary metric as a reader takes it in: CNY millions, percentages, yes/no."""
    if not _INTEGER.fullmatch(value):
        return value
    number = int(value)
    if "_cny_minor" in metric:
        return f"CNY {Decimal(number) / FEN_PER_M_CNY:,.2f} m"
    if "_bp" in metric:
        return f"{Decimal(number) / 100:,.2f} %"
    if metric == "ledger_verified":
        return "yes" if number == 1 else "NO"
    if metric.endswith("_s"):
        return f"{number:,} s"
    return f"{number:,}"


def summary_section(run: Run, prefix: str) -> Section:
    """The headline metrics; those per corridor or reason (``name[key]``) in a folded table,
    since the sections below show them again as charts."""
    metrics = run.metrics
    header = ("metric", "readable", "as written")
    headline: list[list[Cell]] = []
    detail: list[list[Cell]] = []
    for metric, value in run.tables["summary"].rows:
        row = [Cell(metric), Cell(_readable(metric, value)), Cell(value)]
        (detail if "[" in metric else headline).append(row)
    tables = [
        HtmlTable(
            f"{prefix}summary-table",
            "The headline metrics of summary.csv, readable and as written",
            header,
            headline,
        )
    ]
    if detail:
        caption = "The metrics of summary.csv per corridor, country and reason"
        tables.append(HtmlTable(f"{prefix}summary-detail-table", caption, header, detail, True))
    verified = metrics.get("ledger_verified") == "1"
    intro = (
        f"{_readable('n', metrics.get('payments_submitted', '0'))} payments submitted,"
        f" {_readable('n', metrics.get('payments_settled', '0'))} settled and"
        f" {_readable('n', metrics.get('payments_rejected', '0'))} rejected. Value settled:"
        f" {_readable('settled_value_cny_minor', metrics.get('settled_value_cny_minor', '0'))}"
        " (mid-rate equivalent). The ledger "
        + ("was verified after the run." if verified else "FAILED its verification.")
    )
    return Section(f"{prefix}summary", "Summary", intro, tables=tables)


def corridor_section(run: Run, prefix: str) -> Section:
    table = run.tables["corridors"]
    labels: list[str] = []
    settled: list[float] = []
    rejected: list[float] = []
    for row in table.records():
        if row["kind"] == "domestic":
            labels.append(f"{row['payer']} domestic")
        else:
            labels.append(f"{row['payer']} > {row['payee']}")
        settled.append(_cny_m(row["settled_value_cny_minor"]))
        rejected.append(_cny_m(row["rejected_value_cny_minor"]))
    figure = _figure(
        [
            _trace("settled", labels, settled, SETTLED, horizontal=True),
            _trace("rejected", labels, rejected, REJECTED, horizontal=True),
        ],
        value_title="value, CNY m (mid-rate equivalent)",
        bars=len(labels),
        barmode="stack",
    )
    label = (
        "Value by corridor direction (payer > payee), settled and rejected, in CNY millions"
        " at mid rates."
    )
    return Section(
        f"{prefix}corridors",
        "Value by corridor",
        "Each corridor direction, and each country's domestic interbank payments.",
        [Chart(f"{prefix}chart-corridors", label, figure)],
        [html_table(table, f"{prefix}corridors-table", "corridors.csv: counts and CNY fen")],
    )


def liquidity_section(run: Run, prefix: str) -> Section:
    table = run.tables["liquidity"]
    dns = run.metrics["mode"] == "dns"
    used_name = "net per cycle (DNS)" if dns else "peak with the queue and LSM (RTGS)"
    labels: list[str] = []
    used: list[float] = []
    saved: list[float] = []
    intro = "The simulator writes liquidity per day and over all days, not an intraday series."
    for row in table.records():
        if row["day"] != "all" or int(row["gross_minor"]) <= 0:
            continue
        gross = int(row["gross_minor"])
        if row["currency"] == "CNY-equivalent":
            labels.insert(0, "all, CNY equivalent")
            used.insert(0, _percent_of(int(row["used_minor"]), gross))
            saved.insert(0, _percent_of(int(row["saved_minor"]), gross))
            intro = (
                f"Over all days, gross CNY {Decimal(gross) / FEN_PER_M_CNY:,.2f} m (mid-rate"
                f" equivalent); used, {used_name}:"
                f" CNY {Decimal(int(row['used_minor'])) / FEN_PER_M_CNY:,.2f} m; saved"
                f" {Decimal(int(row['saved_bp'])) / 100:.2f} %. " + intro
            )
            continue
        labels.append(row["currency"])
        used.append(_percent_of(int(row["used_minor"]), gross))
        saved.append(_percent_of(int(row["saved_minor"]), gross))
    figure = _figure(
        [
            _trace(f"used: {used_name}", labels, used, USED, horizontal=True),
            _trace("saved", labels, saved, SAVED, horizontal=True),
        ],
        value_title="% of gross settlement value",
        bars=len(labels),
        barmode="stack",
    )
    label = (
        f"Liquidity per currency over all days: the share of the gross value that was needed"
        f" ({used_name}) and the share saved."
    )
    caption = "liquidity.csv: per day and currency, minor units of the currency (CNY fen for the"
    return Section(
        f"{prefix}liquidity",
        "Liquidity",
        intro,
        [Chart(f"{prefix}chart-liquidity", label, figure)],
        [html_table(table, f"{prefix}liquidity-table", caption + " CNY-equivalent row)")],
    )


def delay_section(run: Run, prefix: str) -> Section:
    table = run.tables["delays"]
    records = table.records()
    labels = [f"{row['population']} ({int(row['count']):,})" for row in records]
    traces = [
        _trace(
            column.removesuffix("_s"),
            labels,
            [round(int(row[column]) / 60, 2) for row in records],
            colour,
            horizontal=False,
        )
        for column, colour in zip(("p50_s", "p90_s", "p99_s", "max_s"), DELAY_COLOURS, strict=True)
    ]
    figure = _figure(traces, value_title="minutes", bars=len(labels), horizontal=False)
    label = (
        "Delay from submission to settlement in minutes, percentiles and maximum, for all"
        " settled payments, those that waited, urgent and normal ones (count in brackets)."
    )
    return Section(
        f"{prefix}delays",
        "Queue delays",
        "Settled payments only. A payment that settled in the minute it was submitted waited 0 s.",
        [Chart(f"{prefix}chart-delays", label, figure)],
        [html_table(table, f"{prefix}delays-table", "delays.csv: seconds")],
    )


def rejection_section(run: Run, prefix: str) -> Section:
    table = run.tables["rejections"]
    section = Section(f"{prefix}rejections", "Rejections by reason")
    if not table.rows:
        section.intro = "No payment was rejected."
        return section
    records = table.records()
    labels = [f"{row['reason']} {row['text']}".strip() for row in records]
    counts = [float(int(row["count"])) for row in records]
    figure = _figure(
        [_trace("payments", labels, counts, REJECTED, horizontal=True)],
        value_title="payments rejected",
        bars=len(labels),
    )
    label = "Rejected payments per ISO 20022 reason code."
    section.intro = "The value rejected per reason is in the table (CNY fen, mid-rate equivalent)."
    section.charts.append(Chart(f"{prefix}chart-rejections", label, figure))
    section.tables.append(
        html_table(table, f"{prefix}rejections-table", "rejections.csv: counts and CNY fen")
    )
    return section


def swap_line_section(run: Run, prefix: str) -> Section:
    table = run.tables["swap_lines"]
    section = Section(f"{prefix}swap-lines", "Swap-line utilisation")
    if not table.rows:
        section.intro = "No swap line with an agreed size."
        return section
    labels: list[str] = []
    peak: list[float] = []
    eod: list[float] = []
    for row in table.records():
        label = f"{row['drawer'][4:6]} draws {row['currency']}"
        labels.append(label if label not in labels else f"{label} from {row['provider']}")
        limit = int(row["limit_minor"])
        peak.append(_percent_of(int(row["peak_drawn_minor"]), limit))
        eod.append(_percent_of(int(row["eod_drawn_minor"]), limit))
    figure = _figure(
        [
            _trace("peak", labels, peak, PEAK, horizontal=True),
            _trace("end of run", labels, eod, EOD, horizontal=True),
        ],
        value_title="drawn, % of the agreed size",
        bars=2 * len(labels),
    )
    label = "Swap lines with an agreed size: the peak and the end-of-run drawing, in % of the size."
    section.intro = "A line is drawn by the central bank of the country named (BIC letters 5-6)."
    section.charts.append(Chart(f"{prefix}chart-swap-lines", label, figure))
    section.tables.append(
        html_table(table, f"{prefix}swap-lines-table", "swap_lines.csv: minor units, basis points")
    )
    return section


def mechanism_section(run: Run, prefix: str) -> Section | None:
    """Per cross-border direction, the settled value by what converted it."""
    table = run.tables.get("mechanisms")
    if table is None:
        return None
    records = table.records()
    labels = sorted({f"{row['payer']}>{row['payee']}" for row in records})
    mechanisms = sorted({row["mechanism"] for row in records})
    palette = (SETTLED, PEAK, EOD, REJECTED, "#6a3d9a", "#b15928")
    traces = []
    for number, mechanism in enumerate(mechanisms):
        value = {
            f"{row['payer']}>{row['payee']}": _cny_m(row["value_cny_minor"])
            for row in records
            if row["mechanism"] == mechanism
        }
        colour = palette[number % len(palette)]
        values = [value.get(label, 0.0) for label in labels]
        traces.append(_trace(mechanism, labels, values, colour, horizontal=True))
    figure = _figure(traces, value_title="settled value, CNY m", bars=len(labels), barmode="stack")
    label = "Settled cross-border value per direction, by the mechanism that converted it."
    section = Section(
        f"{prefix}mechanisms",
        "Mechanisms",
        "Who converted each settled cross-border payment: the payer's or payee's bank in its own"
        " books (correspondent), an RMB clearing bank, another FX provider, or a central bank's"
        " facility funded by a swap line. FX income and tranches follow.",
        [Chart(f"{prefix}chart-mechanisms", label, figure)],
        [html_table(table, f"{prefix}mechanisms-table", "mechanisms.csv: counts and CNY fen")],
    )
    for name, caption in (
        ("fx_providers", "fx_providers.csv: income in minor units of the currency"),
        ("tranches", "tranches.csv: principal (provider's currency), interest (drawer's)"),
    ):
        found = run.tables.get(name)
        if found is not None:
            section.tables.append(html_table(found, f"{prefix}{name}-table", caption))
    return section


def tier_section(run: Run, prefix: str) -> Section:
    table = run.tables["tiers"]
    records = table.records()
    labels = [row["tier_pair"] for row in records]
    figure = _figure(
        [
            _trace(
                "settled",
                labels,
                [_cny_m(r["settled_value_cny_minor"]) for r in records],
                SETTLED,
                horizontal=True,
            ),
            _trace(
                "rejected",
                labels,
                [_cny_m(r["rejected_value_cny_minor"]) for r in records],
                REJECTED,
                horizontal=True,
            ),
        ],
        value_title="value, CNY m (mid-rate equivalent)",
        bars=len(labels),
        barmode="stack",
    )
    label = "Value settled and rejected per pair of SCO tiers (members, partners), in CNY millions."
    return Section(
        f"{prefix}tiers",
        "SCO tiers",
        "Payments grouped by the SCO standing of the payer's and the payee's countries.",
        [Chart(f"{prefix}chart-tiers", label, figure)],
        [html_table(table, f"{prefix}tiers-table", "tiers.csv: counts and CNY fen")],
    )


def cycle_section(run: Run, prefix: str) -> Section | None:
    table = run.tables.get("cycles")
    if table is None:
        return None
    cycles: dict[tuple[int, str, int], tuple[int, int]] = {}
    for row in table.records():
        key = (int(row["day"]), row["time"], int(row["cycle"]))
        cycles[key] = (int(row["settled"]), int(row["deferred"]))
    labels = [f"day {day} {time}" for day, time, _ in cycles]
    figure = _figure(
        [
            _trace(
                "settled", labels, [float(s) for s, _ in cycles.values()], SETTLED, horizontal=False
            ),
            _trace(
                "deferred", labels, [float(d) for _, d in cycles.values()], EOD, horizontal=False
            ),
        ],
        value_title="payments",
        bars=len(labels),
        horizontal=False,
    )
    label = "Payments settled and deferred in each netting cycle."
    return Section(
        f"{prefix}cycles",
        "Netting cycles",
        "Deferred net settlement: each cycle's payments, gross and net value per currency.",
        [Chart(f"{prefix}chart-cycles", label, figure)],
        [html_table(table, f"{prefix}cycles-table", "cycles.csv: minor units of the currency")],
    )


def psp_section(run: Run, prefix: str) -> Section | None:
    """Per payment-service provider: the gross value of its retail payments against what its
    settlement payments carried through the network after netting."""
    table = run.tables.get("psp")
    if table is None:
        return None
    gross: dict[str, int] = defaultdict(int)
    settled: dict[str, int] = defaultdict(int)
    for row in table.records():
        gross[row["provider"]] += int(row["gross_value_cny_minor"])
        settled[row["provider"]] += int(row["net_settled_value_cny_minor"])
    labels = sorted(gross)
    figure = _figure(
        [
            _trace(
                "retail, gross", labels, [_cny_m(gross[p]) for p in labels], EOD, horizontal=True
            ),
            _trace(
                "settled, net",
                labels,
                [_cny_m(settled[p]) for p in labels],
                SETTLED,
                horizontal=True,
            ),
        ],
        value_title="value, CNY m (mid-rate equivalent)",
        bars=len(labels),
    )
    label = (
        "Per payment-service provider: retail value (gross) and what settled through the network."
    )
    section = Section(
        f"{prefix}psp",
        "Payment-service providers",
        "Card and wallet payments are netted per provider and currency pair in a daily cycle; only"
        " the net crosses the network, as interbank payments between the provider's settlement"
        " banks (sim/retail.py). Counts and sizes are simulation assumptions (calibration.yaml).",
        [Chart(f"{prefix}chart-psp", label, figure)],
        [html_table(table, f"{prefix}psp-table", "psp.csv: counts and CNY fen")],
    )
    pairs = run.tables.get("psp_pairs")
    if pairs is not None:
        caption = "psp_pairs.csv: minor units of the local currency"
        section.tables.append(html_table(pairs, f"{prefix}psp-pairs-table", caption))
    return section


def calibration_section(run: Run, prefix: str) -> Section:
    caption = "calibration.csv: yearly trade in USD bn, daily value in US cents"
    return Section(
        f"{prefix}calibration",
        "Calibration",
        "The figures the workload was drawn from, with their sources and uncertainties.",
        tables=[html_table(run.tables["calibration"], f"{prefix}calibration-table", caption)],
    )


def run_sections(run: Run) -> list[Section]:
    prefix = f"{run.label}-" if run.label else ""
    sections = [
        summary_section(run, prefix),
        corridor_section(run, prefix),
        liquidity_section(run, prefix),
        delay_section(run, prefix),
        rejection_section(run, prefix),
        swap_line_section(run, prefix),
        tier_section(run, prefix),
    ]
    mechanisms = mechanism_section(run, prefix)
    if mechanisms is not None:
        sections.insert(2, mechanisms)
    cycles = cycle_section(run, prefix)
    if cycles is not None:
        sections.append(cycles)
    psp = psp_section(run, prefix)
    if psp is not None:
        sections.append(psp)
    sections.append(calibration_section(run, prefix))
    return sections


def _script_safe(source: str) -> str:
    """JavaScript that can sit inside ``<script>``: no ``</script`` closes the element early."""
    return re.sub(r"</(script)", r"<\\/\1", source, flags=re.IGNORECASE)


def _csp_hash(source: str) -> str:
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def _plotly_js() -> tuple[str, str]:
    """(version, source) of plotly.js as the installed ``plotly`` package carries it."""
    import plotly  # type: ignore[import-untyped]
    from plotly.offline import get_plotlyjs  # type: ignore[import-untyped]

    return str(plotly.__version__), _script_safe(str(get_plotlyjs()))


def _title(runs: Sequence[Run]) -> str:
    metrics = runs[0].metrics
    title = (
        f"SCO Settle simulation: {metrics['mode']}, {metrics['days']} day(s),"
        f" seed {metrics['seed']}, scale {metrics['scale']}"
    )
    if len(runs) > 1:
        title += f"; scenario {runs[1].metrics.get('scenario', '')}"
    return title


def render_report(directory: Path, *, source_name: str | None = None) -> str:
    """The page for the simulation output in ``directory``, as HTML text."""
    runs, delta = read_output(directory)
    plotly_version, plotly_js = _plotly_js()
    page_js = _script_safe((_HERE / "templates" / "report.js").read_text(encoding="utf-8"))
    groups = [(run.label, run_sections(run)) for run in runs]
    delta_table = (
        html_table(delta, "scenario-delta-table", "scenario_delta.csv: baseline, scenario, delta")
        if delta is not None
        else None
    )
    return _TEMPLATES.get_template("report.html").render(
        title=_title(runs),
        source_name=source_name if source_name is not None else directory.name,
        groups=groups,
        delta=delta_table,
        plotly_version=plotly_version,
        plotly_js=plotly_js,
        page_js=page_js,
        script_hashes=" ".join(_csp_hash(source) for source in (plotly_js, page_js)),
    )


def write_report(directory: Path, out: Path | None = None) -> Path:
    """Render ``directory`` into ``out`` (default ``directory/report.html``); the path written.

    The file is written beside its final name and then renamed, so a reader never sees half a
    page and a failed run leaves an earlier report as it was."""
    target = out if out is not None else directory / "report.html"
    page = render_report(directory)
    if not target.parent.is_dir():
        raise ReportError(f"{target.parent}: no such directory for --out")
    partial = target.with_name(target.name + ".partial")
    try:
        partial.write_text(page, encoding="utf-8")
        partial.replace(target)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise ReportError(f"{target}: cannot write: {error.strerror}") from None
    return target
