"""Crash test: ``sco-settle apply`` is killed with SIGKILL at random moments, again and again.

After every kill the database is reopened and must hold exactly what was acknowledged: every
acknowledged transfer with its exact fields; nothing from batches after the one in flight; the
batch in flight either wholly applied or not at all (re-submitting it applies nothing new);
and ``verify`` must pass. SCO_CRASH_ITERATIONS sets the number of kills (default 50).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from sco_settle.domain.account import Account
from sco_settle.ledger import Ledger
from sco_settle.ledger.invariants import verify
from sco_settle.storage import SqliteStore

from .conftest import DMNEC

ITERATIONS = int(os.environ.get("SCO_CRASH_ITERATIONS", "50"))
ACCOUNTS = list(range(2, 12))
BATCH_SIZE = 4
FEED_BATCHES = 600  # More than a process gets through before the kill.


def batch_for(index: int) -> list[dict]:
    """Batch ``index`` of an endless deterministic stream (plain, linked, pending, post)."""
    rng = random.Random(index)
    items: list[dict] = []
    base = 1_000_000 + index * 100
    for position in range(BATCH_SIZE):
        debit, credit = rng.sample(ACCOUNTS, 2)
        item = {
            "id": str(base + position),
            "debit_account": debit,
            "credit_account": credit,
            "amount": rng.randrange(1, 5_000),
            "code": 1,
            "ref": f"b{index}-{position}",
        }
        roll = rng.random()
        if roll < 0.15 and position < BATCH_SIZE - 1:
            item["flags"] = ["linked"]
        elif roll < 0.30:
            item["flags"] = ["pending"]
        elif roll < 0.40 and index > 0:
            pending = 1_000_000 + rng.randrange(index) * 100 + rng.randrange(BATCH_SIZE)
            item = {
                "id": str(base + position),
                "flags": ["post_pending"],
                "pending_id": str(pending),
            }
        items.append(item)
    return items


def setup_ledger(ledger):
    from sco_settle.domain.transfer import Transfer

    accounts = [Account(1, "PBOCCNBJ", "CNY", "issuance")] + [
        Account(i, "BKCHCNBJ", "CNY", "settlement", flags=DMNEC) for i in ACCOUNTS
    ]
    assert set(ledger.create_accounts(accounts)) == {"ok"}
    funding = [Transfer(500 + i, 1, i, 10_000_000) for i in ACCOUNTS]
    assert set(ledger.create_transfers(funding)) == {"ok"}


def make_database(path):
    with Ledger(SqliteStore(path)) as ledger:
        setup_ledger(ledger)


def run_and_kill(
    db, first_batch: int, delay_s: float, tmp_path, *, mid_stream: bool, command=None
) -> list[dict]:
    """Feed batches from ``first_batch`` on; SIGKILL ``delay_s`` after start (or, mid-stream,
    after the first acknowledgement, whatever the machine's load); return acknowledgements.
    ``command`` (default ``sco-settle apply --db DB``) reads the batches on stdin."""
    feed = tmp_path / "feed.jsonl"
    with feed.open("w") as out:
        for index in range(first_batch, first_batch + FEED_BATCHES):
            out.write(json.dumps({"transfers": batch_for(index)}) + "\n")
    with feed.open("rb") as stdin:
        process = subprocess.Popen(
            command or [sys.executable, "-m", "sco_settle", "apply", "--db", str(db)],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        lines: list[bytes] = []
        reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
        reader.start()
        if mid_stream:
            deadline = time.monotonic() + 60
            while not lines and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
        time.sleep(delay_s)
        process.send_signal(signal.SIGKILL)
        process.wait()
        reader.join(timeout=10)
        process.stdout.close()
    acknowledged = []
    for line in lines:
        if not line.endswith(b"\n"):
            break  # A line cut by the kill was never acknowledged.
        acknowledged.append(json.loads(line))
    return acknowledged


@pytest.mark.slow
def test_apply_survives_sigkill(tmp_path):
    from sco_settle.ledger.jsonl import parse_batch
    from sco_settle.storage import MemoryStore

    db = tmp_path / "crash.db"
    make_database(db)
    # The model: the same batches applied once each, in order, to an in-memory ledger. Results do
    # not depend on time (no timeouts), so every acknowledgement must equal the model's results.
    model = Ledger(MemoryStore())
    setup_ledger(model)
    rng = random.Random(2026)
    expected: dict[int, dict] = {}  # Transfers the model applied, by id.
    next_batch = 0
    kills_mid_stream = 0

    def apply_to_model(index: int) -> list[str]:
        _, items = parse_batch(json.dumps({"transfers": batch_for(index)}))
        results = [str(r) for r in model.create_transfers(items)]
        for item, result in zip(batch_for(index), results, strict=True):
            if result == "ok":
                expected[int(item["id"])] = item
        return results

    for _ in range(ITERATIONS):
        # Most kills land mid-stream; one in five lands during start-up.
        mid_stream = rng.random() >= 0.2
        delay = rng.uniform(0.0, 0.4) if mid_stream else rng.uniform(0.0, 0.6)
        acks = run_and_kill(db, next_batch, delay, tmp_path, mid_stream=mid_stream)
        for offset, ack in enumerate(acks):
            assert "results" in ack, ack
            model_results = apply_to_model(next_batch + offset)
            assert [r["result"] for r in ack["results"]] == model_results
        kills_mid_stream += bool(acks)
        in_flight = next_batch + len(acks)
        store = SqliteStore(db, readonly=True)
        try:
            report = verify(store)
            assert report.ok, report.violation
            stored = {t.id: t for t in store.iter_transfers()}
        finally:
            store.close()
        # The batch in flight is all or nothing: absent, or present exactly as the model applies it.
        flight_ids = {int(item["id"]) for item in batch_for(in_flight)}
        if flight_ids & stored.keys():
            results = apply_to_model(in_flight)
            applied = {
                int(i["id"])
                for i, r in zip(batch_for(in_flight), results, strict=True)
                if r == "ok"
            }
            assert flight_ids & stored.keys() == applied, (
                "the batch in flight was applied only in part"
            )
            next_batch = in_flight + 1
        else:
            next_batch = in_flight
        for transfer_id, item in expected.items():
            transfer = stored.get(transfer_id)
            assert transfer is not None, f"acknowledged transfer {transfer_id} lost"
            if "debit_account" in item:
                assert (
                    transfer.debit_account,
                    transfer.credit_account,
                    transfer.amount,
                    transfer.code,
                    transfer.ref,
                ) == (
                    item["debit_account"],
                    item["credit_account"],
                    item["amount"],
                    1,
                    item["ref"],
                )
        assert set(stored) - {500 + i for i in ACCOUNTS} == set(expected), (
            "unacknowledged transfers"
        )
        # The database holds exactly the model's journal and balances.
        model_transfers = {t.id: t for t in model.store.iter_transfers()}
        assert stored.keys() == model_transfers.keys()
        assert all(stored[i][:9] == model_transfers[i][:9] for i in stored)
        reader = SqliteStore(db, readonly=True)
        try:
            balances = {s.account.id: s.balance() for s in reader.load_accounts()}
        finally:
            reader.close()
        assert balances == {a.id: a.balance_tuple() for a in model.accounts()}
    assert kills_mid_stream >= ITERATIONS // 2, f"only {kills_mid_stream} kills landed mid-stream"
    result = subprocess.run(
        [sys.executable, "-m", "sco_settle", "verify", "--db", str(db)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert len(expected) > ITERATIONS * BATCH_SIZE
