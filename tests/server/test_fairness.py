"""Fairness between participants (review finding H4): write quotas per participant and per key,
a bounded share of the writer's queue per participant, and a writer that serves participants in
turn, so one participant's backlog of big batches does not hold up another's small request."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
import uuid
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from sco_settle.network import load_network
from sco_settle.payments.model import Party, Payment
from sco_settle.payments.network_view import load_rates
from sco_settle.server import ServerConfig, parse_database_url
from sco_settle.server.app import build_app, close_context, open_context
from sco_settle.server.auth import Principal
from sco_settle.server.errors import QueueFullError, RateLimitedError
from sco_settle.server.fairness import FairQueue, WriteQuota
from sco_settle.server.idempotency import StoredResponse
from sco_settle.server.keys import Role
from sco_settle.server.service import LedgerService, _Job

A, B = "BKCHCNBJ", "ICBKCNBJ"
IDEMPOTENT_ANSWER = StoredResponse("v2:x", 201, "application/json", b"{}")
A_CALLER = Principal("ka", A, Role.PARTICIPANT, frozenset())
B_CALLER = Principal("kb", B, Role.PARTICIPANT, frozenset())


def payments(debtor: str, creditor: str, count: int, tag: str = "") -> list[Payment]:
    tag = tag or uuid.uuid4().hex[:12]
    return [
        Payment(
            payment_id=f"{debtor}:{tag}-{n}",
            debtor_agent=debtor,
            creditor_agent=creditor,
            amount_minor=1,
            currency="CNY",
            creditor_currency="CNY",
            debtor=Party("Debtor Co", "1"),
            creditor=Party("Creditor Co", "2"),
        )
        for n in range(count)
    ]


def started(tmp_path, **limits) -> LedgerService:
    config = ServerConfig(parse_database_url(f"sqlite:///{tmp_path}/fair.db"), **limits)
    service = LedgerService(config, load_network("sco"), load_rates("sco"))
    service.start()
    return service


def hold_writer(service: LedgerService) -> threading.Event:
    """Keep the writer busy (in a quote) until the returned event is set, so that the jobs
    submitted meanwhile all wait together."""
    release, busy = threading.Event(), threading.Event()
    run_quote = service._run_quote

    def blocked(request):
        busy.set()
        release.wait(30)
        service._run_quote = run_quote
        return run_quote(request)

    service._run_quote = blocked
    from sco_settle.server.service import QuoteRequest

    service.quote(QuoteRequest("PBOCCNBJ", B, 1, "CNY", "CNY", 1))
    assert busy.wait(30)
    return release


# -- the writer serves participants in turn ------------------------------------------------------


def test_another_participants_backlog_does_not_delay_a_small_payment(tmp_path):
    """A has three 1,000-payment batches waiting; B's single payment, which arrives after them,
    is settled before A's first batch is done (it waited for about one slice of A's work, not
    for 3,000 payments), and A's batches still answer every payment, in order."""
    service = started(tmp_path)
    finished: list[str] = []
    try:
        release = hold_writer(service)
        batches = [payments(A, B, 1000) for _ in range(3)]
        a_jobs = [service.payments(batch, principal=A_CALLER) for batch in batches]
        b_job = service.payments(payments(B, A, 1), principal=B_CALLER)
        for name, future in [*((f"A{n}", job) for n, job in enumerate(a_jobs)), ("B", b_job)]:
            future.add_done_callback(lambda _, name=name: finished.append(name))
        release.set()
        outcomes = [job.result(timeout=120) for job in a_jobs]
        (b_outcome,) = b_job.result(timeout=120)
    finally:
        service.close()
    assert b_outcome.status.value == "settled"
    assert finished.index("B") < finished.index("A0"), finished
    assert finished[finished.index("B") + 1 :] == ["A0", "A1", "A2"]
    for batch, answered in zip(batches, outcomes, strict=True):
        assert [o.payment_id for o in answered] == [p.payment_id for p in batch]
        assert {o.status.value for o in answered} == {"settled"}


def test_one_participants_requests_keep_their_order(tmp_path):
    """A big batch is served in slices, but a later request of the same participant still runs
    after all of it (and a slice never overtakes an earlier one)."""
    service = started(tmp_path, write_quantum_units=64)
    finished: list[str] = []
    try:
        release = hold_writer(service)
        big = service.payments(payments(A, B, 40), principal=A_CALLER)
        small = service.payments(payments(A, B, 1), principal=A_CALLER)
        big.add_done_callback(lambda _: finished.append("big"))
        small.add_done_callback(lambda _: finished.append("small"))
        release.set()
        assert len(big.result(timeout=60)) == 40
        small.result(timeout=60)
    finally:
        service.close()
    assert finished == ["big", "small"]


def test_a_round_serves_participants_in_turn_lightest_first():
    waiting = FairQueue(jobs_max=100, lane_jobs_max=100, lane_units_max=10**6, quantum=64)
    big = _Job("payments", list(range(20)), size=20, participant=A, units=320, item_units=16)
    waiting.put_nowait(big)
    waiting.put_nowait(_Job("transfers", ["t"], size=1, participant=B, units=1))
    first = waiting.round(0)
    # B has nothing more waiting: its tier runs first. A gets one quantum (4 payments).
    assert [[job.participant for job in tier] for tier in first] == [[B], [A]]
    part = first[1][0]
    assert part is not big and part.payload == [0, 1, 2, 3]
    sizes = []
    while True:
        tiers = waiting.round(0)
        if not tiers:
            break
        sizes += [job.size for tier in tiers for job in tier]
    assert sizes == [4, 4, 4, 4]
    assert waiting.qsize() == 0


# -- bounded share of the queue ----------------------------------------------------------------


def test_one_participant_cannot_fill_the_writers_queue(tmp_path):
    service = started(tmp_path, write_queue_max=50, write_queue_participant_max=10)
    try:
        release = hold_writer(service)
        accepted = [service.payments(payments(A, B, 1), principal=A_CALLER) for _ in range(10)]
        with pytest.raises(RateLimitedError) as refused:
            service.payments(payments(A, B, 1), principal=A_CALLER)
        assert refused.value.retry_after_seconds >= 1
        others = [service.payments(payments(B, A, 1), principal=B_CALLER) for _ in range(10)]
        release.set()
        for future in accepted + others:
            assert future.result(timeout=60)[0].status.value == "settled"
    finally:
        service.close()


def test_the_queue_as_a_whole_stays_bounded():
    waiting = FairQueue(jobs_max=3, lane_jobs_max=3, lane_units_max=100, quantum=10)
    for participant in (A, B, "XIHCCNB2"):
        waiting.put_nowait(_Job("payments", [1], participant=participant, units=16))
    with pytest.raises(queue.Full):
        waiting.put_nowait(_Job("payments", [1], participant="BOXJCNU0", units=16))
    units = FairQueue(jobs_max=10, lane_jobs_max=10, lane_units_max=40, quantum=10)
    units.put_nowait(_Job("payments", [1, 2], participant=A, units=32))
    with pytest.raises(RateLimitedError):
        units.put_nowait(_Job("payments", [1], participant=A, units=16))
    units.put_nowait(_Job("payments", [1], participant=B, units=16))


def test_a_global_queue_overflow_is_still_server_busy(tmp_path):
    service = started(tmp_path, write_queue_max=2, write_queue_participant_max=2)
    try:
        release = hold_writer(service)
        kept = [service.payments(payments(A, B, 1), principal=A_CALLER)]
        kept.append(service.payments(payments(B, A, 1), principal=B_CALLER))
        with pytest.raises(QueueFullError):
            service.payments(payments("XIHCCNB2", A, 1))
        release.set()
        for future in kept:
            future.result(timeout=60)
    finally:
        service.close()


# -- quotas ------------------------------------------------------------------------------------


def test_token_buckets_refill_and_bound_each_name():
    quota = WriteQuota(per_second=10, burst=100, buckets_max=2)
    quota.admits(["participant:A", "key:a"], now=0.0)  # Only asks.
    # A write may be larger than the burst: taken from a full bucket, it leaves a debt.
    quota.take(["participant:A", "key:a"], 150, now=0.0)
    with pytest.raises(RateLimitedError) as short:
        quota.take(["participant:A", "key:a"], 1, now=1.0)  # 10 units back: still -40
    assert short.value.retry_after_seconds == 5
    assert "participant A" in short.value.detail
    with pytest.raises(RateLimitedError):
        quota.admits(["participant:A"], now=5.0)
    quota.take(["participant:A", "key:a"], 20, now=6.0)  # 10 units back: -10 after
    # Another key of the same participant shares the participant's bucket.
    with pytest.raises(RateLimitedError):
        quota.take(["participant:A", "key:a2"], 1, now=6.0)
    quota.take(["participant:B", "key:b"], 1, now=6.0)
    assert len(quota) == 2  # Least recently used buckets are dropped.


def test_a_participant_over_its_write_quota_gets_429_and_others_do_not(tmp_path):
    asyncio.run(over_quota(tmp_path))


async def over_quota(tmp_path):
    config = ServerConfig(
        parse_database_url(f"sqlite:///{tmp_path}/quota.db"),
        write_units_per_payment=10,
        write_units_per_second=1,
        write_units_burst=100,
        refusal_delay_seconds=0.0,  # Answered at once (the delay is test_admission's subject).
    )
    context = open_context(config)
    a_key = context.keys.create(A, Role.PARTICIPANT)
    b_key = context.keys.create(B, Role.PARTICIPANT)
    transport = httpx.ASGITransport(app=build_app(context), raise_app_exceptions=False)

    def batch(debtor: str, creditor: str, count: int, tag: str) -> dict:
        return {
            "payments": [
                {
                    "instruction_id": f"{tag}-{n}",
                    "creditor_agent": creditor,
                    "amount_minor": 1,
                    "currency": "CNY",
                }
                for n in range(count)
            ]
        }

    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://sco") as http:
            a = {"Authorization": f"Bearer {a_key.api_key}"}
            b = {"Authorization": f"Bearer {b_key.api_key}"}
            first = await http.post(  # 150 units from a bucket of 100: 50 in debt.
                "/v1/payment-batches",
                json=batch(A, B, 15, "a1"),
                headers=a | {"Idempotency-Key": "a-1"},
            )
            assert first.status_code == 200, first.text
            over = await http.post(
                "/v1/payment-batches",
                json=batch(A, B, 5, "a2"),
                headers=a | {"Idempotency-Key": "a-2"},
            )
            assert over.status_code == 429, over.text
            assert over.headers["content-type"] == "application/problem+json"
            assert over.json()["code"] == "rate_limited"
            assert int(over.headers["Retry-After"]) >= 1
            single = await http.post(
                "/v1/payments",
                json=batch(A, B, 1, "a3")["payments"][0],
                headers=a | {"Idempotency-Key": "a-3"},
            )
            assert single.status_code == 429 and single.json()["code"] == "rate_limited"
            # Refused before the body is even validated (a client that ignores Retry-After
            # costs little).
            garbage = await http.post(
                "/v1/payment-batches",
                json={"payments": "not a list"},
                headers=a | {"Idempotency-Key": "a-4"},
            )
            assert garbage.status_code == 429, garbage.text
            # Transfer batches and ISO 20022 messages draw on the same quota.
            own = (await http.get(f"/v1/accounts/settlement:{A}:CNY", headers=a)).json()["id"]
            peer = (await http.get(f"/v1/accounts/settlement:{B}:CNY", headers=b)).json()["id"]
            transfers = await http.post(
                "/v1/transfer-batches",
                json={
                    "transfers": [
                        {"id": "9001", "debit_account": own, "credit_account": peer, "amount": 1}
                    ]
                },
                headers=a | {"Idempotency-Key": "a-5"},
            )
            assert transfers.status_code == 429, transfers.text
            iso = await http.post(
                "/v1/iso20022/messages",
                content=b"<Document/>",
                headers=a | {"Idempotency-Key": "a-6", "Content-Type": "application/xml"},
            )
            assert iso.status_code == 429, iso.text
            # Another participant is not affected.
            other = await http.post(
                "/v1/payment-batches",
                json=batch(B, A, 10, "b1"),
                headers=b | {"Idempotency-Key": "b-1"},
            )
            assert other.status_code == 200, other.text
            # Nothing moved and nothing was stored: once refilled, the same key runs the write.
            context.service.quota.give_back([f"participant:{A}", f"key:{a_key.record.key_id}"], 100)
            again = await http.post(
                "/v1/payment-batches",
                json=batch(A, B, 5, "a2"),
                headers=a | {"Idempotency-Key": "a-2"},
            )
            assert again.status_code == 200, again.text
            assert "Idempotency-Replayed" not in again.headers
            assert [o["status"] for o in again.json()["outcomes"]] == ["settled"] * 5
    finally:
        close_context(context)


# -- between the groups of a round -----------------------------------------------------------


def test_interim_work_is_what_may_not_wait_for_the_rest_of_the_round():
    """Between the groups of a round the writer takes internal jobs (idempotency records) and
    the lanes that were idle when the round began; a lane already served in the round waits for
    the next one, so a backlog still gets its quantum per round and nobody more than one."""
    waiting = FairQueue(jobs_max=100, lane_jobs_max=100, lane_units_max=10**6, quantum=64)
    big = _Job("payments", list(range(20)), size=20, participant=A, units=320, item_units=16)
    waiting.put_nowait(big)
    waiting.put_nowait(_Job("payments", [1], size=1, participant=B, units=16))
    tiers = waiting.round(0)
    assert [[job.participant for job in tier] for tier in tiers] == [[B], [A]]
    assert waiting.interim() == []
    # While A's slice runs: B's next payment (B was served in this round), C's first one, a
    # record, and A's next request.
    C = "XIHCCNB2"
    waiting.put_nowait(_Job("payments", [2], size=1, participant=B, units=16))
    waiting.put_nowait(_Job("payments", [3], size=1, participant=C, units=16))
    waiting.put_internal(_Job("record", ("scope", "key", None)))
    waiting.put_nowait(_Job("payments", [4], size=1, participant=A, units=16))
    urgent = waiting.interim()
    assert [[(job.kind, job.participant) for job in tier] for tier in urgent] == [
        [("record", "")],
        [("payments", C)],
    ]
    assert waiting.interim() == []  # C is served for this round now, too.
    # The next round: A's next slice and B's waiting payment, lightest first.
    following = waiting.round(0)
    assert [job.participant for tier in following for job in tier] == [B, A]


def test_interim_waits_for_work_up_to_its_timeout():
    waiting = FairQueue(jobs_max=10, lane_jobs_max=10, lane_units_max=100, quantum=64)
    started = time.monotonic()
    assert waiting.interim(0.05) == []
    assert time.monotonic() - started >= 0.05
    threading.Timer(0.05, lambda: waiting.put_internal(_Job("record", None))).start()
    started = time.monotonic()
    arrived = waiting.interim(10)
    assert [job.kind for tier in arrived for job in tier] == ["record"]
    assert time.monotonic() - started < 5
    waiting.put(object())  # The stop marker: the next round takes everything.
    waiting.put_internal(_Job("record", None))
    assert waiting.interim(0) == []


def test_an_answers_record_does_not_wait_for_another_participants_slice(tmp_path):
    """A handler queues the idempotency record of its answer a moment after the writer answered
    it. The writer waits that moment (``writer_record_wait_seconds``) instead of going on with
    another participant's slice, so the client's answer does not wait for the slice."""
    # The wait ends when the record is in: a long bound costs nothing and survives a slow CI.
    service = started(tmp_path, write_quantum_units=16 * 8, writer_record_wait_seconds=5.0)
    saved: list[Any] = []
    service.idempotency = SimpleNamespace(save=saved.extend)  # The app's store, in short.
    ran: list[str] = []
    execute = service._execute

    def logged(group):
        kinds = {job.kind for job in group}
        ran.append("record" if kinds == {"record"} else group[0].participant)
        execute(group)

    service._execute = logged  # type: ignore[method-assign]
    try:
        release = hold_writer(service)
        big = service.payments(payments(A, B, 40), principal=A_CALLER)
        small = service.payments(payments(B, A, 1), principal=B_CALLER)
        recorded: list[Any] = []

        def answered(_: Any) -> None:  # As a handler would, a little later, on another thread.
            def record() -> None:
                time.sleep(0.001)
                recorded.append(service.record("scope", "key", IDEMPOTENT_ANSWER))

            threading.Thread(target=record).start()

        small.add_done_callback(answered)
        release.set()
        assert len(big.result(timeout=60)) == 40
        small.result(timeout=60)
        recorded[0].result(timeout=60)
    finally:
        service.close()
    first_b = ran.index(B)
    assert ran[first_b + 1] == "record", ran  # Before A's next slice.
    assert ran.count(A) == 5, ran  # 40 payments in slices of 8.
    assert saved == [("scope", "key", IDEMPOTENT_ANSWER)]


def test_the_writer_keeps_young_collections_short_and_freezes_what_start_loaded(tmp_path):
    import gc

    service = started(tmp_path)
    try:
        service.payments(payments(A, B, 1), principal=A_CALLER).result(timeout=60)
        assert gc.get_threshold()[0] >= service.config.writer_gc_young_threshold
        assert gc.get_freeze_count() > 10_000  # The network, the ledger, the modules.
    finally:
        service.close()
