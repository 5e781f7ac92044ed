"""The corridor report's totals are exact integers of any size (review finding M1: SQLite's
``sum`` overflowed past 2^63 - 1 and the report answered 500 for good)."""

from __future__ import annotations

import asyncio
import sqlite3

import httpx
import pytest

from sco_settle.server import ServerConfig, parse_database_url
from sco_settle.server.app import build_app, close_context, open_context
from sco_settle.server.keys import Role

DEBTOR, CREDITOR = "BKCHCNBJ", "ICBKCNBJ"
HUGE = 2**63 - 1


@pytest.fixture(params=["sqlite", "postgres"])
def where(request, tmp_path):
    """(server configuration, how to run SQL on its payment records) on SQLite or PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "report.db"

        def execute(statement, params):
            with sqlite3.connect(path) as db:
                db.execute(statement, params)

        return ServerConfig(parse_database_url(f"sqlite:///{path}")), execute
    import psycopg
    from psycopg import sql

    dsn = request.getfixturevalue("postgres_dsn")
    schema = request.getfixturevalue("pg_schema")

    def execute(statement, params):
        with psycopg.connect(dsn, autocommit=True) as db:
            db.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            db.execute(statement.replace("?", "%s"), params)

    return ServerConfig(parse_database_url(dsn, schema=schema)), execute


def test_corridor_totals_past_int64_are_exact(where):
    asyncio.run(huge_corridor(*where))


async def huge_corridor(config, execute):
    context = open_context(config)
    debtor = context.keys.create(DEBTOR, Role.PARTICIPANT)
    operator = context.keys.create("PBOCCNBJ", Role.NETWORK_OPERATOR)
    transport = httpx.ASGITransport(app=build_app(context), raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://sco") as http:
            ids = []
            for n in range(2):
                paid = await http.post(
                    "/v1/payments",
                    json={
                        "instruction_id": f"huge-{n}",
                        "creditor_agent": CREDITOR,
                        "amount_minor": 1,
                        "currency": "CNY",
                    },
                    headers={
                        "Authorization": f"Bearer {debtor.api_key}",
                        "Idempotency-Key": f"huge-{n}",
                    },
                )
                assert paid.status_code == 201 and paid.json()["status"] == "settled", paid.text
                ids.append(paid.json()["payment_id"])
            # The engine will refuse such amounts; the records are made huge directly, as two
            # payments of AMOUNT_MAX once were. The settled value is what was sent (``sent``).
            for payment_id in ids:
                execute(
                    "UPDATE payments SET amount_minor = ?, delivered = ?, sent = ?"
                    " WHERE payment_id = ?",
                    (HUGE, HUGE, HUGE, payment_id),
                )
            for key in (operator, debtor):
                report = await http.get(
                    "/v1/reports/corridors", headers={"Authorization": f"Bearer {key.api_key}"}
                )
                assert report.status_code == 200, report.text
                (corridor,) = [c for c in report.json()["items"] if c["corridor"] == "CN-CN"]
                assert corridor["settled_count"] == 2
                assert corridor["settled_value_minor"] == 2 * HUGE
                assert corridor["delivered_value_minor"] == 2 * HUGE
    finally:
        close_context(context)


def test_exact_sums_in_sql_match_python_for_any_int64():
    from sco_settle.storage.payment_records_sqlite import exact_sum, exact_sum_sql

    values = [HUGE, HUGE, -(2**63), -1, 0, 1, 2**32, 2**32 - 1, -(2**32), 12345678901234567]
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (v INTEGER)")
    db.executemany("INSERT INTO t VALUES (?)", [(v,) for v in values * 3])
    assert exact_sum(*db.execute(f"SELECT {exact_sum_sql('v')} FROM t").fetchone()) == 3 * sum(
        values
    )
    assert exact_sum(*db.execute(f"SELECT {exact_sum_sql('v')} FROM t WHERE 0").fetchone()) == 0
