"""``server.ha``: the reconnect policy, the failover URL, the writer lock, and a node's writer
terms in-process on the system PostgreSQL: the 503 between terms, a new term (and a new writer
epoch) after the writer lock is lost, and after the store's own connection is lost mid-write."""

from __future__ import annotations

import asyncio
import time

import httpx
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from sco_settle.ledger import InvariantViolation
from sco_settle.server import ServerConfig, parse_database_url
from sco_settle.server.app import close_context, create_app
from sco_settle.server.ha import (
    HaNode,
    HaSettings,
    NodeRole,
    ReconnectPolicy,
    WriterLock,
    failover_url,
    is_connection_loss,
)
from sco_settle.server.keys import KeyStore, Role
from sco_settle.storage.postgres import StoreFencedError

from .conftest import writer_epoch

FAST = HaSettings(reconnect=ReconnectPolicy(0.05, 0.2), check_interval_seconds=0.05)


def test_reconnect_delays_grow_by_the_factor_and_stop_at_the_cap():
    policy = ReconnectPolicy(0.1, 1.0, 2.0)
    assert [policy.delay(n) for n in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert policy.delay(10_000) == 1.0  # no overflow after a long outage
    with pytest.raises(AssertionError):
        ReconnectPolicy(2.0, 1.0)


def test_failover_url_adds_what_is_missing_and_keeps_what_is_set():
    url = "postgresql://postgres@127.0.0.1:6541,127.0.0.1:6542/test?connect_timeout=9"
    params = conninfo_to_dict(failover_url(url, HaSettings()))
    assert params["host"] == "127.0.0.1,127.0.0.1" and params["port"] == "6541,6542"
    assert params["target_session_attrs"] == "read-write"
    assert params["connect_timeout"] == "9"  # the URL's own value wins
    assert params["keepalives"] == "1" and params["tcp_user_timeout"] == "5000"
    already = "postgresql://h1,h2/db?target_session_attrs=read-write&connect_timeout=2"
    assert conninfo_to_dict(failover_url(already, HaSettings()))["dbname"] == "db"
    with pytest.raises(psycopg.ProgrammingError):
        failover_url("postgresql://h/db?no_such_parameter=1", HaSettings())


def test_only_a_lost_database_or_fencing_is_mended_by_a_new_term():
    lost = psycopg.OperationalError("server closed the connection unexpectedly")
    assert is_connection_loss(lost)
    wrapped = RuntimeError("commit failed")
    wrapped.__cause__ = lost
    assert is_connection_loss(wrapped)
    assert is_connection_loss(StoreFencedError("a newer writer took over"))
    assert not is_connection_loss(InvariantViolation("debits != credits"))
    assert not is_connection_loss(AssertionError("a bug"))


def node_for(dsn: str, schema: str) -> HaNode:
    config = ServerConfig(parse_database_url(failover_url(dsn, FAST), schema=schema))
    return HaNode(config, FAST, create_app, lambda app: close_context(app.state.context))


def test_between_terms_every_request_is_answered_503_at_once(postgres_dsn, ha_schema):
    node = node_for(postgres_dsn, ha_schema)  # never started: a standby with no term

    async def ask() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=node)
        async with httpx.AsyncClient(transport=transport, base_url="http://sco") as http:
            pay = await http.post("/v1/payments", json={"x": 1}, headers={"Idempotency-Key": "k"})
            return pay, await http.get("/health")

    pay, health = asyncio.run(ask())
    assert pay.status_code == 503 and pay.headers["Retry-After"] == "1"
    assert pay.headers["content-type"] == "application/problem+json"
    assert pay.json()["code"] == "ledger_unavailable" and pay.json()["role"] == "standby"
    assert health.status_code == 503 and health.json()["status"] == "standby"


def test_one_writer_lock_holder_at_a_time(postgres_dsn, ha_schema):
    first, second = (
        WriterLock(postgres_dsn, ha_schema, FAST),
        WriterLock(postgres_dsn, ha_schema, FAST),
    )
    try:
        assert first.try_take() and first.held()
        assert not second.try_take() and second.connected  # held by another session
        first.release()
        assert not first.held()
        assert second.try_take() and second.held()
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:  # the session is ended
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (second.application_name,),
            )
        assert not second.held() and not second.connected
        assert first.try_take()
    finally:
        first.release()
        second.release()


def terminate(dsn: str, application_name: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as admin:
        ended = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = %s",
            (application_name,),
        ).fetchone()
    assert ended is not None and ended[0] == 1, application_name


def wait_for_term(node: HaNode, term: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not (node.role is NodeRole.WRITER and node.terms == term):
        assert time.monotonic() < deadline, (node.role, node.terms)
        assert node.role is not NodeRole.FAILED
        time.sleep(0.02)


def test_losing_the_writer_lock_ends_the_term_and_a_new_one_bumps_the_epoch(
    postgres_dsn, ha_schema
):
    node = node_for(postgres_dsn, ha_schema)
    node.start()
    try:
        wait_for_term(node, 1)
        first_app = node.app
        rows = first_app.state.context.state_db.transaction()
        with rows as execute:  # idempotency records, too, wait for the standby in HA mode
            assert execute("SHOW synchronous_commit") == [("on",)]
        epoch = writer_epoch(postgres_dsn, ha_schema)
        terminate(postgres_dsn, node.writer_lock.application_name)
        wait_for_term(node, 2)
        assert node.app is not first_app
        assert not first_app.state.context.service._thread.is_alive()  # the old term is closed
        assert writer_epoch(postgres_dsn, ha_schema) == epoch + 1
    finally:
        node.stop()
    assert node.role is NodeRole.STOPPED


def test_a_write_cut_off_from_the_database_is_503_and_its_retry_lands_in_the_next_term(
    postgres_dsn, ha_schema
):
    node = node_for(postgres_dsn, ha_schema)
    node.start()
    try:
        wait_for_term(node, 1)
        key = KeyStore(node.app.state.context.state_db).create("HSBKKZKX", Role.PARTICIPANT)
        asyncio.run(cut_off_write(postgres_dsn, ha_schema, node, key.api_key))
    finally:
        node.stop()


async def cut_off_write(dsn: str, schema: str, node: HaNode, api_key: str) -> None:
    body = {
        "instruction_id": "HA-CUT-1",
        "creditor_agent": "KCJBKZKX",
        "amount_minor": 12_345,
        "currency": "KZT",
        "creditor_currency": "KZT",
    }
    headers = {"Authorization": f"Bearer {api_key}", "Idempotency-Key": "ha-cut-1"}
    transport = httpx.ASGITransport(app=node, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://sco") as http:
        terminate(dsn, f"sco-settle writer {schema}")  # the ledger store's own session
        cut = await http.post("/v1/payments", json=body, headers=headers)
        assert cut.status_code == 503, cut.text  # not acknowledged, and never a 500
        assert cut.json()["code"] == "ledger_unavailable" and "Retry-After" in cut.headers
        await asyncio.to_thread(wait_for_term, node, 2)
        again = await http.post("/v1/payments", json=body, headers=headers)
        assert again.status_code == 201, again.text
        shown = await http.get("/v1/payments/HSBKKZKX:HA-CUT-1", headers=headers)
        assert shown.json()["status"] == again.json()["status"] == "settled"
    with psycopg.connect(dsn) as connection:
        rows = connection.execute(
            f'SELECT count(*) FROM "{schema}".payments WHERE payment_id = %s',
            ("HSBKKZKX:HA-CUT-1",),
        ).fetchone()
    assert rows == (1,)  # exactly once
