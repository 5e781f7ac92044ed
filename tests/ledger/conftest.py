from __future__ import annotations

import pytest

from sco_settle.domain.account import Account, AccountFlags
from sco_settle.ledger import Ledger
from sco_settle.storage import MemoryStore, SqliteStore

DMNEC = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
CMNED = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
SECOND = 1_000_000_000


class FakeClock:
    """A controllable clock (ns): tests move time explicitly, so expiry is deterministic."""

    def __init__(self, now: int = 1_000 * SECOND) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: int) -> None:
        self.now += seconds * SECOND


@pytest.fixture(params=["memory", "sqlite", "postgres", "log"])
def store_factory(request, tmp_path):
    """Builds a fresh store; for SQLite, PostgreSQL and the log, calling it again reopens the same
    data. A ``Ledger`` on the log store runs the compiled engine (``FastLedger``)."""

    path = tmp_path / "ledger.db"
    memory = MemoryStore()
    opened = []
    if request.param == "postgres":
        from sco_settle.storage.postgres import PostgresStore

        dsn = request.getfixturevalue("postgres_dsn")
        schema = request.getfixturevalue("pg_schema")

    def make():
        if request.param == "memory":
            return memory
        if request.param == "log":
            from sco_settle.storage.log import LogStore

            store = LogStore(tmp_path / "ledger.log")
        elif request.param == "sqlite":
            store = SqliteStore(path)
        else:
            store = PostgresStore(dsn, schema=schema)
        opened.append(store)
        return store

    make.kind = request.param
    yield make
    for store in opened:
        store.close()


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def ledger(store_factory, clock):
    ledger = Ledger(store_factory(), clock)
    results = ledger.create_accounts(
        [
            Account(1, "PBOCCNBJ", "CNY", "issuance"),
            Account(2, "BKCHCNBJ", "CNY", "settlement", flags=DMNEC),
            Account(3, "ICBKCNBJ", "CNY", "settlement", flags=DMNEC),
            Account(4, "NBRKKZKX", "KZT", "issuance"),
            Account(5, "HSBKKZKX", "KZT", "settlement", flags=DMNEC, credit_limit=500),
            Account(6, "NBRKKZKX", "CNY", "swap-line", flags=CMNED, credit_limit=1_000),
            Account(7, "ICBKCNBJ", "CNY", "customer", flags=DMNEC | int(AccountFlags.HISTORY)),
        ]
    )
    assert set(results) == {"ok"}
    yield ledger
    ledger.close()
