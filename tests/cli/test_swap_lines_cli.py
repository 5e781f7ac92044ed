"""``sco-settle swap-lines``: status, a drawing, a refusal with its reason, a repayment."""

from __future__ import annotations

import json
import subprocess
import sys


def run(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sco_settle", *map(str, args)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_a_central_bank_draws_repays_and_is_refused_on_a_lapsed_line(tmp_path) -> None:
    db = tmp_path / "ledger.db"
    assert run("init", "--db", db).returncode == 0
    on = ("--on", "2026-12-07")
    drawn = run("swap-lines", "draw", "CBRFRUMM", "PBOCCNBJ", "1000000", "--db", db, *on)
    assert drawn.returncode == 0, drawn.stderr
    assert drawn.stdout.startswith("drew CBRFRUMM.PBOCCNBJ.20261207.1: 1000000.00 CNY against")
    refused = run("swap-lines", "draw", "NBRKKZKX", "PBOCCNBJ", "1000000", "--db", db, *on)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith("sco-settle: draw refused (agreement_lapsed):")
    assert len(refused.stderr.strip().splitlines()) == 1
    assert run("swap-lines", "status", "--db", db, *on).returncode == 0  # the table
    status = run("swap-lines", "status", "--db", db, "--json", *on)
    sides = {(s["drawer"], s["provider"]): s for s in map(json.loads, status.stdout.splitlines())}
    russia = sides[("CBRFRUMM", "PBOCCNBJ")]
    assert (russia["status"], russia["drawn_minor"]) == ("presumed_renewed", 1_000_000_00)
    assert [t["tranche"] for t in russia["tranches"]] == ["CBRFRUMM.PBOCCNBJ.20261207.1"]
    assert sides[("NBRKKZKX", "PBOCCNBJ")]["drawable"] is False
    # At maturity the principal comes back from the facility and the interest is paid in RUB.
    repaid = run(
        "swap-lines", "repay", "CBRFRUMM", "PBOCCNBJ", "CBRFRUMM.PBOCCNBJ.20261207.1",
        "--db", db, "--on", "2027-03-07",
    )  # fmt: skip
    assert repaid.returncode == 0 and repaid.stdout.strip() == "repaid CBRFRUMM.PBOCCNBJ.20261207.1"
    again = run(
        "swap-lines", "repay", "CBRFRUMM", "PBOCCNBJ", "CBRFRUMM.PBOCCNBJ.20261207.1",
        "--db", db, "--on", "2027-03-07",
    )  # fmt: skip
    assert again.returncode == 2 and "tranche_repaid" in again.stderr
    assert run("verify", "--db", db).returncode == 0
