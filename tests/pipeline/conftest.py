from __future__ import annotations

import pytest

from sco_settle.ledger import Ledger
from sco_settle.network import load_network
from sco_settle.network.install import install_network
from sco_settle.payments.engine import EngineSettings, PaymentEngine
from sco_settle.payments.network_view import NetworkView, load_rates
from sco_settle.storage import SqliteStore
from sco_settle.storage.payment_records_sqlite import SqlitePaymentRecords


class SimClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000 * 10**9

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 10**9)


@pytest.fixture(scope="session")
def network():
    return load_network("sco")


@pytest.fixture(scope="session")
def view(network):
    return NetworkView(network, load_rates())


@pytest.fixture(params=["sqlite", "postgres"])
def make_engine(request, tmp_path, view):
    """Engines on a fresh ledger, on SQLite or on a real PostgreSQL server (one schema each),
    each with its payment records in the ledger's database."""
    created = []
    if request.param == "postgres":
        from sco_settle.storage.payment_records_postgres import PostgresPaymentRecords
        from sco_settle.storage.postgres import PostgresStore

        dsn = request.getfixturevalue("postgres_dsn")
        schema = request.getfixturevalue("pg_schema")

    def schema_of(number: int) -> str:
        return f"{schema}_{number}"[:63]  # PostgreSQL identifiers are at most 63 bytes.

    def open_store(number: int):
        if request.param == "sqlite":
            return SqliteStore(tmp_path / f"p{number}.db")
        return PostgresStore(dsn, schema=schema_of(number))

    def open_records(number: int):
        if request.param == "sqlite":  # Not fsync'd: these tests do not cut the power.
            return SqlitePaymentRecords(tmp_path / f"p{number}.db", durable=False)
        return PostgresPaymentRecords(dsn, schema=schema_of(number))

    def make(settings: EngineSettings | None = None, **kwargs):
        view.invalidate()  # The shared view's cached graph belongs to another test's ledger.
        clock = SimClock()
        ledger = Ledger(open_store(len(created)), clock)
        install_network(ledger, view.network)
        records = open_records(len(created))
        engine = PaymentEngine(ledger, view, records, settings or EngineSettings(), **kwargs)
        engine.clock = clock
        created.append(engine)
        return engine

    yield make
    for engine in created:
        engine.ledger.close()
        engine.records.close()
    if request.param == "postgres":
        from psycopg import sql

        admin = request.getfixturevalue("pg_admin")
        for number in range(len(created)):
            name = sql.Identifier(schema_of(number))
            admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(name))


def balance(engine, key):
    """The account's posted balance: the money it holds (a liquidity reservation, a pending
    debit, holds some of it back without moving it)."""
    state = engine.ledger.lookup_account(engine.view.account_id(key))
    return state.credits_posted - state.debits_posted
