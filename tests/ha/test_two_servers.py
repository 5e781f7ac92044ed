"""Two ``sco-settle serve --ha`` processes on one PostgreSQL schema: only the writer-lock holder
writes; the other waits as a hot standby (503, nothing changed) and takes over, bumping the
store's writer epoch, when the writer is killed with SIGKILL. Never both."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest

from sco_settle.server import parse_database_url
from sco_settle.server.db import StateDb
from sco_settle.server.keys import KeyStore, Role
from tests.server.conftest import cli

from .conftest import HaServer, start_ha_server, writer_epoch

TAKEOVER_SECONDS_MAX = 20.0


def pay(server: HaServer, api_key: str, number: int) -> httpx.Response:
    body = {
        "instruction_id": f"TWO-{number}",
        "creditor_agent": "KCJBKZKX",
        "amount_minor": 10_000 + number,
        "currency": "KZT",
        "creditor_currency": "KZT",
    }
    headers = {"Authorization": f"Bearer {api_key}", "Idempotency-Key": f"two-{number}"}
    return httpx.post(server.base_url + "/v1/payments", json=body, headers=headers, timeout=30)


class Watch:
    """Polls both servers' /health; counts the moments both said they write."""

    def __init__(self, servers: list[HaServer]) -> None:
        self.servers = servers
        self.both = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            writing = [s for s in self.servers if s.process.poll() is None and s.health() == 200]
            self.samples += 1
            self.both += len(writing) > 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.slow
def test_one_writer_and_a_hot_standby_that_takes_over_after_sigkill(
    postgres_dsn, ha_schema, tmp_path
):
    first = start_ha_server(postgres_dsn, ha_schema, tmp_path / "first.log")
    first.wait_for_health(200)
    second = start_ha_server(postgres_dsn, ha_schema, tmp_path / "second.log")
    servers = [first, second]
    try:
        second.wait_for_health(503)
        state_db = StateDb(parse_database_url(postgres_dsn, schema=ha_schema))
        api_key = KeyStore(state_db).create("HSBKKZKX", Role.PARTICIPANT).api_key
        state_db.close()
        watch = Watch(servers)
        acked = [pay(first, api_key, n) for n in range(5)]
        assert [answer.status_code for answer in acked] == [201] * 5
        refused = pay(second, api_key, 99)
        assert refused.status_code == 503 and refused.json()["role"] == "standby"
        assert refused.headers["Retry-After"] == "1"
        epoch = writer_epoch(postgres_dsn, ha_schema)
        first.process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        first.process.wait()
        second.wait_for_health(200, TAKEOVER_SECONDS_MAX)
        takeover = time.monotonic() - killed_at
        watch.stop()
        assert watch.samples > 10 and watch.both == 0
        assert writer_epoch(postgres_dsn, ha_schema) == epoch + 1
        check_taken_over(second, api_key, acked)
        third = start_ha_server(postgres_dsn, ha_schema, tmp_path / "third.log")
        servers.append(third)
        third.wait_for_health(503)  # the killed one, back: now the standby
        assert pay(third, api_key, 98).status_code == 503
    finally:
        for server in servers:
            server.stop()
    print(f"takeover after SIGKILL: {takeover:.2f} s")
    verified = cli("verify", "--db", postgres_dsn, "--schema", ha_schema)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "payment records reconcile with the ledger" in verified.stdout


def check_taken_over(server: HaServer, api_key: str, acked: list[httpx.Response]) -> None:
    """Every payment the killed writer acknowledged is there, with its status; the one the
    standby refused never happened; the new writer pays."""
    auth = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=server.base_url, headers=auth, timeout=30) as http:
        for answer in acked:
            shown = http.get(f"/v1/payments/{answer.json()['payment_id']}")
            assert shown.status_code == 200 and shown.json()["status"] == answer.json()["status"]
        assert http.get("/v1/payments/HSBKKZKX:TWO-99").status_code == 404
    assert pay(server, api_key, 5).status_code == 201
