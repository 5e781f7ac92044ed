"""``sim.compare`` on a small simulated day: bounds, a stress scenario, byte-for-byte reports."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from sco_settle.payments.modes import Mode
from sco_settle.sim.compare import CompareOptions, Comparison, run_comparison
from sco_settle.sim.compare_report import write_comparison
from sco_settle.sim.measures import Scope

OPTIONS = CompareOptions(
    scale=Fraction(1, 50), stresses=("corridor-cut:CN-KZ",), lsm_variants=False
)


@pytest.fixture(scope="module")
def comparison() -> Comparison:
    return run_comparison(OPTIONS)


def test_every_run_saw_the_same_workload_and_kept_the_ledger_balanced(comparison):
    assert [run.label for run in comparison.runs] == [
        "rtgs",
        "dns",
        "union",
        "rtgs corridor-cut:CN-KZ",
        "dns corridor-cut:CN-KZ",
        "union corridor-cut:CN-KZ",
    ]
    submitted = {run.scopes[Scope.ALL].submitted for run in comparison.runs}
    assert len(submitted) == 1 and next(iter(submitted)).count > 0
    assert all(run.ledger_verified for run in comparison.runs)


def test_each_mode_falls_between_the_bounds_of_the_workload(comparison):
    for scope in Scope:
        for code, bounds in comparison.bounds[scope].items():
            assert 0 <= bounds.lower_minor <= bounds.upper_minor <= bounds.gross_minor, code
        for mode in Mode:
            run = comparison.baseline(mode)
            assert run is not None
            figures = run.scopes[scope]
            # On this small day every payment settles, so each mode's set is the workload's.
            assert figures.settled == figures.submitted, (mode, scope)
            for code, use in figures.liquidity.items():
                found = comparison.bounds[scope][code]
                assert use.gross_minor == found.gross_minor, (mode, scope, code)
                assert use.net_minor == found.lower_minor, (mode, scope, code)
                assert use.upper_minor == found.upper_minor, (mode, scope, code)
                assert found.lower_minor <= use.used_minor <= found.upper_minor, (mode, code)
    # Netting modes settle in cycles, so they need less than gross settlement on arrival.
    used = {
        mode: comparison.baseline(mode).scopes[Scope.ALL].liquidity_cny.used_minor for mode in Mode
    }
    assert used[Mode.DNS] < used[Mode.RTGS] and used[Mode.UNION] < used[Mode.RTGS]


def test_a_cut_corridor_settles_nothing_in_any_mode(comparison):
    for mode in Mode:
        stressed = next(r for r in comparison.runs if r.mode is mode and r.stress)
        baseline = comparison.baseline(mode)
        for direction in ("CN>KZ", "KZ>CN"):
            assert baseline.directions[direction][1].value_cny_minor > 0, (mode, direction)
            submitted, settled = stressed.directions[direction]
            assert submitted.count > 0 and settled.count == 0, (mode, direction)
        assert stressed.scopes[Scope.CROSS_BORDER].rejected["AG01"].count > 0, mode
        # Other corridors still settle.
        assert stressed.directions["CN>RU"][1] == baseline.directions["CN>RU"][1], mode


def test_the_report_is_byte_for_byte_reproducible(comparison, tmp_path: Path):
    first = write_comparison(comparison, tmp_path / "first")
    again = write_comparison(run_comparison(OPTIONS), tmp_path / "again")
    assert [p.name for p in first] == [p.name for p in again]
    assert {p.suffix for p in first} == {".csv", ".json", ".png", ".html"}
    for one, other in zip(first, again, strict=True):
        assert one.read_bytes() == other.read_bytes(), one.name
    page = (tmp_path / "first" / "compare.html").read_text()
    assert "default-src 'none'" in page and "http:" not in page and "https:" not in page
    assert page.count('src="data:image/png;base64,') == 4


def test_the_stress_table_gives_differences_from_the_baseline(comparison, tmp_path: Path):
    write_comparison(comparison, tmp_path)
    rows = (tmp_path / "stress_delta.csv").read_text().splitlines()
    assert rows[0] == "stress,mode,scope,metric,baseline,stressed,delta"
    cut = [r.split(",") for r in rows[1:] if "[CN>KZ]" in r]
    assert len(cut) == 3  # one per mode
    for _, _, _, _, before, after, delta in cut:
        assert int(after) == 0 and int(delta) == -int(before) < 0
