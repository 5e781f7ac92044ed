"""``sco-settle fx-quote``: create a firm quote, pay at it, a second use refused in one line,
bad input refused in one line, and ``verify`` still reconciling."""

from __future__ import annotations

import json
import subprocess
import sys


def run(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sco_settle", *map(str, args)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_quote_pay_and_refusals(tmp_path) -> None:
    db = tmp_path / "ledger.db"
    assert run("init", "--db", db).returncode == 0
    common = ("--db", db, "--as", "KCJBKZKX")
    made = run(
        "fx-quote", "create", *common, "--to", "BKCHCNBJ", "--amount", "7000.00", "--receive",
        "--charge-bearer", "DEBT", "--currency", "KZT", "--creditor-currency", "CNY", "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    quote = json.loads(made.stdout)
    assert quote["receive_minor"] == 7000_00 and quote["status"] == "open"
    paid = run("fx-quote", "pay", quote["quote_id"], *common, "--instruction-id", "c1")
    assert paid.returncode == 0, paid.stderr
    assert "delivered 7000.00 CNY" in paid.stdout
    again = run("fx-quote", "pay", quote["quote_id"], *common, "--instruction-id", "c2")
    assert again.returncode == 1 and len(again.stderr.strip().splitlines()) == 1
    assert "DUPL" in again.stderr
    shown = run("fx-quote", "show", quote["quote_id"], *common, "--json")
    assert json.loads(shown.stdout)["status"] == "used"
    other = run("fx-quote", "show", quote["quote_id"], "--db", db, "--as", "HSBKKZKX")
    assert other.returncode == 1 and "no FX quote" in other.stderr
    bad = run(
        "fx-quote", "create", *common, "--to", "BKCHCNBJ", "--amount", "1.234",
        "--currency", "KZT", "--creditor-currency", "CNY",
    )  # fmt: skip
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    verified = run("verify", "--db", db)
    assert verified.returncode == 0, verified.stdout + verified.stderr
