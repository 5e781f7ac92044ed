"""``sco-settle report``: a simulation's output directory as one self-contained HTML page.

Parsing and printing only; the page is made by ``sim/html_report.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer


def report(
    sim_out: Annotated[
        Path,
        typer.Argument(
            metavar="SIM_OUT_DIR",
            help="The --out directory of sco-settle simulate (its CSV files are read).",
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="The HTML file to write (default: SIM_OUT_DIR/report.html)."),
    ] = None,
) -> None:
    """Render a simulation's CSV files as one HTML page: summary, value by corridor, liquidity,
    queue delays, rejections, swap lines, SCO tiers (and netting cycles for DNS). plotly.js and
    the data are inlined: the page loads nothing from elsewhere, so it can be mailed or opened
    offline."""
    from sco_settle.sim.html_report import ReportError, write_report

    try:
        written = write_report(sim_out, out)
    except ReportError as error:
        _fail(str(error))
    typer.echo(f"Wrote {written} ({written.stat().st_size:,} bytes).")


def _fail(message: str) -> NoReturn:
    """One line on stderr (scripts grep these), then exit code 1."""
    sys.stderr.write("sco-settle: report: " + " ".join(message.split()) + "\n")
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``report`` command to ``app``."""
    app.command("report")(report)
