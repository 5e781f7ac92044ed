"""A consumer rebuilds every participant's balances from the stream alone, across a SIGKILL of a
real ``sco-settle serve`` under load and a restart of NATS mid-load; every message is in the
stream once; the audit chain verifies."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time

import pytest

from sco_settle.events.outbox import Outbox
from sco_settle.events.publisher import STREAM, connect
from sco_settle.network import load_network
from sco_settle.storage import SqliteStore
from tests.server.conftest import cli, start_server
from tests.server.test_server_crash import PAIRS, client_loop

from .conftest import fetch_all, ledger_balances, rebuild_balances, run

CLIENTS = 4


def load(server, keys, seconds: float, during=None) -> list:
    stop = threading.Event()
    acked: list = []
    unacked: list = []
    threads = [
        threading.Thread(target=client_loop, args=(server, keys, n, stop, acked, unacked))
        for n in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()
    time.sleep(seconds / 2)
    if during is not None:
        during()
    time.sleep(seconds / 2)
    return [threads, stop, acked]


def finish(running) -> list:
    threads, stop, acked = running
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    return acked


def outage(nats_server) -> None:
    """NATS down for a while under load (the publisher's messages wait), then back."""
    nats_server.stop()
    time.sleep(1.5)
    nats_server.start()


def wait_until_published(db, seconds: float = 60.0) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with sqlite3.connect(db) as connection:
            head = connection.execute("SELECT max(seq) FROM audit_log").fetchone()[0]
            done = connection.execute(
                "SELECT seq FROM audit_published WHERE stream = 'nats'"
            ).fetchone()
        if done is not None and done[0] == head:
            return int(head)
        time.sleep(0.2)
    raise AssertionError(f"the publisher did not catch up with seq {head} (at {done})")


@pytest.mark.slow
def test_balances_from_the_stream_match_the_ledger_across_sigkill_and_nats_restart(
    tmp_path, nats_server, monkeypatch
):
    for name, value in nats_server.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SCO_SETTLE_AUDIT_CHECKPOINT_SECONDS", "1")
    db = tmp_path / "ledger.db"
    url = f"sqlite:///{db}"
    server = start_server(url, tmp_path / "server0.log")
    keys = {bic: server.key(bic) for bic in {p[0] for p in PAIRS}}
    acked = finish(load(server, keys, 2.0))
    server.process.send_signal(signal.SIGKILL)  # Mid-load: clients still sending.
    server.process.wait()
    server.stop()
    assert acked, "nothing was acknowledged before the kill"
    server = start_server(url, tmp_path / "server1.log")
    try:
        acked += finish(load(server, keys, 4.0, during=lambda: outage(nats_server)))
        head = wait_until_published(db)
    finally:
        server.stop()
    assert '"event": "audit_checkpoint"' in (tmp_path / "server1.log").read_text()
    compare_stream_with_ledger(db, nats_server)
    verified = cli("verify", "--db", str(db), "--audit")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"chained to head {head}" in verified.stdout or "verify --audit: OK" in verified.stdout


def compare_stream_with_ledger(db, nats_server) -> None:
    outbox = Outbox(str(db))
    try:
        expected_ids = {m.msg_id for batch in outbox.read(0, 1_000_000) for m in batch.messages}
    finally:
        outbox.close()
    assert run(_stream_messages(nats_server)) == len(expected_ids)  # Each once, no copies.
    store = SqliteStore(db, readonly=True)
    try:
        seen: set[str] = set()
        for participant in sorted(load_network("sco").participants_by_bic):
            received = run(fetch_all(nats_server, participant))
            ids = [m.headers["Nats-Msg-Id"] for m in received]
            assert len(set(ids)) == len(ids), participant
            seen |= set(ids)
            rebuilt = {k: v for k, v in rebuild_balances(received).items() if any(v)}
            assert rebuilt == ledger_balances(store, participant), participant
    finally:
        store.close()
    assert seen == expected_ids


async def _stream_messages(nats_server) -> int:
    nc = await connect(nats_server.settings())
    try:
        info = await nc.jetstream().stream_info(STREAM)
        return int(info.state.messages)
    finally:
        await nc.close()
