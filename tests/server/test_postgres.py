"""The same service over PostgreSQL: keys and idempotency in ``<schema>_api``, the ledger in
``<schema>``, the payment journal in SQLite (``--journal``)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from sco_settle.ledger.invariants import verify
from tests.server.conftest import CNY_BANKS, cli, start_server
from tests.server.test_concurrency import drive


@pytest.fixture
def pg_live(postgres_dsn, pg_schema, tmp_path):
    server = start_server(
        postgres_dsn,
        tmp_path / "server.log",
        "--journal",
        str(tmp_path / "journal.db"),
        schema=pg_schema,
    )
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
