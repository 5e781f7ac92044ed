"""Admission control (``server/admission.py``): what is decided about a request before it is
routed and before its body is read (issue 8, the abuse benchmark's target). A caller over its
failure limit or write quota is refused without a worker thread, a database read or a byte of
its body read; refusals are answered after one fixed delay whatever the cause; a participant's
writes beyond its slots wait unread while other participants' pass."""

from __future__ import annotations

import asyncio
import concurrent.futures
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from sco_settle.server import ServerConfig, parse_database_url
from sco_settle.server.admission import WriteSlots, quota_routes
from sco_settle.server.app import build_app, close_context, open_context
from sco_settle.server.errors import ApiError
from sco_settle.server.keys import Role
from sco_settle.server.routes import ROUTERS
from sco_settle.server.routes.common import write_caller

A, B = "BKCHCNBJ", "ICBKCNBJ"
NO_DELAY = {"refusal_delay_seconds": 0.0}


@dataclass
class Served:
    context: Any
    keys: dict[str, Any]  # BIC -> issued key
    app: Any
    address: str

    def http(self, address: str = "") -> httpx.AsyncClient:
        """A client from ``address`` (default: the one given to ``served``)."""
        client = (address or self.address, 4000)
        transport = httpx.ASGITransport(app=self.app, client=client)
        return httpx.AsyncClient(transport=transport, base_url="http://sco", timeout=60)


@asynccontextmanager
async def served(tmp_path, client: str = "198.51.100.8", **limits: Any) -> AsyncIterator[Served]:
    """An app over a fresh ledger, with a participant key for A and for B."""
    config = ServerConfig(parse_database_url(f"sqlite:///{tmp_path}/admission.db"), **limits)
    context = open_context(config)
    keys = {bic: context.keys.create(bic, Role.PARTICIPANT) for bic in (A, B)}
    try:
        yield Served(context, keys, build_app(context), client)
    finally:
        close_context(context)


def bearer(issued: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {issued.api_key}"}


def forged(key_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer scos_{key_id}_{secrets.token_urlsafe(32)}"}


def payment(creditor: str, tag: str = "") -> dict[str, Any]:
    return {
        "instruction_id": tag or uuid.uuid4().hex[:16],
        "creditor_agent": creditor,
        "amount_minor": 1,
        "currency": "CNY",
    }


class Body:
    """A request body that records whether the server read any of it."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.read = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.read = True
        yield self.data


def json_body(data: Any) -> Body:
    import json

    return Body(json.dumps(data).encode())


# -- refusals before anything else ---------------------------------------------------------


def test_a_limited_client_is_refused_without_a_thread_a_key_read_or_its_body(tmp_path):
    asyncio.run(limited_client(tmp_path))


async def limited_client(tmp_path):
    limits = {"auth_failures_per_client_max": 2, "auth_failures_per_client_per_second": 0.01}
    async with (
        served(tmp_path, client="203.0.113.9", **limits, **NO_DELAY) as server,
        server.http() as bad,
        server.http("198.51.100.8") as good,
    ):
        for _ in range(2):
            answer = await bad.get("/v1/accounts", headers=forged(secrets.token_hex(8)))
            assert answer.status_code == 401
        calls: list[object] = []
        authenticator = server.context.authenticator
        authenticate = authenticator.authenticate
        authenticator.authenticate = lambda *args, **kw: (
            calls.append(args) or authenticate(*args, **kw)
        )
        body = json_body(payment(B))
        refused = await bad.post(
            "/v1/payments",
            content=body,
            headers=bearer(server.keys[A]) | {"Idempotency-Key": "k1"},
        )
        assert refused.status_code == 429, refused.text
        assert refused.json()["code"] == "too_many_authentication_failures"
        assert refused.headers["content-type"] == "application/problem+json"
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["x-request-id"] == refused.json()["request_id"]
        assert calls == []  # No worker thread, no key read, no digest.
        assert not body.read  # Not a byte of the body.
        # The holder of a key keeps working from its own address.
        ok = await good.get("/v1/accounts", headers=bearer(server.keys[A]))
        assert ok.status_code == 200, ok.text
        assert len(calls) == 1  # Authenticated once, by the admission layer.


def test_failed_authentications_are_answered_after_one_delay_whatever_the_key_id(tmp_path):
    asyncio.run(late_failures(tmp_path))


async def late_failures(tmp_path):
    limits = {"auth_failures_per_key_id_max": 1000, "auth_failures_per_client_max": 1000}
    async with (
        served(tmp_path, refusal_delay_seconds=0.3, **limits) as server,
        server.http() as client,
    ):

        async def timed(headers: dict[str, str]) -> tuple[int, float]:
            started = time.perf_counter()
            answer = await client.get("/v1/accounts", headers=headers)
            return answer.status_code, time.perf_counter() - started

        known = [await timed(forged(server.keys[A].record.key_id)) for _ in range(3)]
        unknown = [await timed(forged(secrets.token_hex(8))) for _ in range(3)]
        good = await timed(bearer(server.keys[B]))
    assert {status for status, _ in known + unknown} == {401}
    assert all(0.3 <= seconds < 2.0 for _, seconds in known + unknown), (known, unknown)
    known_median = sorted(seconds for _, seconds in known)[1]
    unknown_median = sorted(seconds for _, seconds in unknown)[1]
    assert abs(known_median - unknown_median) < 0.1, (known, unknown)
    assert good[0] == 200 and good[1] < 0.3, good  # Success is not delayed.


def test_only_so_many_refusals_wait_at_once(tmp_path):
    asyncio.run(bounded_waits(tmp_path))


async def bounded_waits(tmp_path):
    limits = {"refusal_delay_seconds": 3.0, "refusals_delayed_max": 2}
    async with (
        served(tmp_path, auth_failures_per_client_max=1000, **limits) as server,
        server.http() as client,
    ):

        async def timed() -> float:
            started = time.perf_counter()
            answer = await client.get("/v1/accounts", headers=forged(secrets.token_hex(8)))
            assert answer.status_code == 401
            return time.perf_counter() - started

        seconds = sorted(await asyncio.gather(*(timed() for _ in range(5))))
    assert sum(1 for value in seconds if value < 2.0) == 3, seconds  # Answered at once.
    assert sum(1 for value in seconds if value >= 3.0) == 2, seconds  # Waited the delay.


def test_a_429_is_answered_when_its_retry_after_has_passed_at_most_the_cap(tmp_path):
    asyncio.run(held_until_retry_after(tmp_path))


async def held_until_retry_after(tmp_path):
    limits = {
        "auth_failures_per_key_id_max": 1,
        "auth_failures_per_key_id_per_second": 0.5,  # Retry-After: 2 s once empty.
        "refusal_delay_seconds": 0.2,
        "refusal_delay_max_seconds": 1.0,
    }
    async with served(tmp_path, **limits) as server, server.http() as client:
        key_id = server.keys[A].record.key_id
        started = time.perf_counter()
        first = await client.get("/v1/accounts", headers=forged(key_id))
        failed = time.perf_counter() - started
        started = time.perf_counter()
        refused = await client.get("/v1/accounts", headers=forged(key_id))
        held = time.perf_counter() - started
    assert first.status_code == 401 and 0.2 <= failed < 0.9, failed
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "2"
    assert 1.0 <= held < 1.9, held  # Retry-After 2 s, capped at 1 s.


# -- write quota before the body --------------------------------------------------------------


def test_a_write_over_quota_is_refused_before_its_body_is_read(tmp_path):
    asyncio.run(over_quota_unread(tmp_path))


async def over_quota_unread(tmp_path):
    limits = {"write_units_per_payment": 10, "write_units_per_second": 0.01, "write_units_burst": 5}
    async with served(tmp_path, **limits, **NO_DELAY) as server, server.http() as client:
        a = bearer(server.keys[A])
        first = await client.post(  # 10 units from a bucket of 5: in debt from now on.
            "/v1/payments", json=payment(B), headers=a | {"Idempotency-Key": "a-1"}
        )
        assert first.status_code == 201, first.text
        for path, data in (
            ("/v1/payments", payment(B)),
            ("/v1/payment-batches", {"payments": [payment(B)]}),
            ("/v1/transfer-batches", {"transfers": []}),
        ):
            body = json_body(data)
            refused = await client.post(
                path,
                content=body,
                headers=a | {"Idempotency-Key": f"x{path}", "Content-Type": "application/json"},
            )
            assert refused.status_code == 429, (path, refused.text)
            assert refused.json()["code"] == "rate_limited"
            assert int(refused.headers["Retry-After"]) >= 1
            assert not body.read, path
        # What draws on no quota still runs: a route quote, a read, another participant.
        quote = await client.post(
            "/v1/route-quotes",
            json={"creditor_agent": B, "amount_minor": 1, "currency": "CNY"},
            headers=a,
        )
        assert quote.status_code == 200, quote.text
        assert (await client.get("/v1/accounts", headers=a)).status_code == 200
        other = await client.post(
            "/v1/payments",
            json=payment(A),
            headers=bearer(server.keys[B]) | {"Idempotency-Key": "b"},
        )
        assert other.status_code == 201, other.text


def test_the_quota_routes_are_the_routes_that_depend_on_write_caller():
    found = {
        (pattern.pattern, method)
        for pattern, methods in quota_routes(ROUTERS, write_caller)
        for method in methods
    }
    paths = {pattern for pattern, _ in found}
    assert ("^/v1/payments$", "POST") in found
    assert ("^/v1/payment\\-batches$", "POST") in found
    assert ("^/v1/transfer\\-batches$", "POST") in found
    assert ("^/v1/iso20022/messages$", "POST") in found
    assert any(pattern.endswith("/cancellation$") for pattern in paths)
    assert any(method == "PATCH" for _, method in found)
    # A firm FX quote holds liquidity: a write. Key management, netting cycles and route
    # quotes (which move nothing) do not draw on the write quotas.
    assert ("^/v1/fx\\-quotes$", "POST") in found
    assert not any(word in path for path in paths for word in ("keys", "netting", "route"))


# -- write slots --------------------------------------------------------------------------------


def test_writes_beyond_a_participants_slots_wait_unread_and_others_pass(tmp_path):
    asyncio.run(slots_over_http(tmp_path))


async def slots_over_http(tmp_path):
    limits = {"write_requests_per_participant_max": 1, **NO_DELAY}
    async with served(tmp_path, **limits) as server:
        service = server.context.service
        slots = server.app.state.write_slots
        original = service.payments
        gate, entered = threading.Event(), threading.Event()

        def held(payments, *, principal=None):
            """A's payments wait for the gate before they reach the writer."""
            if principal is None or principal.participant != A:
                return original(payments, principal=principal)
            answer: concurrent.futures.Future[Any] = concurrent.futures.Future()

            def run() -> None:
                entered.set()
                gate.wait(30)
                inner = original(payments, principal=principal)
                inner.add_done_callback(lambda done: answer.set_result(done.result()))

            threading.Thread(target=run, daemon=True).start()
            return answer

        service.payments = held
        try:
            async with server.http() as client:
                a, b = bearer(server.keys[A]), bearer(server.keys[B])
                first = asyncio.create_task(
                    client.post(
                        "/v1/payments", json=payment(B), headers=a | {"Idempotency-Key": "1"}
                    )
                )
                assert await asyncio.to_thread(entered.wait, 30)
                body = json_body(payment(B))
                second = asyncio.create_task(
                    client.post(
                        "/v1/payments",
                        content=body,
                        headers=a | {"Idempotency-Key": "2", "Content-Type": "application/json"},
                    )
                )
                await asyncio.sleep(0.3)
                assert not second.done() and not body.read  # Waiting for A's slot, unread.
                assert slots.active(A) == 1 and slots.waiting(A) == 1
                # Another participant's write and A's own reads are not held up.
                other = await client.post(
                    "/v1/payments", json=payment(A), headers=b | {"Idempotency-Key": "b"}
                )
                assert other.status_code == 201, other.text
                assert (await client.get("/v1/accounts", headers=a)).status_code == 200
                gate.set()
                assert (await first).status_code == 201
                answer = await second
                assert answer.status_code == 201, answer.text
                assert body.read
                assert slots.active(A) == 0 and slots.waiting(A) == 0
        finally:
            gate.set()
            service.payments = original


def test_a_write_beyond_the_waiting_bound_is_refused_and_not_kept_under_its_key(tmp_path):
    asyncio.run(waiting_bound(tmp_path))


async def waiting_bound(tmp_path):
    limits = {
        "write_requests_per_participant_max": 1,
        "write_requests_waiting_per_participant_max": 0,
        **NO_DELAY,
    }
    async with served(tmp_path, **limits) as server, server.http() as client:
        a = bearer(server.keys[A])
        slots = server.app.state.write_slots
        await slots.acquire(A)  # A write of A's is running.
        body = json_body(payment(B, "p1"))
        refused = await client.post(
            "/v1/payments",
            content=body,
            headers=a | {"Idempotency-Key": "p1", "Content-Type": "application/json"},
        )
        assert refused.status_code == 429, refused.text
        assert refused.json()["code"] == "rate_limited"
        assert refused.headers["Retry-After"] == "1"
        assert not body.read
        slots.release(A)
        again = await client.post(  # The same key runs the write: the 429 was not kept.
            "/v1/payments", json=payment(B, "p1"), headers=a | {"Idempotency-Key": "p1"}
        )
        assert again.status_code == 201, again.text
        assert "Idempotency-Replayed" not in again.headers


def test_write_slots_hand_over_in_order_and_survive_cancellation():
    asyncio.run(slot_handover())


async def slot_handover():
    slots = WriteSlots(per_name_max=1, waiting_max=3)
    await slots.acquire(A)
    order: list[str] = []

    async def write(name: str) -> None:
        await slots.acquire(A)
        order.append(name)
        slots.release(A)

    second = asyncio.create_task(write("second"))
    cancelled = asyncio.create_task(write("cancelled"))
    third = asyncio.create_task(write("third"))
    await asyncio.sleep(0.01)
    assert slots.active(A) == 1 and slots.waiting(A) == 3
    with pytest.raises(ApiError) as full:  # Three waiting at most.
        await slots.acquire(A)
    assert full.value.code == "rate_limited"
    cancelled.cancel()
    await asyncio.sleep(0.01)
    slots.release(A)
    await asyncio.wait_for(asyncio.gather(second, third), 5)
    assert order == ["second", "third"]
    assert slots.active(A) == 0 and slots.waiting(A) == 0
    await slots.acquire(B)  # Other names were never held up.
    slots.release(B)


# -- the event loop stays free -------------------------------------------------------------------


def test_a_batchs_conversions_run_off_the_event_loop(tmp_path, monkeypatch):
    """Building 1,000 payments, or rendering their outcomes, took the event loop 10-30 ms in
    one go, and every other request waited that long. Big batches do it in a worker thread."""
    from sco_settle.server.routes import payments as routes

    threads: list[str] = []
    build = routes.payment_from

    def recorded(*args: Any) -> Any:
        threads.append(threading.current_thread().name)
        return build(*args)

    monkeypatch.setattr(routes, "payment_from", recorded)

    async def run() -> None:
        async with served(tmp_path) as server, server.http() as client:
            a = bearer(server.keys[A])
            loop_thread = threading.current_thread().name
            one = await client.post(
                "/v1/payments", json=payment(B), headers=a | {"Idempotency-Key": "one"}
            )
            assert one.status_code == 201, one.text
            assert threads == [loop_thread]  # A single payment: a thread hop costs more.
            threads.clear()
            batch = {"payments": [payment(B) for _ in range(100)]}
            many = await client.post(
                "/v1/payment-batches", json=batch, headers=a | {"Idempotency-Key": "many"}
            )
            assert many.status_code == 200, many.text
            assert len(many.json()["outcomes"]) == 100
            assert len(threads) == 100 and loop_thread not in threads

    asyncio.run(run())


def test_a_payments_default_parties_are_shared_not_copied():
    """Pydantic deep-copied the default (empty) debtor and creditor of every payment: 2,000
    copies per batch of 1,000, 26 ms of the event loop's time. A frozen default is shared."""
    from sco_settle.server.schemas import PaymentBatchIn

    batch = PaymentBatchIn.model_validate({"payments": [payment(B), payment(B)]})
    first, second = batch.payments
    assert first.debtor is second.debtor and first.creditor is second.creditor
    assert first.debtor.name == "" and first.debtor.account == ""


def test_keys_in_sqlite_are_checked_on_the_loop_and_legacy_keys_in_a_thread(tmp_path):
    """A primary-key read of the local key table costs less than a worker thread's round trip;
    an argon2 verification (a key issued before digests) must never run on the event loop."""
    from argon2 import PasswordHasher

    from sco_settle.server.keys import parse_api_key

    async def run() -> None:
        async with served(tmp_path, **NO_DELAY) as server, server.http() as client:
            loop_thread = threading.current_thread().name
            legacy = server.keys[B]
            secret = parse_api_key(legacy.api_key)[1]
            fast = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
            with server.context.keys.db.transaction() as execute:
                execute(
                    "UPDATE api_keys SET secret_hash = ? WHERE key_id = ?",
                    (fast.hash(secret), legacy.record.key_id),
                )
            verified_in: list[str] = []

            class Recording:  # PasswordHasher has slots: wrapped, not patched.
                def verify(self, *args: Any) -> Any:
                    verified_in.append(threading.current_thread().name)
                    return fast.verify(*args)

            keys = server.context.keys
            hasher, keys.hasher = keys.hasher, Recording()
            reads = server.context.keys.db
            read_in: list[str] = []
            execute_read = reads.execute

            def traced(*args: Any) -> Any:
                read_in.append(threading.current_thread().name)
                return execute_read(*args)

            reads.execute = traced
            try:
                ok = await client.get("/v1/accounts", headers=bearer(server.keys[A]))
                assert ok.status_code == 200, ok.text
                assert read_in[0] == loop_thread  # The key's row, read on the loop.
                old = await client.get("/v1/accounts", headers=bearer(legacy))
                assert old.status_code == 200, old.text
                assert verified_in and loop_thread not in verified_in
            finally:
                reads.execute = execute_read
                keys.hasher = hasher

    asyncio.run(run())
