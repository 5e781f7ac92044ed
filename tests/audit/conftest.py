"""A database with every kind of audited change, on SQLite or PostgreSQL, and a way to edit its
rows behind the application's back (as an attacker with database access would)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from sco_settle.domain.transfer import Transfer, TransferFlags
from sco_settle.ledger import Ledger
from sco_settle.network import load_network
from sco_settle.network.install import install_network
from sco_settle.payments.engine import PaymentEngine
from sco_settle.payments.model import Payment, PaymentStatus
from sco_settle.payments.network_view import NetworkView, load_rates
from sco_settle.server.config import parse_database_url
from sco_settle.server.db import StateDb
from sco_settle.server.keys import KeyStore, Role

KZ_A, KZ_B, CN_A = "HSBKKZKX", "KCJBKZKX", "BKCHCNBJ"


class SimClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000 * 10**9

    def __call__(self) -> int:
        return self.now


@dataclass
class AuditedDb:
    url: str
    schema: str
    kind: str
    connection: Any  # A raw connection for tampering (autocommit).
    ledger_prefix: str
    api_prefix: str

    def run(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self.kind == "postgres":
            statement = statement.replace("?", "%s")
        cursor = self.connection.execute(
            statement.format(L=self.ledger_prefix, A=self.api_prefix), params
        )
        return list(cursor.fetchall()) if cursor.description else []


@pytest.fixture(scope="session")
def sco_view():
    return NetworkView(load_network("sco"), load_rates())


def populate(url: str, schema: str, view: NetworkView) -> None:
    """Accounts and funding (the network), payments (settled, rejected), client transfers
    (pending then posted, pending then expired), keys (created, rotated, revoked)."""
    from sco_settle.storage.payment_records_postgres import PostgresPaymentRecords
    from sco_settle.storage.payment_records_sqlite import SqlitePaymentRecords
    from sco_settle.storage.postgres import PostgresStore
    from sco_settle.storage.sqlite import SqliteStore

    postgres = url.startswith("postgresql://")
    clock = SimClock()
    store = PostgresStore(url, schema=schema) if postgres else SqliteStore(url)
    ledger = Ledger(store, clock)
    view.invalidate()
    install_network(ledger, view.network)
    records = PostgresPaymentRecords(url, schema=schema) if postgres else SqlitePaymentRecords(url)
    engine = PaymentEngine(ledger, view, records)
    engine.clock = clock
    outcomes = engine.submit_many(
        [
            Payment("p1", KZ_A, KZ_B, 1_000_00, "KZT", "KZT"),
            Payment("p2", KZ_A, CN_A, 50_000_00, "KZT", "CNY"),
            Payment("p3", KZ_A, KZ_B, 0, "KZT", "KZT"),  # Rejected: zero amount.
        ]
    )
    assert [o.status for o in outcomes][:2] == [PaymentStatus.SETTLED] * 2
    debit, credit = (a.account.id for a in ledger.accounts()[:2])
    pending = TransferFlags.PENDING
    ledger.create_transfers([Transfer(901, debit, credit, 5, pending, timeout=1, code=1)])
    ledger.create_transfers([Transfer(902, debit, credit, 7, pending, code=1)])
    ledger.create_transfers([Transfer(903, pending_id=902, flags=TransferFlags.POST_PENDING)])
    clock.now += 2 * 10**9
    assert ledger.expire_pending() == 1
    records.close()
    ledger.close()
    state = StateDb(parse_database_url(url, schema=schema))
    keys = KeyStore(state)
    first = keys.create(KZ_A, Role.PARTICIPANT, label="ops", actor="cli")
    keys.rotate(first.record.key_id, actor="cli")
    keys.revoke(keys.create(CN_A, Role.PARTICIPANT).record.key_id, actor="cli")
    state.close()


@pytest.fixture(params=["sqlite", "postgres"])
def audited_db(request, tmp_path, sco_view):
    if request.param == "sqlite":
        import sqlite3

        path = tmp_path / "audited.db"
        populate(str(path), "sco_settle", sco_view)
        connection = sqlite3.connect(path, isolation_level=None)
        yield AuditedDb(str(path), "sco_settle", "sqlite", connection, "", "")
        connection.close()
        return
    import psycopg
    from psycopg import sql

    dsn = request.getfixturevalue("postgres_dsn")
    schema = request.getfixturevalue("pg_schema")
    populate(dsn, schema, sco_view)
    with psycopg.connect(dsn, autocommit=True) as connection:
        yield AuditedDb(dsn, schema, "postgres", connection, f'"{schema}".', f'"{schema}_api".')
        connection.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(f"{schema}_api"))
        )
