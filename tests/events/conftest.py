"""A nats-server of the test's own (a free port, a temporary JetStream store, the users and
permissions of ``sco-settle events nats-config``), which the test may kill and restart; and a
consumer that rebuilds balances from a participant's events alone.

nats-server comes from Debian's package (``.ci/run`` installs it). Without it the tests fail
under CI (CI=true) and are skipped elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import nats
import pytest

from sco_settle.events.access import PUBLISHER_USER, inbox_prefix, nats_server_config
from sco_settle.events.publisher import STREAM, NatsSettings, consumer_name
from tests.audit.conftest import sco_view  # noqa: F401 - the shared fixture.

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
PARTICIPANTS = ("HSBKKZKX", "KCJBKZKX", "BKCHCNBJ", "ICBKKZKX")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class NatsServer:
    folder: Path
    port: int
    passwords: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    starts: int = field(default=0)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def settings(self) -> NatsSettings:
        password = self.passwords[PUBLISHER_USER]
        return NatsSettings(url=self.url, user=PUBLISHER_USER, password=password)

    def start(self) -> None:
        log = (self.folder / f"nats{self.starts}.log").open("wb")
        self.starts += 1
        self.process = subprocess.Popen(
            [NATS_SERVER, "-c", str(self.folder / "nats.conf")], stdout=log, stderr=log
        )
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("nats-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)

    def restart(self) -> None:
        self.stop()
        self.start()

    def environment(self) -> dict[str, str]:
        return {
            "SCO_SETTLE_EVENTS_NATS_URL": self.url,
            "SCO_SETTLE_EVENTS_NATS_USER": PUBLISHER_USER,
            "SCO_SETTLE_EVENTS_NATS_PASSWORD": self.passwords[PUBLISHER_USER],
        }


@pytest.fixture
def nats_server(tmp_path):
    if not os.path.exists(NATS_SERVER):
        reason = "nats-server not installed (apt-get install nats-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; .ci/run must install it", pytrace=False)
        pytest.skip(reason)
    from sco_settle.network import load_network

    users = [PUBLISHER_USER, *sorted(load_network("sco").participants_by_bic)]
    passwords = {user: f"pw-{user.lower()}-{n}" for n, user in enumerate(users)}
    port = free_port()
    config = nats_server_config(
        passwords, stream=STREAM, port=port, store_dir=str(tmp_path / "jetstream")
    )
    (tmp_path / "nats.conf").write_text(config)
    server = NatsServer(tmp_path, port, passwords)
    server.start()
    yield server
    server.stop()


async def connect_as(server: NatsServer, participant: str, **options):
    return await nats.connect(
        server.url,
        user=participant,
        password=server.passwords[participant],
        inbox_prefix=inbox_prefix(participant),
        max_reconnect_attempts=0,
        **options,
    )


async def fetch_all(server: NatsServer, participant: str) -> list:
    """Every message of ``participant``'s consumer, with its own credentials, acknowledged."""
    nc = await connect_as(server, participant)
    try:
        js = nc.jetstream(timeout=5)
        info = await js.consumer_info(STREAM, consumer_name(participant))
        remaining = int(info.num_pending)
        subscription = await js.pull_subscribe_bind(consumer_name(participant), stream=STREAM)
        received = []
        while remaining > 0:
            batch = await subscription.fetch(min(500, remaining), timeout=5)
            for message in batch:
                await message.ack()
                received.append(message)
            remaining -= len(batch)
        return received
    finally:
        await nc.close()


def rebuild_balances(messages) -> dict[int, list[int]]:
    """Account id -> [debits pending, debits posted, credits pending, credits posted], from the
    transfer and expiry messages alone."""
    balances: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for message in messages:
        body = json.loads(message.data)
        if body["type"] in ("transfer", "pending_expired"):
            delta = body["delta"]
            counters = balances[int(body["account_id"])]
            for index, name in enumerate(
                ("debits_pending", "debits_posted", "credits_pending", "credits_posted")
            ):
                counters[index] += delta[name]
    return dict(balances)


def ledger_balances(store, participant: str) -> dict[int, list[int]]:
    return {
        stored.account.id: list(stored.balance())
        for stored in store.iter_accounts()
        if stored.account.participant == participant and any(stored.balance())
    }


def run(coroutine):
    return asyncio.run(coroutine)
