"""``sco-settle dashboard``, the one command, on a simulation's database, in a real browser.

A short simulation (``sco-settle simulate --db``) writes its ledger and payment records into a
SQLite file; the dashboard command is started while it still runs, waits for it (``--wait``),
then serves that file with a network-operator key it prints. The pages are checked against the
API's numbers for the same key; the key is revoked when the command stops.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from sco_settle.server import parse_database_url
from sco_settle.server.db import StateDb
from sco_settle.server.keys import KeyStatus, KeyStore
from tests.dashboard.test_browser import DESKTOP, watched  # noqa: F401 - the fixture
from tests.dashboard.test_browser_views import api_get
from tests.server.conftest import ROOT, LiveServer, free_port

START_SECONDS_MAX = 120
KEY_PREFIX = "scos_"


class Key:
    """The printed key, as ``LiveServer.client`` takes one."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "tests.server.cli_entry", *args]


def start_dashboard(db: Path, log: Path, *extra: str) -> tuple[LiveServer, Key]:
    """``sco-settle dashboard --db sqlite:///DB``: the server and the key it printed."""
    port = free_port()
    url = f"sqlite:///{db}"
    stdout = log.with_suffix(".out")
    with stdout.open("wb") as out, log.open("wb") as err:
        process = subprocess.Popen(
            _command("dashboard", "--db", url, "--port", str(port), *extra),
            cwd=ROOT,
            stdout=out,
            stderr=err,
        )
    server = LiveServer(url, "sco_settle", f"http://127.0.0.1:{port}", log, process)
    deadline = time.monotonic() + START_SECONDS_MAX
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dashboard exited: {stdout.read_text()}\n{log.read_text()}")
        printed = stdout.read_text()
        key = next((w for w in printed.split() if w.startswith(KEY_PREFIX)), None)
        try:
            healthy = httpx.get(server.base_url + "/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            healthy = False
        if key and healthy:
            return server, Key(key)
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"dashboard did not start: {stdout.read_text()}\n{log.read_text()}")


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Key]]:
    """Ten simulated days (2 % scale) into ``sim.db``; the dashboard command is started as soon
    as the simulation holds the file, and waits for it to finish."""
    folder = tmp_path_factory.mktemp("dashboard-command")
    db = folder / "sim.db"
    # Ten days, so that the simulation still runs when the dashboard starts (one day at 2 %
    # scale ends within seconds since the simulator got faster).
    args = ("--days", "10", "--seed", "7", "--scale", "0.02", "--db", str(db))
    simulation = subprocess.Popen(
        _command("simulate", *args, "--out", str(folder / "out")),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + START_SECONDS_MAX
    while not db.exists():  # The simulation takes the writer lock, then makes the file.
        assert simulation.poll() is None and time.monotonic() < deadline, "no simulation"
        time.sleep(0.05)
    server, key = start_dashboard(db, folder / "dashboard.log", "--wait", "600")
    assert simulation.wait(timeout=START_SECONDS_MAX) == 0
    printed = (folder / "dashboard.out").read_text()
    assert "waiting for it to end" in printed and "No database" not in printed
    yield server, key
    server.stop()


@pytest.fixture(scope="module")
def server(simulated: tuple[LiveServer, Key]) -> LiveServer:
    return simulated[0]  # for ``watched``


def _corridor_rows(page: Any) -> list[list[str]]:
    rows: list[list[str]] = page.eval_on_selector_all(
        "#live table tbody tr",
        "rows => rows.map(r => Array.from(r.children).map(c => c.innerText.trim()))",
    )
    return rows


def test_the_simulations_corridors_and_payments_equal_the_apis(watched, simulated):  # noqa: F811
    server, key = simulated
    one = watched(DESKTOP)
    one.sign_in(key.api_key)
    assert one.page.url.endswith("/dashboard/corridors")
    corridors = api_get(server, key, "/v1/reports/corridors", limit=1000)["items"]
    assert len(corridors) >= 10  # a simulated day crosses many corridors
    text = one.page.locator("#live table").inner_text()
    for row in corridors:
        share = Decimal(100 * row["settled_count"]) / Decimal(row["payments"])
        assert row["corridor"] in text and f"{share:.1f} %" in text
    assert len(_corridor_rows(one.page)) == len(corridors)
    one.goto("/dashboard/map")
    flows = one.page.eval_on_selector_all(
        "svg.map a.flow", "els => els.map(e => [e.dataset.corridor, e.dataset.currency])"
    )
    assert {tuple(flow) for flow in flows} == {(r["corridor"], r["currency"]) for r in corridors}
    payments = api_get(server, key, "/v1/payments", limit=1000)["items"]
    assert len(payments) >= 50  # one simulated day: more than a page of payments
    one.goto("/dashboard/payments")
    shown = one.page.eval_on_selector_all(
        "#live table tbody tr a", "links => links.map(a => a.innerText.trim())"
    )
    newest = [p["payment_id"] for p in reversed(payments)][: len(shown)]
    assert shown == newest and len(shown) == min(50, len(payments))
    last = payments[-1]
    one.goto("/dashboard/payments/" + last["payment_id"])
    facts = one.page.locator("dl.facts").inner_text()
    assert last["status"] in facts and last["instruction"]["debtor_agent"] in facts


def test_a_second_dashboard_on_a_file_in_use_says_so(simulated, tmp_path):
    server, _ = simulated
    db = server.db.removeprefix("sqlite:///")
    answer = subprocess.run(
        _command("dashboard", "--db", f"sqlite:///{db}", "--port", str(free_port())),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=START_SECONDS_MAX,
    )
    assert answer.returncode == 1
    assert "being written by another process" in answer.stderr and KEY_PREFIX not in answer.stdout


def test_the_printed_key_is_revoked_when_the_command_stops(tmp_path):
    db = tmp_path / "fresh.db"
    server, key = start_dashboard(db, tmp_path / "dashboard.log", "--no-demo")
    with server.client() as http:  # type: ignore[arg-type]
        http.headers["Authorization"] = f"Bearer {key.api_key}"
        assert http.get("/v1/accounts", params={"limit": 1}).status_code == 200
    os.kill(server.process.pid, signal.SIGTERM)
    server.process.wait(timeout=60)
    assert "Revoked the dashboard key" in (tmp_path / "dashboard.out").read_text()
    keys = KeyStore(StateDb(parse_database_url(f"sqlite:///{db}")))
    try:
        key_id = key.api_key.split("_")[1]
        record = keys.get(key_id)
        assert record is not None and record.status(int(time.time())) is KeyStatus.REVOKED
    finally:
        keys.db.close()
