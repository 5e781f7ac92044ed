"""Fixtures for the HA tests: a schema pair of their own on the system PostgreSQL (5432), and
``sco-settle serve --ha`` as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql

from tests.server.conftest import ROOT, free_port


@pytest.fixture
def ha_schema(postgres_dsn):
    """A unique schema name; it and its ``_api`` companion are dropped after the test."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    schema = f"sco_ha_{worker}_{uuid.uuid4().hex[:10]}"
    yield schema
    with psycopg.connect(postgres_dsn, autocommit=True) as connection:
        connection.execute("SET lock_timeout = '10s'")
        for name in (schema, f"{schema}_api"):
            connection.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name))
            )


def writer_epoch(dsn: str, schema: str) -> int:
    with psycopg.connect(dsn) as connection:
        row = connection.execute(
            sql.SQL("SELECT value FROM {}.meta WHERE key = 'writer_epoch'").format(
                sql.Identifier(schema)
            )
        ).fetchone()
    assert row is not None
    return int(row[0])


@dataclass
class HaServer:
    """``sco-settle serve --ha`` in a process of its own."""

    base_url: str
    log_path: Path
    process: subprocess.Popen[bytes]

    def health(self) -> int:
        try:
            return httpx.get(self.base_url + "/health", timeout=2).status_code
        except httpx.HTTPError:
            return 0

    def wait_for_health(self, status: int, seconds: float = 60) -> float:
        """Seconds until /health answered ``status``."""
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log_path.read_text()}")
            if self.health() == status:
                return time.monotonic() - started
            time.sleep(0.05)
        raise AssertionError(f"/health never answered {status}:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_ha_server(dsn: str, schema: str, log_path: Path) -> HaServer:
    port = free_port()
    command = [
        sys.executable, "-m", "tests.server.cli_entry", "serve", "--ha",
        "--db", dsn, "--schema", schema, "--port", str(port),
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log)
    return HaServer(f"http://127.0.0.1:{port}", log_path, process)
