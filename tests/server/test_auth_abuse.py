"""Authentication under abuse (security review H2, L4, M6): wrong secrets are cheap and do not
reveal whether a key id exists, failures are rate limited per key id and per client and logged
with the key id they tried, legacy argon2 hashes never make requests wait, and one key holder
cannot fill the nonce cache for everyone."""

from __future__ import annotations

import asyncio
import logging
import secrets
import statistics
import threading
import time
from contextlib import contextmanager

import httpx
import pytest
from argon2 import PasswordHasher

from sco_settle.server import ServerConfig, parse_database_url
from sco_settle.server.app import build_app, close_context, open_context
from sco_settle.server.auth import Authenticator, NonceCache, SignedRequest, sign
from sco_settle.server.db import StateDb
from sco_settle.server.errors import ApiError
from sco_settle.server.keys import KeyStore, Role, parse_api_key

# Low-cost argon2 parameters: a legacy hash verifies in about a millisecond in these tests.
FAST_ARGON2 = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


class Hasher:
    """``FAST_ARGON2`` with a hook run before each verification (PasswordHasher has slots)."""

    def __init__(self) -> None:
        self.before_verify = lambda: None

    def verify(self, secret_hash: str, secret: str) -> bool:
        self.before_verify()
        return FAST_ARGON2.verify(secret_hash, secret)

    def hash(self, secret: str) -> str:  # Keys issued before digests were hashed with argon2.
        return FAST_ARGON2.hash(secret)


NO_LIMITS = {
    "auth_failures_per_key_id_max": 1_000_000,
    "auth_failures_per_client_max": 1_000_000,
}


@contextmanager
def authenticator(tmp_path, **limits):
    """An ``Authenticator`` over a fresh key table (no ledger service)."""
    config = ServerConfig(parse_database_url(f"sqlite:///{tmp_path}/keys.db"), **limits)
    state = StateDb(config.database)
    try:
        keys = KeyStore(state, Hasher())  # type: ignore[arg-type]
        yield Authenticator(keys, config, lambda bic: frozenset()), keys
    finally:
        state.close()


def bearer(api_key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {api_key}"}


def request_from(client: str = "192.0.2.1") -> SignedRequest:
    return SignedRequest("GET", "/v1/accounts", b"", client, "test-request")


def wrong_secret(key_id: str) -> str:
    return f"scos_{key_id}_{secrets.token_urlsafe(32)}"


def refusal(auth: Authenticator, headers: dict[str, str], client: str = "192.0.2.1") -> str:
    with pytest.raises(ApiError) as raised:
        auth.authenticate(headers, request_from(client))
    return raised.value.code


def legacy_key(keys: KeyStore, participant: str = "BKCHCNBJ"):
    """A key as issued before digests: its row holds an argon2id hash of the secret."""
    issued = keys.create(participant, Role.PARTICIPANT)
    secret = parse_api_key(issued.api_key)[1]
    with keys.db.transaction() as execute:
        execute(
            "UPDATE api_keys SET secret_hash = ? WHERE key_id = ?",
            (FAST_ARGON2.hash(secret), issued.record.key_id),
        )
    return issued


# -- H2 / L4: cost and timing of a wrong secret ---------------------------------------------------


def test_a_wrong_secret_costs_the_same_for_known_and_unknown_key_ids(tmp_path):
    """The timing oracle of L4: known key ids were refused in 174 ms, unknown ones in 2.5 ms."""
    with authenticator(tmp_path, **NO_LIMITS) as (auth, keys):
        auth.keys.hasher = PasswordHasher()  # The default (slow) parameters, as in production.
        known = keys.create("BKCHCNBJ", Role.PARTICIPANT).record.key_id
        unknown = secrets.token_hex(8)
        timings: dict[str, list[float]] = {known: [], unknown: []}
        for _ in range(40):
            for key_id in (known, unknown):
                started = time.perf_counter()
                assert refusal(auth, bearer(wrong_secret(key_id))) == "credentials_invalid"
                timings[key_id].append(time.perf_counter() - started)
    known_median = statistics.median(timings[known])
    unknown_median = statistics.median(timings[unknown])
    assert known_median < 0.005, known_median  # No password hash: a digest and one row read.
    assert abs(known_median - unknown_median) < 0.002, (known_median, unknown_median)


def test_new_keys_are_verified_without_argon2(tmp_path):
    with authenticator(tmp_path, **NO_LIMITS) as (auth, keys):
        issued = keys.create("BKCHCNBJ", Role.PARTICIPANT)
        assert not issued.record.secret_hash.startswith("$argon2")

        def no_argon2():
            raise AssertionError("argon2 must not run for a key issued with a digest")

        keys.hasher.before_verify = no_argon2  # type: ignore[attr-defined]
        assert refusal(auth, bearer(wrong_secret(issued.record.key_id))) == "credentials_invalid"
        assert auth.authenticate(bearer(issued.api_key), request_from()).key_id == (
            issued.record.key_id
        )


def test_legacy_argon2_keys_still_work_and_are_upgraded_on_first_success(tmp_path):
    with authenticator(tmp_path, **NO_LIMITS) as (auth, keys):
        issued = legacy_key(keys)
        key_id = issued.record.key_id
        assert keys.get(key_id).secret_hash.startswith("$argon2id$")
        assert refusal(auth, bearer(wrong_secret(key_id))) == "credentials_invalid"
        assert keys.get(key_id).secret_hash.startswith("$argon2id$")  # Not on a failure.
        assert auth.authenticate(bearer(issued.api_key), request_from()).key_id == key_id
        upgraded = keys.get(key_id).secret_hash
        assert upgraded.startswith("sha256$")
        assert auth.authenticate(bearer(issued.api_key), request_from()).key_id == key_id
        assert refusal(auth, bearer(wrong_secret(key_id))) == "credentials_invalid"


def test_legacy_verifications_never_wait_for_a_slot(tmp_path):
    """H2: threads waiting for an argon2 slot starved the pool. With every slot taken, another
    legacy verification is answered 503 at once instead of waiting."""
    with authenticator(tmp_path, argon2_concurrent_max=1, **NO_LIMITS) as (auth, keys):
        slow, other = legacy_key(keys), legacy_key(keys, "ICBKCNBJ")
        inside, leave = threading.Event(), threading.Event()

        def held_verify():
            if threading.current_thread().name == "holder":
                inside.set()
                assert leave.wait(30)

        keys.hasher.before_verify = held_verify  # type: ignore[attr-defined]
        holder = threading.Thread(
            target=lambda: auth.authenticate(bearer(slow.api_key), request_from()), name="holder"
        )
        holder.start()
        try:
            assert inside.wait(30)
            outcome: list[object] = []

            def second() -> None:
                try:
                    outcome.append(auth.authenticate(bearer(other.api_key), request_from()))
                except ApiError as error:
                    outcome.append(error)

            waiter = threading.Thread(target=second)
            waiter.start()
            waiter.join(5)
            assert not waiter.is_alive(), "a legacy verification waited for a busy slot"
            [error] = outcome
            assert isinstance(error, ApiError) and error.code == "server_busy"
            assert error.status == 503
        finally:
            leave.set()
            holder.join(30)
        # Once the slot is free, the same key verifies (and is upgraded).
        assert auth.authenticate(bearer(other.api_key), request_from()).key_id == (
            other.record.key_id
        )


# -- H2: failure rate limits -----------------------------------------------------------------


def test_failures_are_limited_per_key_id_and_client_before_any_hash_work(tmp_path):
    limits = {
        "auth_failures_per_key_id_max": 3,
        "auth_failures_per_key_id_per_second": 0.01,
        "auth_failures_per_client_max": 5,
        "auth_failures_per_client_per_second": 0.01,
    }
    with authenticator(tmp_path, **limits) as (auth, keys):
        target, victim = (
            keys.create("BKCHCNBJ", Role.PARTICIPANT),
            keys.create("ICBKCNBJ", Role.PARTICIPANT),
        )
        target_id = target.record.key_id
        # The holder of the targeted key authenticated from its own address before the attack.
        assert auth.authenticate(bearer(target.api_key), request_from("198.51.100.7"))
        for _ in range(3):
            assert refusal(auth, bearer(wrong_secret(target_id)), "203.0.113.9") == (
                "credentials_invalid"
            )
        reads = []
        read = keys.db.execute
        keys.db.execute = lambda *args: reads.append(args) or read(*args)  # type: ignore[method-assign]
        with pytest.raises(ApiError) as raised:
            auth.authenticate(bearer(wrong_secret(target_id)), request_from("203.0.113.9"))
        keys.db.execute = read  # type: ignore[method-assign]
        assert raised.value.code == "too_many_authentication_failures"
        assert raised.value.status == 429
        assert int(raised.value.headers["Retry-After"]) >= 1
        assert reads == []  # Refused before the key was read or any digest computed.
        # Even the right secret is refused now from a new address: the key id is limited ...
        assert refusal(auth, bearer(target.api_key), "203.0.113.50") == (
            "too_many_authentication_failures"
        )
        # ... but not for its holder, which authenticated from its address before.
        assert auth.authenticate(bearer(target.api_key), request_from("198.51.100.7"))
        # Another key, from another address, is not affected at all.
        assert auth.authenticate(bearer(victim.api_key), request_from("198.51.100.8"))
        # The attacking address is limited whatever key ids it tries (unknown ones too).
        attacker = "2001:db8::1"
        for _ in range(5):
            unknown = bearer(wrong_secret(secrets.token_hex(8)))
            assert refusal(auth, unknown, attacker) == "credentials_invalid"
        assert refusal(auth, bearer(victim.api_key), attacker) == (
            "too_many_authentication_failures"
        )
        # An IPv6 client is counted by its /64.
        assert refusal(auth, bearer(victim.api_key), "2001:db8::2") == (
            "too_many_authentication_failures"
        )
        assert auth.authenticate(bearer(victim.api_key), request_from("2001:db8:0:1::1"))


def test_rate_limit_answers_are_problems_with_retry_after(tmp_path):
    asyncio.run(rate_limit_over_http(tmp_path))


async def rate_limit_over_http(tmp_path):
    config = ServerConfig(
        parse_database_url(f"sqlite:///{tmp_path}/ledger.db"),
        auth_failures_per_client_max=2,
        auth_failures_per_client_per_second=0.01,
        refusal_delay_seconds=0.0,  # Answered at once (the delay is test_admission's subject).
    )
    context = open_context(config)
    victim = context.keys.create("ICBKCNBJ", Role.PARTICIPANT)
    target = context.keys.create("BKCHCNBJ", Role.PARTICIPANT)
    app = build_app(context)
    attacker = httpx.ASGITransport(app=app, client=("203.0.113.9", 4000))
    other = httpx.ASGITransport(app=app, client=("198.51.100.8", 4000))
    try:
        async with (
            httpx.AsyncClient(transport=attacker, base_url="http://sco") as bad,
            httpx.AsyncClient(transport=other, base_url="http://sco") as good,
        ):
            forged = {"Authorization": f"Bearer {wrong_secret(target.record.key_id)}"}
            statuses = [
                (await bad.get("/v1/accounts", headers=forged)).status_code for _ in range(3)
            ]
            assert statuses == [401, 401, 429]
            refused = await bad.get("/v1/accounts", headers=forged)
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["code"] == "too_many_authentication_failures"
            assert int(refused.headers["Retry-After"]) >= 1
            ok = await good.get(
                "/v1/accounts", headers={"Authorization": f"Bearer {victim.api_key}"}
            )
            assert ok.status_code == 200, ok.text
    finally:
        close_context(context)


def test_failure_buckets_are_bounded():
    from sco_settle.server.auth import TokenBuckets

    buckets = TokenBuckets(capacity=2, per_second=0.001, entries_max=100)
    for number in range(10_000):
        buckets.take(f"key-{number}", now=1.0)
    assert len(buckets) == 100
    assert buckets.retry_after("key-9999", now=1.0) is None  # One failure of two.
    assert buckets.take("key-9999", now=1.0)  # The second empties it.
    assert buckets.retry_after("key-9999", now=1.0) == 1000
    assert buckets.retry_after("key-9999", now=1001.0) is None  # Refilled.


# -- L4: failures are attributable -------------------------------------------------------------


def test_failed_authentications_are_logged_with_the_key_id_never_the_secret(tmp_path, caplog):
    with authenticator(tmp_path, **NO_LIMITS) as (auth, keys):
        issued = keys.create("BKCHCNBJ", Role.PARTICIPANT)
        forged = wrong_secret(issued.record.key_id)
        with caplog.at_level(logging.INFO, logger="sco_settle.server"):
            refusal(auth, bearer(forged), "203.0.113.9")
            signed = {
                "x-scos-key-id": issued.record.key_id,
                "x-scos-timestamp": str(int(time.time())),
                "x-scos-nonce": secrets.token_hex(16),
                "x-scos-signature": "0" * 64,
            }
            refusal(auth, signed, "203.0.113.9")
    failures = [r for r in caplog.records if getattr(r, "event", "") == "authentication_failed"]
    assert len(failures) == 2
    for record in failures:
        assert record.key_id == issued.record.key_id
        assert record.client == "203.0.113.9"
        assert record.request_id == "test-request"
    assert [r.code for r in failures] == ["credentials_invalid", "signature_invalid"]
    logged = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert parse_api_key(forged)[1] not in logged


# -- M6: the nonce cache is partitioned per key ---------------------------------------------------


def signed(issued, target="/v1/participants", nonce=None, timestamp=None):
    timestamp = str(int(time.time()) + 299 if timestamp is None else timestamp)
    nonce = nonce or secrets.token_hex(16)
    return {
        "X-SCOS-Key-Id": issued.record.key_id,
        "X-SCOS-Timestamp": timestamp,
        "X-SCOS-Nonce": nonce,
        "X-SCOS-Signature": sign(issued.signing_secret, "GET", target, timestamp, nonce, b""),
    }


def test_one_key_filling_the_nonce_cache_does_not_lock_out_another_key(tmp_path):
    asyncio.run(nonce_cache_partitioned(tmp_path))


async def nonce_cache_partitioned(tmp_path):
    # The review's repro: nonce_cache_max=400 filled by one key gave everyone else 503.
    config = ServerConfig(parse_database_url(f"sqlite:///{tmp_path}/ledger.db"), nonce_cache_max=40)
    context = open_context(config)
    attacker = context.keys.create("HSBKKZKX", Role.PARTICIPANT)
    victim = context.keys.create("BKCHCNBJ", Role.PARTICIPANT)
    transport = httpx.ASGITransport(app=build_app(context))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://sco") as http:
            statuses = []
            for _ in range(45):
                response = await http.get("/v1/participants", headers=signed(attacker))
                statuses.append(response.status_code)
            assert statuses[:40] == [200] * 40
            refused = await http.get("/v1/participants", headers=signed(attacker))
            assert refused.status_code == 429, refused.text
            assert refused.json()["code"] == "nonce_quota_exceeded"
            assert refused.headers["Retry-After"]
            answer = await http.get("/v1/participants", headers=signed(victim))
            assert answer.status_code == 200, answer.text
    finally:
        close_context(context)


def test_nonce_cache_bounds():
    cache = NonceCache(10, per_key_max=6, keys_max=3)

    def refused(key_id: str, nonce: str) -> ApiError:
        with pytest.raises(ApiError) as raised:
            cache.add(key_id, nonce, expires_at=100, now=0)
        return raised.value

    for number in range(6):
        cache.add("a", f"a{number}", expires_at=100, now=0)
    error = refused("a", "a-more")  # a is at its own bound.
    assert error.code == "nonce_quota_exceeded" and error.status == 429
    for number in range(5):  # The total (10) is reached on the way: b keeps an equal share.
        cache.add("b", f"b{number}", expires_at=100, now=0)
    assert refused("b", "b-more").code == "nonce_quota_exceeded"  # 5 >= 10 / 2
    for number in range(4):  # A newcomer still gets its share (10 / 3) although a and b are full.
        cache.add("c", f"c{number}", expires_at=100, now=0)
    assert refused("c", "c-more").code == "nonce_quota_exceeded"
    assert len(cache) == 15
    error = refused("d", "d0")  # A fourth key: the key table is full.
    assert error.code == "nonce_cache_full" and error.status == 503
    with pytest.raises(ApiError) as raised:
        cache.add("a", "a0", expires_at=200, now=50)
    assert raised.value.code == "nonce_replayed"
    # Expired nonces free their key's quota and their key's slot.
    cache.add("d", "d0", expires_at=300, now=100)
    assert len(cache) == 1
    cache.add("a", "a0", expires_at=300, now=100)  # Past its window: no longer a replay.
