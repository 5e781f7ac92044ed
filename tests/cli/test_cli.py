"""The command line, run as a user runs it: a real process, stdin/stdout, exit codes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest

ACCOUNTS = {
    "accounts": [
        {"id": "1", "participant": "PBOCCNBJ", "currency": "CNY", "kind": "issuance"},
        {
            "id": "2",
            "participant": "BKCHCNBJ",
            "currency": "CNY",
            "kind": "settlement",
            "flags": ["debits_must_not_exceed_credits"],
        },
        {
            "id": 3,
            "participant": "ICBKCNBJ",
            "currency": "CNY",
            "kind": "settlement",
            "flags": ["debits_must_not_exceed_credits", "history"],
            "code": 4,
            "ref": "ICBC CNY",
        },
    ]
}


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sco_settle", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def apply_lines(db, *lines: object) -> list[dict]:
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    result = cli("apply", "--db", str(db), stdin=text)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_apply_results_errors_and_export(tmp_path):
    db = tmp_path / "l.db"
    transfers = {
        "transfers": [
            {"id": "10", "debit_account": "1", "credit_account": "2", "amount": 1000, "code": 1},
            {
                "id": "11",
                "debit_account": "2",
                "credit_account": "3",
                "amount": "400",
                "flags": ["pending"],
                "timeout": 60,
                "ref": "inv-7",
            },
            {"id": "12", "debit_account": "2", "credit_account": "3", "amount": 700},
            {"id": "13", "flags": ["post_pending"], "pending_id": "11", "amount": 300},
        ]
    }
    out = apply_lines(
        db,
        ACCOUNTS,
        "this is not json",
        {"transfers": [{"id": "1", "amount": 5, "colour": "red"}]},
        {"transfers": [{"id": "1", "flags": ["rush"]}]},
        {"transfers": [{"id": "abc"}]},
        {"payments": []},
        transfers,
        {"transfers": [{"id": "0", "debit_account": "1", "credit_account": "2", "amount": 1}]},
    )
    assert out[0] == {"results": [{"index": i, "result": "ok"} for i in range(3)]}
    assert out[1]["error"].startswith("not JSON") and out[1]["line"] == 2
    assert "unknown field 'colour'" in out[2]["error"]
    assert "unknown flag 'rush'" in out[3]["error"]
    assert "not a decimal integer" in out[4]["error"]
    assert "unknown batch kind" in out[5]["error"]
    assert [r["result"] for r in out[6]["results"]] == ["ok", "ok", "exceeds_credits", "ok"]
    assert [r["result"] for r in out[7]["results"]] == ["id_invalid"]

    exported = [
        json.loads(line) for line in cli("export", "--db", str(db), "transfers").stdout.splitlines()
    ]
    assert [t["id"] for t in exported] == ["10", "11", "13"]
    assert exported[1] | {"timestamp": 0} == {
        "id": "11",
        "debit_account": "2",
        "credit_account": "3",
        "amount": 400,
        "flags": ["pending"],
        "pending_id": "0",
        "timeout": 60,
        "code": 0,
        "ref": "inv-7",
        "timestamp": 0,
        "currency": "CNY",
    }
    assert exported[2]["amount"] == 300 and exported[2]["debit_account"] == "2"
    accounts = {
        a["id"]: a
        for a in map(json.loads, cli("export", "--db", str(db), "accounts").stdout.splitlines())
    }
    assert accounts["2"]["debits_posted"] == 300 and accounts["2"]["credits_posted"] == 1000
    assert accounts["3"]["flags"] == ["debits_must_not_exceed_credits", "history"]
    assert accounts["3"]["ref"] == "ICBC CNY" and accounts["3"]["code"] == 4

    # Exported rows are valid input: replaying them into a new database reproduces the balances.
    db2 = tmp_path / "replay.db"
    replay_accounts = {
        "accounts": [
            {
                k: a[k]
                for k in (
                    "id",
                    "participant",
                    "currency",
                    "kind",
                    "flags",
                    "credit_limit",
                    "code",
                    "ref",
                )
            }
            for a in accounts.values()
        ]
    }
    replay_transfers = {
        "transfers": [
            {
                k: t[k]
                for k in (
                    "id",
                    "debit_account",
                    "credit_account",
                    "amount",
                    "flags",
                    "pending_id",
                    "timeout",
                    "code",
                    "ref",
                )
            }
            for t in exported
        ]
    }
    replayed = apply_lines(db2, replay_accounts, replay_transfers)
    assert {r["result"] for r in replayed[1]["results"]} == {"ok"}
    again = {
        a["id"]: a
        for a in map(json.loads, cli("export", "--db", str(db2), "accounts").stdout.splitlines())
    }
    for account_id, account in accounts.items():
        for counter in ("debits_pending", "debits_posted", "credits_pending", "credits_posted"):
            assert again[account_id][counter] == account[counter]
    assert cli("verify", "--db", str(db)).returncode == 0


def test_same_batch_twice_says_exists(tmp_path):
    db = tmp_path / "l.db"
    batch = {"transfers": [{"id": "10", "debit_account": "1", "credit_account": "2", "amount": 5}]}
    out = apply_lines(db, ACCOUNTS, batch, batch, ACCOUNTS)
    assert out[1]["results"][0]["result"] == "ok"
    assert out[2]["results"][0]["result"] == "exists"
    assert {r["result"] for r in out[3]["results"]} == {"exists"}


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        (
            "UPDATE accounts SET credits_posted = credits_posted + 1 WHERE id = ?",
            "differ from the journal",
        ),
        ("UPDATE transfers SET amount = amount + 1 WHERE id = ?", "differ from the journal"),
        ("DELETE FROM transfers WHERE id = ?", "differ from the journal"),
    ],
)
def test_verify_names_the_first_violation(tmp_path, statement, message):
    db = tmp_path / "l.db"
    apply_lines(
        db,
        ACCOUNTS,
        {"transfers": [{"id": "10", "debit_account": "1", "credit_account": "2", "amount": 5}]},
    )
    assert cli("verify", "--db", str(db)).returncode == 0
    key = (2 if "accounts" in statement else 10).to_bytes(16, "big")
    with sqlite3.connect(db) as connection:
        connection.execute(statement, (key,))
    result = cli("verify", "--db", str(db))
    assert result.returncode == 1
    assert result.stderr.startswith("verify: FAILED:") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_verify_catches_a_broken_limit(tmp_path):
    db = tmp_path / "l.db"
    apply_lines(
        db,
        ACCOUNTS,
        {"transfers": [{"id": "10", "debit_account": "2", "credit_account": "3", "amount": 5}]},
    )
    # The ledger refused it; forge it into the journal and balances behind the ledger's back.
    with sqlite3.connect(db) as connection:
        connection.execute(
            "INSERT INTO transfers VALUES (?, ?, ?, ?, 5, 0, NULL, 0, 0, '', 'CNY')",
            (2**62, (10).to_bytes(16, "big"), (2).to_bytes(16, "big"), (3).to_bytes(16, "big")),
        )
        connection.execute(
            "UPDATE accounts SET debits_posted = 5 WHERE id = ?", ((2).to_bytes(16, "big"),)
        )
        connection.execute(
            "UPDATE accounts SET credits_posted = 5 WHERE id = ?", ((3).to_bytes(16, "big"),)
        )
    result = cli("verify", "--db", str(db))
    assert result.returncode == 1
    assert "account 2 debits exceed credits + limit" in result.stderr


def test_one_line_errors(tmp_path):
    db = tmp_path / "l.db"
    missing = cli("verify", "--db", str(tmp_path / "nope.db"))
    assert (
        missing.returncode == 1
        and missing.stderr.count("\n") == 1
        and "no database" in missing.stderr
    )
    apply_lines(db, ACCOUNTS)
    again = cli("init", "--db", str(db))
    assert again.returncode == 1 and "already exists" in again.stderr
    unknown = cli("balances", "--db", str(db), "--participant", "XXXXCNBJ")
    assert unknown.returncode == 1 and "no accounts for participant" in unknown.stderr
    bad_network = cli(
        "init", "--db", str(tmp_path / "n.db"), "--network", str(tmp_path / "missing.yaml")
    )
    assert bad_network.returncode == 1 and bad_network.stderr.count("\n") == 1
    not_a_db = tmp_path / "junk.db"
    not_a_db.write_text("hello")
    junk = cli("verify", "--db", str(not_a_db))
    assert junk.returncode == 1 and "not an SQLite database" in junk.stderr


def test_second_writer_is_refused(tmp_path):
    from sco_settle.ledger import Ledger
    from sco_settle.storage import SqliteStore

    db = tmp_path / "l.db"
    with Ledger(SqliteStore(db)):
        result = cli("apply", "--db", str(db), stdin="")
        assert result.returncode == 1 and "open for writing by another process" in result.stderr


def test_init_demo_verify(tmp_path):
    db = tmp_path / "demo.db"
    result = cli("demo", "--db", str(db), "--transfers", "3000")
    assert result.returncode == 0, result.stderr
    assert "invariant check" in result.stdout and "OK" in result.stdout
    assert cli("verify", "--db", str(db)).returncode == 0
    balances = cli("balances", "--db", str(db), "--participant", "NBRKKZKX")
    assert balances.returncode == 0 and "KZT" in balances.stdout
