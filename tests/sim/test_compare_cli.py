"""``sco-settle simulate --compare``: one report from the command line; bad input refused."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from sco_settle.cli.simulate import register


def app() -> typer.Typer:
    found = typer.Typer()

    @found.callback()
    def root() -> None:
        """A group, so that ``simulate`` is a subcommand as in sco-settle."""

    register(found)
    return found


def test_compare_writes_one_report(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    args = ["simulate", "--compare", "--scale", "0.01", "--scenario", "fx-shock:KZT:20"]
    result = CliRunner().invoke(app(), [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Compared 8 runs" in result.output  # 3 modes, 2 LSM variants, 1 stress x 3 modes
    names = sorted(path.name for path in out.iterdir())
    assert "compare.html" in names and "comparison.json" in names and "stress_delta.csv" in names
    stressed = (out / "stress_delta.csv").read_text()
    assert "fx-shock:KZT:20,union,all,settled_count," in stressed


def test_a_bad_stress_is_refused_before_anything_runs(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    result = CliRunner().invoke(
        app(), ["simulate", "--compare", "--scenario", "fx-shock:XYZ", "--out", str(out)]
    )
    assert result.exit_code == 2
    assert "fx-shock:XYZ" in result.output
    assert not out.exists()
