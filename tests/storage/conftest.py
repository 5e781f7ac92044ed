"""Fixtures for the store tests: a fresh store of each kind, and a PostgreSQL server.

PostgreSQL tests talk to a real server (SCO_TEST_POSTGRES_DSN, default
postgresql://postgres@127.0.0.1:5432/test). Each test gets a schema of its own, dropped after it.
If the server cannot be reached the tests fail under CI (CI=true) and are skipped elsewhere, so a
laptop without PostgreSQL still runs the rest of the suite.
"""

from __future__ import annotations

import pytest

from sco_settle.domain.account import Account, AccountFlags
from sco_settle.ledger import Ledger
from sco_settle.storage import MemoryStore, SqliteStore
from tests.conftest import POSTGRES_DSN  # noqa: F401 - re-exported for the store tests.
from tests.ledger.conftest import CMNED, DMNEC, FakeClock

HISTORY = int(AccountFlags.HISTORY)
STORE_KINDS = ["memory", "sqlite", "postgres", "log"]


@pytest.fixture(params=STORE_KINDS)
def store_factory(request, tmp_path):
    """``make(readonly=False)`` opens a store; calling it again reopens the same storage.

    The memory store has no storage to reopen, so every call returns the same instance. Stores
    still open at the end of the test are closed (releasing their writer locks).
    """
    kind = request.param
    memory = MemoryStore()
    opened = []
    if kind == "postgres":
        from sco_settle.storage.postgres import PostgresStore

        dsn = request.getfixturevalue("postgres_dsn")
        schema = request.getfixturevalue("pg_schema")

    def make(readonly=False):
        if kind == "memory":
            return memory
        if kind == "sqlite":
            store = SqliteStore(tmp_path / "ledger.db", readonly=readonly)
        elif kind == "log":
            from sco_settle.storage.log import LogStore

            store = LogStore(tmp_path / "ledger.log", readonly=readonly)
        else:
            store = PostgresStore(dsn, schema=schema, readonly=readonly)
        opened.append(store)
        return store

    make.kind = kind
    make.location = {"sqlite": tmp_path / "ledger.db", "log": tmp_path / "ledger.log"}.get(kind)
    if kind == "postgres":
        make.dsn, make.schema = dsn, schema
    yield make
    for store in opened:
        store.close()


@pytest.fixture
def clock():
    return FakeClock()


ACCOUNTS = [
    Account(1, "PBOCCNBJ", "CNY", "issuance"),
    Account(2, "BKCHCNBJ", "CNY", "settlement", flags=DMNEC),
    Account(3, "ICBKCNBJ", "CNY", "settlement", flags=DMNEC),
    Account(4, "NBRKKZKX", "KZT", "issuance"),
    Account(5, "HSBKKZKX", "KZT", "settlement", flags=DMNEC, credit_limit=500),
    Account(6, "NBRKKZKX", "CNY", "swap-line", flags=CMNED, credit_limit=1_000),
    Account(7, "ICBKCNBJ", "CNY", "customer", flags=DMNEC | HISTORY),
]


@pytest.fixture
def ledger(store_factory, clock):
    """A ledger on a fresh store with the seven accounts of ``ACCOUNTS``."""
    ledger = Ledger(store_factory(), clock)
    assert set(ledger.create_accounts(ACCOUNTS)) == {"ok"}
    yield ledger
    ledger.close()
