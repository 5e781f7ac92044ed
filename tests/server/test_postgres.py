"""The same service over PostgreSQL: keys and idempotency in ``<schema>_api``; the ledger and the
payment records in ``<schema>``: all of its state in the one database."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from sco_settle.ledger.invariants import verify
from tests.server.conftest import CNY_BANKS, cli, start_server
from tests.server.test_concurrency import drive


@pytest.fixture
def pg_live(postgres_dsn, pg_schema, tmp_path):
    server = start_server(postgres_dsn, tmp_path / "server.log", schema=pg_schema)
    yield server
    server.stop()


def test_postgres_service_end_to_end(pg_live, postgres_dsn, pg_schema):
    from sco_settle.storage.postgres import PostgresStore

    server = pg_live
    keys = {bic: server.key(bic) for bic in CNY_BANKS}
    accounts = {}
    for bic in CNY_BANKS:
        with server.client(keys[bic]) as http:
            accounts[bic] = http.get(f"/v1/accounts/settlement:{bic}:CNY").json()["id"]
    with ThreadPoolExecutor(8) as pool:
        moves = list(pool.map(lambda n: drive(server, keys, accounts, n), range(8)))
    assert any(moves)

    first, second = CNY_BANKS[0], CNY_BANKS[1]
    with server.client(keys[first]) as http:
        foreign = http.get(f"/v1/accounts/{accounts[second]}")
        assert foreign.status_code == 404 and foreign.json()["code"] == "account_not_found"
        payments = http.get("/v1/payments?limit=3").json()
        assert len(payments["items"]) == 3 and payments["next_cursor"]
        following = http.get(f"/v1/payments?limit=3&after={payments['next_cursor']}").json()
        seen = [p["payment_id"] for p in payments["items"] + following["items"]]
        assert len(set(seen)) == len(seen) == 6
        mine = payments["items"][0]
        assert first in (mine["instruction"]["debtor_agent"], mine["instruction"]["creditor_agent"])
        detail = http.get(f"/v1/payments/{mine['payment_id']}").json()
        assert detail["status"] == mine["status"] and detail["events"][0]["status"] == "received"
        corridors = http.get("/v1/reports/corridors").json()["items"]
        assert [c["corridor"] for c in corridors] == ["CN-CN"]
        assert corridors[0]["payments"] >= 6 and corridors[0]["settled_value_minor"] > 0

    revoked = cli(
        "keys", "revoke", keys[first].record.key_id, "--db", postgres_dsn, "--schema", pg_schema
    )
    assert revoked.returncode == 0, revoked.stderr
    with server.client(keys[first]) as http:
        assert http.get("/v1/accounts").status_code == 401

    server.stop()
    store = PostgresStore(postgres_dsn, schema=pg_schema, readonly=True)
    try:
        report = verify(store)
    finally:
        store.close()
    assert report.ok, report.violation
    # The payment records are in the ledger's schema, and reconcile with the ledger.
    verified = cli("verify", "--db", postgres_dsn, "--schema", pg_schema)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "payment records reconcile with the ledger" in verified.stdout


def test_payment_records_may_stay_in_a_sqlite_file_of_their_own(postgres_dsn, pg_schema, tmp_path):
    # ``serve --payment-records PATH`` (formerly ``--journal``): for a PostgreSQL deployment that
    # kept its payment records in SQLite before they moved into the ledger's schema.
    import asyncio

    import httpx
    import psycopg
    from psycopg import sql

    from sco_settle.server import ServerConfig, parse_database_url
    from sco_settle.server.app import build_app, close_context, open_context
    from sco_settle.server.keys import Role
    from sco_settle.storage.payment_records_sqlite import SqlitePaymentRecords

    path = tmp_path / "records.db"
    database = parse_database_url(postgres_dsn, schema=pg_schema)
    context = open_context(ServerConfig(database, payment_records_path=path))

    async def pay_and_list() -> list[str]:
        key = context.keys.create(CNY_BANKS[0], Role.PARTICIPANT)
        headers = {"Authorization": f"Bearer {key.api_key}", "Idempotency-Key": "apart-1"}
        transport = httpx.ASGITransport(app=build_app(context))
        async with httpx.AsyncClient(transport=transport, base_url="http://sco") as http:
            body = {"instruction_id": "apart-1", "creditor_agent": CNY_BANKS[1], "currency": "CNY"}
            paid = await http.post("/v1/payments", json=body | {"amount_minor": 5}, headers=headers)
            assert paid.status_code == 201, paid.text
            listed = await http.get("/v1/payments", headers=headers)
            return [item["payment_id"] for item in listed.json()["items"]]

    try:
        assert asyncio.run(pay_and_list()) == [f"{CNY_BANKS[0]}:apart-1"]
    finally:
        close_context(context)
    records = SqlitePaymentRecords(path, readonly=True)
    try:
        assert [p.payment_id for p, _ in records.records()] == [f"{CNY_BANKS[0]}:apart-1"]
    finally:
        records.close()
    with psycopg.connect(postgres_dsn) as connection:
        query = sql.SQL("SELECT count(*) FROM {}.payments").format(sql.Identifier(pg_schema))
        assert connection.execute(query).fetchone() == (0,)
