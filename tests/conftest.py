"""Shared fixtures: a real PostgreSQL server for the tests that run on every store.

PostgreSQL tests talk to a real server (SCO_TEST_POSTGRES_DSN, default
postgresql://postgres@127.0.0.1:5432/test). Each test gets a schema of its own, dropped after it.
If the server cannot be reached the tests fail under CI (CI=true) and are skipped elsewhere.
"""

from __future__ import annotations

import os
import uuid

import psycopg
import pytest
from hypothesis import settings
from psycopg import sql

# Property tests check results, not speed: on a shared 2-core machine (and CI) an example may
# take longer than Hypothesis's default 200 ms deadline now and then, which it reports as a
# flaky failure. Speed is measured by benchmarks/, never by tests.
settings.register_profile("sco-settle", deadline=None)
settings.load_profile("sco-settle")

POSTGRES_DSN = os.environ.get("SCO_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    try:
        with psycopg.connect(POSTGRES_DSN, connect_timeout=5) as connection:
            connection.execute("SELECT 1")
    except psycopg.OperationalError as error:
        reason = f"PostgreSQL not reachable at {POSTGRES_DSN} (set SCO_TEST_POSTGRES_DSN): {error}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run scripts/ci_postgres.sh first", pytrace=False)
        pytest.skip(reason)
    return POSTGRES_DSN


@pytest.fixture
def pg_admin(postgres_dsn):
    """A plain connection for what a test does behind the store's back."""
    with psycopg.connect(postgres_dsn, autocommit=True) as connection:
        # A test that leaves a transaction open must not hang the schema drop forever.
        connection.execute("SET lock_timeout = '10s'")
        yield connection


@pytest.fixture
def pg_schema(pg_admin):
    """A unique schema name, dropped (with everything in it) after the test."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    schema = f"sco_test_{worker}_{uuid.uuid4().hex[:12]}"
    yield schema
    pg_admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
