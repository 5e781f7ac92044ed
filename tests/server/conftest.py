"""Fixtures for the API tests: live servers (a real uvicorn process on a free loopback port),
keys, and PostgreSQL.

PostgreSQL variants talk to a real server (SCO_TEST_POSTGRES_DSN, default
postgresql://postgres@127.0.0.1:5432/test), each in schemas of its own that are dropped after it.
They fail under CI (CI=true) when PostgreSQL or the PostgreSQL store is missing, and are skipped
elsewhere.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from sco_settle.server import parse_database_url
from sco_settle.server.db import StateDb
from sco_settle.server.keys import IssuedKey, KeyStore, Role

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_DSN = os.environ.get("SCO_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
START_SECONDS_MAX = 60
CNY_BANKS = ("BKCHCNBJ", "ICBKCNBJ", "ICBKCNBJSJG", "XIHCCNB2", "BOXJCNU0")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The ``sco-settle`` command line (with ``serve`` and ``keys`` mounted)."""
    return subprocess.run(
        [sys.executable, "-m", "tests.server.cli_entry", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass
class LiveServer:
    db: str
    schema: str
    base_url: str
    log_path: Path
    process: subprocess.Popen[bytes]
    extra: list[str] = field(default_factory=list)
    _keys: KeyStore | None = None

    def keys(self) -> KeyStore:
        if self._keys is None:
            self._keys = KeyStore(StateDb(parse_database_url(self.db, schema=self.schema)))
        return self._keys

    def key(self, participant: str, role: Role = Role.PARTICIPANT) -> IssuedKey:
        return self.keys().create(participant, role)

    def client(self, issued: IssuedKey | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {issued.api_key}"} if issued else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=60, verify=False)

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._keys is not None:
            self._keys.db.close()
            self._keys = None


def start_server(db: str, log_path: Path, *extra: str, schema: str = "sco_settle") -> LiveServer:
    port = free_port()
    log = log_path.open("wb")
    command = [
        sys.executable,
        "-m",
        "tests.server.cli_entry",
        "serve",
        "--db",
        db,
        "--port",
        str(port),
        "--schema",
        schema,
        *extra,
    ]
    process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log)
    log.close()
    server = LiveServer(db, schema, f"http://127.0.0.1:{port}", log_path, process, list(extra))
    deadline = time.monotonic() + START_SECONDS_MAX
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(server.base_url + "/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"server did not answer in {START_SECONDS_MAX} s:\n{server.log()}")


@pytest.fixture(scope="session")
def live(tmp_path_factory):
    """A server on a fresh SQLite ledger (the SCO network installed), shared by the session:
    tests use keys, instruction ids and idempotency keys of their own."""
    folder = tmp_path_factory.mktemp("live")
    server = start_server(f"sqlite:///{folder}/ledger.db", folder / "server.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    reason = None
    if importlib.util.find_spec("sco_settle.storage.postgres") is None:
        reason = "sco_settle.storage.postgres is missing"
    else:
        try:
            import psycopg

            with psycopg.connect(POSTGRES_DSN, connect_timeout=5) as connection:
                connection.execute("SELECT 1")
        except Exception as error:  # psycopg.OperationalError and friends
            reason = f"PostgreSQL not reachable at {POSTGRES_DSN} (SCO_TEST_POSTGRES_DSN): {error}"
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run scripts/ci_postgres.sh first", pytrace=False)
        pytest.skip(reason)
    return POSTGRES_DSN


@pytest.fixture
def pg_schema(postgres_dsn):
    """A unique schema name; it and its ``_api`` companion are dropped after the test."""
    import psycopg
    from psycopg import sql

    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    schema = f"sco_api_{worker}_{uuid.uuid4().hex[:10]}"
    yield schema
    with psycopg.connect(postgres_dsn, autocommit=True) as connection:
        connection.execute("SET lock_timeout = '10s'")
        for name in (schema, f"{schema}_api"):
            connection.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name))
            )
