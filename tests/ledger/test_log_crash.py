"""Crash tests of the log store: a real process killed mid-stream, and torn or damaged logs.

The kill loop is ``test_crash.py``'s, on a process that applies JSON-lines batches with
``Ledger(LogStore(path))`` (the compiled engine; ``sco-settle apply`` itself opens SQLite): after
every SIGKILL the log is reopened and must hold exactly what was acknowledged (every acknowledged
transfer; nothing after the batch in flight; that batch wholly or not at all), match the model's
journal and balances, and pass ``verify``; at the end ``sco-settle verify`` passes on the log
file. The torn-write tests cut or damage the file byte by byte where a crash or a bad disk would.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

from sco_settle.domain.transfer import Transfer
from sco_settle.ledger import Ledger, LedgerClosedError
from sco_settle.ledger.invariants import verify
from sco_settle.ledger.jsonl import parse_batch
from sco_settle.storage import MemoryStore
from sco_settle.storage.log import LogStore
from sco_settle.storage.sqlite import StoreFormatError

from .test_crash import ACCOUNTS, BATCH_SIZE, batch_for, run_and_kill, setup_ledger

APPLY = """
import sys
from sco_settle.ledger import Ledger, LedgerClosedError
from sco_settle.ledger.jsonl import parse_batch, results_line
from sco_settle.storage.log import LogStore

with Ledger(LogStore(sys.argv[1])) as ledger:
    for line in sys.stdin.buffer:
        kind, items = parse_batch(line)
        if kind == "accounts":
            results = ledger.create_accounts(items)
        else:
            results = ledger.create_transfers(items)
        sys.stdout.write(results_line(results) + "\\n")  # after the fdatasync
        sys.stdout.flush()
"""


def kill_loop(tmp_path, iterations: int, seed: int) -> None:
    db = tmp_path / "crash.log"
    with Ledger(LogStore(db)) as ledger:
        setup_ledger(ledger)
    model = Ledger(MemoryStore())
    setup_ledger(model)
    rng = random.Random(seed)
    expected: dict[int, dict] = {}
    next_batch = 0
    kills_mid_stream = 0

    def apply_to_model(index: int) -> list[str]:
        _, items = parse_batch(json.dumps({"transfers": batch_for(index)}))
        results = [str(r) for r in model.create_transfers(items)]
        for item, result in zip(batch_for(index), results, strict=True):
            if result == "ok":
                expected[int(item["id"])] = item
        return results

    command = [sys.executable, "-c", APPLY, str(db)]
    for _ in range(iterations):
        mid_stream = rng.random() >= 0.2
        delay = rng.uniform(0.0, 0.3) if mid_stream else rng.uniform(0.0, 2.0)
        acks = run_and_kill(db, next_batch, delay, tmp_path, mid_stream=mid_stream, command=command)
        for offset, ack in enumerate(acks):
            assert "results" in ack, ack
            assert [r["result"] for r in ack["results"]] == apply_to_model(next_batch + offset)
        kills_mid_stream += bool(acks)
        in_flight = next_batch + len(acks)
        reader = LogStore(db, readonly=True)
        try:
            report = verify(reader)
            assert report.ok, report.violation
            stored = {t.id: t for t in reader.iter_transfers()}
            balances = {s.account.id: s.balance() for s in reader.load_accounts()}
        finally:
            reader.close()
        flight_ids = {int(item["id"]) for item in batch_for(in_flight)}
        if flight_ids & stored.keys():
            results = apply_to_model(in_flight)
            applied = {
                int(i["id"])
                for i, r in zip(batch_for(in_flight), results, strict=True)
                if r == "ok"
            }
            assert flight_ids & stored.keys() == applied, "the batch in flight was applied in part"
            next_batch = in_flight + 1
        else:
            next_batch = in_flight
        assert set(stored) - {500 + i for i in ACCOUNTS} == set(expected), "lost or unacked"
        model_transfers = {t.id: t for t in model.store.iter_transfers()}
        assert all(stored[i][:9] == model_transfers[i][:9] for i in stored)
        assert balances == {a.id: a.balance_tuple() for a in model.accounts()}
        # The writer recovers too (cutting a torn tail) and carries on where the log ends.
        with Ledger(LogStore(db)) as ledger:
            assert {a.id: a.balance_tuple() for a in ledger.accounts()} == balances
    assert kills_mid_stream >= iterations // 2, f"only {kills_mid_stream} kills landed mid-stream"
    assert len(expected) > iterations * BATCH_SIZE / 2
    result = subprocess.run(
        [sys.executable, "-m", "sco_settle", "verify", "--db", str(db)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "verify: OK" in result.stdout


def test_log_survives_sigkill_quick(tmp_path):
    kill_loop(tmp_path, iterations=4, seed=7)


@pytest.mark.slow
def test_log_survives_sigkill(tmp_path):
    kill_loop(tmp_path, iterations=int(os.environ.get("SCO_CRASH_ITERATIONS", "40")), seed=2026)


# -- torn and damaged logs --------------------------------------------------------------------


def write_log(path, batches: int) -> list[int]:
    """A log of ``batches`` transfer batches; returns the file size after each record."""
    sizes = []
    with Ledger(LogStore(path)) as ledger:
        setup_ledger(ledger)
        for index in range(batches):
            _, items = parse_batch(json.dumps({"transfers": batch_for(index)}))
            ledger.create_transfers(items)
            sizes.append(path.stat().st_size)
    return sizes


def contents(path):
    store = LogStore(path, readonly=True)
    try:
        return (
            [s.balance() for s in store.load_accounts()],
            list(store.iter_transfers()),
            list(store.iter_pending_resolutions()),
            store.last_timestamp(),
        )
    finally:
        store.close()


def test_a_torn_last_record_is_cut_and_nothing_else_is_lost(tmp_path):
    path = tmp_path / "torn.log"
    sizes = write_log(path, 6)
    data = path.read_bytes()
    prefix = tmp_path / "prefix.log"
    prefix.write_bytes(data[: sizes[-2]])
    expected = contents(prefix)
    rng = random.Random(1)
    cuts = [sizes[-2] + 1, sizes[-2] + 63, sizes[-2] + 64, sizes[-1] - 1]
    cuts += [rng.randrange(sizes[-2] + 1, sizes[-1]) for _ in range(6)]
    for cut in cuts:  # Every way the last write can be cut short.
        path.write_bytes(data[:cut])
        assert contents(path) == expected, cut  # A reader stops at the last whole record.
        with Ledger(LogStore(path)) as ledger:  # The writer cuts the torn bytes off.
            assert ledger.store.recovered_bytes_dropped == cut - sizes[-2]
        assert path.stat().st_size == sizes[-2]
    # A whole last record whose payload is damaged (a torn page inside it) is cut too.
    damaged = bytearray(data)
    damaged[sizes[-1] - 5] ^= 0xFF
    path.write_bytes(bytes(damaged))
    with Ledger(LogStore(path)):
        pass
    assert contents(path) == expected
    # After recovery the log takes new batches.
    with Ledger(LogStore(path)) as ledger:
        assert ledger.create_transfers([Transfer(9_999_999, 1, 2, 1)]) == ["ok"]
    assert len(contents(path)[1]) == len(expected[1]) + 1


def test_damage_before_the_last_record_is_refused(tmp_path):
    path = tmp_path / "damaged.log"
    sizes = write_log(path, 4)
    data = bytearray(path.read_bytes())
    for offset in (sizes[0] + 70, sizes[0] + 3):  # A payload byte, then a header byte.
        damaged = bytearray(data)
        damaged[offset] ^= 0x01
        path.write_bytes(bytes(damaged))
        with pytest.raises(StoreFormatError, match="damaged"):
            LogStore(path)
        with pytest.raises(StoreFormatError, match="damaged"):
            LogStore(path, readonly=True)
    assert path.read_bytes() != data  # Nothing was cut off.


def test_not_a_log(tmp_path):
    path = tmp_path / "other.log"
    path.write_bytes(b"SQLite format 3\x00" + bytes(100))
    with pytest.raises(StoreFormatError):
        LogStore(path)


def test_a_failed_commit_leaves_nothing_and_closes_the_ledger(tmp_path, monkeypatch):
    path = tmp_path / "failing.log"
    write_log(path, 2)
    before = contents(path)
    ledger = Ledger(LogStore(path))
    balances = {a.id: a.balance_tuple() for a in ledger.accounts()}

    def failing_fdatasync(descriptor):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", failing_fdatasync)
    with pytest.raises(OSError, match="Input/output"):
        ledger.create_transfers([Transfer(8_000_000, 1, 2, 7)])
    monkeypatch.undo()
    with pytest.raises(LedgerClosedError):
        ledger.create_transfers([Transfer(8_000_001, 1, 2, 7)])
    assert contents(path) == before  # The record written before the failed fsync is gone.
    with Ledger(LogStore(path)) as reopened:  # The lock was released; the state is the old one.
        assert {a.id: a.balance_tuple() for a in reopened.accounts()} == balances
        assert reopened.create_transfers([Transfer(8_000_000, 1, 2, 7)]) == ["ok"]
