"""Idempotency-Key: required on writes; same request replays; different request conflicts."""

from __future__ import annotations

import secrets
import threading

import pytest

from sco_settle.server.config import parse_database_url
from sco_settle.server.db import StateDb
from sco_settle.server.errors import ApiError
from sco_settle.server.idempotency import IdempotencyStore, StoredResponse
from tests.server.test_isolation import pacs_008

BANK, OTHER = "XIHCCNB2", "BOXJCNU0"


@pytest.fixture(scope="module")
def bank(live):
    issued = live.key(BANK)
    with live.client(issued) as http:
        own = http.get(f"/v1/accounts/settlement:{BANK}:CNY").json()["id"]
    with live.client(live.key(OTHER)) as http:
        other = http.get(f"/v1/accounts/settlement:{OTHER}:CNY").json()["id"]
    return issued, own, other


def test_replay_returns_the_first_answer_and_moves_money_once(live, bank):
    issued, own, other = bank
    body = {
        "transfers": [
            {
                "id": str(secrets.randbits(100)),
                "debit_account": own,
                "credit_account": other,
                "amount": 25,
            }
        ]
    }
    with live.client(issued) as http:
        before = http.get(f"/v1/accounts/{own}").json()["debits_posted"]
        first = http.post("/v1/transfer-batches", json=body, headers={"Idempotency-Key": "t-1"})
        again = http.post("/v1/transfer-batches", json=body, headers={"Idempotency-Key": "t-1"})
        after = http.get(f"/v1/accounts/{own}").json()["debits_posted"]
    assert first.status_code == again.status_code == 200
    assert "Idempotency-Replayed" not in first.headers
    assert again.headers["Idempotency-Replayed"] == "true"
    assert again.content == first.content
    assert first.json()["results"][0]["result"] == "ok"
    assert after - before == 25


def test_same_key_with_another_request_conflicts(live, bank):
    issued, own, other = bank
    transfer = {"id": str(secrets.randbits(100)), "debit_account": own, "credit_account": other}
    with live.client(issued) as http:
        first = http.post(
            "/v1/transfer-batches",
            json={"transfers": [{**transfer, "amount": 1}]},
            headers={"Idempotency-Key": "t-2"},
        )
        changed = http.post(
            "/v1/transfer-batches",
            json={"transfers": [{**transfer, "amount": 2}]},
            headers={"Idempotency-Key": "t-2"},
        )
        elsewhere = http.post(
            "/v1/payments",
            json={
                "instruction_id": "t-2",
                "creditor_agent": OTHER,
                "amount_minor": 1,
                "currency": "CNY",
            },
            headers={"Idempotency-Key": "t-2"},
        )
    assert first.status_code == 200
    for response in (changed, elsewhere):
        assert response.status_code == 409
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "idempotency_key_reused"


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "idempotency_key_required"),
        ({"Idempotency-Key": "has space"}, "idempotency_key_invalid"),
        ({"Idempotency-Key": "x" * 256}, "idempotency_key_invalid"),
    ],
)
def test_writes_need_a_valid_key(live, bank, headers, code):
    issued = bank[0]
    with live.client(issued) as http:
        for path, body in (
            ("/v1/transfer-batches", {"transfers": []}),
            (
                "/v1/payments",
                {
                    "instruction_id": "k",
                    "creditor_agent": OTHER,
                    "amount_minor": 1,
                    "currency": "CNY",
                },
            ),
            ("/v1/netting-cycles", {}),
        ):
            response = http.post(path, json=body, headers=headers)
            assert response.status_code == 400, (path, response.text)
            assert response.json()["code"] == code


def test_keys_are_scoped_per_participant(live, bank):
    issued = bank[0]
    with live.client(issued) as mine, live.client(live.key(OTHER)) as theirs:
        first = mine.post(
            "/v1/payments",
            json={
                "instruction_id": "scope-1",
                "creditor_agent": OTHER,
                "amount_minor": 3,
                "currency": "CNY",
            },
            headers={"Idempotency-Key": "shared"},
        )
        second = theirs.post(
            "/v1/payments",
            json={
                "instruction_id": "scope-1",
                "creditor_agent": BANK,
                "amount_minor": 3,
                "currency": "CNY",
            },
            headers={"Idempotency-Key": "shared"},
        )
    assert first.status_code == second.status_code == 201
    assert first.json()["payment_id"] == f"{BANK}:scope-1"
    assert second.json()["payment_id"] == f"{OTHER}:scope-1"


def test_payment_and_iso_replays(live, bank):
    issued, _, _ = bank
    payment = {
        "instruction_id": "replay-1",
        "creditor_agent": OTHER,
        "amount_minor": 4,
        "currency": "CNY",
    }
    message = pacs_008(BANK, OTHER)
    with live.client(issued) as http:
        first = http.post("/v1/payments", json=payment, headers={"Idempotency-Key": "p-1"})
        replay = http.post("/v1/payments", json=payment, headers={"Idempotency-Key": "p-1"})
        resubmitted = http.post("/v1/payments", json=payment, headers={"Idempotency-Key": "p-2"})
        xml = {"Idempotency-Key": "iso-1", "Content-Type": "application/xml"}
        iso_first = http.post("/v1/iso20022/messages", content=message, headers=xml)
        iso_replay = http.post("/v1/iso20022/messages", content=message, headers=xml)
    assert first.status_code == 201 and replay.content == first.content
    assert replay.headers["Idempotency-Replayed"] == "true"
    # Another key for the same instruction: the payment id dedupes it (first outcome, duplicate).
    assert resubmitted.status_code == 200 and resubmitted.json()["duplicate"] is True
    assert resubmitted.json()["status"] == first.json()["status"] == "settled"
    assert iso_first.status_code == 200 and iso_replay.content == iso_first.content
    assert iso_replay.headers["content-type"].startswith("application/xml")


def test_a_running_request_holds_its_key(tmp_path):
    state = StateDb(parse_database_url(f"sqlite:///{tmp_path}/api.db"))
    try:
        store = IdempotencyStore(state, 3600)
        assert store.begin("participant:X", "k", "f1") is None
        with pytest.raises(ApiError) as raised:
            store.begin("participant:X", "k", "f1")
        assert raised.value.code == "idempotency_request_in_progress"
        store.release("participant:X", "k")
        assert store.begin("participant:X", "k", "f1") is None
    finally:
        state.close()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    if request.param == "sqlite":
        database = parse_database_url(f"sqlite:///{tmp_path}/api.db")
    else:
        schema = request.getfixturevalue("pg_schema")
        database = parse_database_url(request.getfixturevalue("postgres_dsn"), schema=schema)
    state = StateDb(database)
    try:
        yield IdempotencyStore(state, 3600)
    finally:
        state.close()


FIRST = StoredResponse("f1", 200, "application/json", b'{"results":["ok"]}')
SECOND = StoredResponse("f1", 200, "application/json", b'{"results":["exists"]}')


def test_a_key_never_runs_twice_when_the_first_request_ends_during_the_claim(store, monkeypatch):
    """M5, made deterministic: request A finishes (saves its answer and releases its key) right
    after request B read the stored records (none yet) and before B looked at the running keys.
    B must replay A's answer or be told A is running; it must never run the operation again."""
    scope, key = "participant:X", "race-1"
    assert store.begin(scope, key, "f1") is None  # A claims the key and runs.
    read = store.db.execute
    finished = []

    def read_then_let_a_finish(statement, params=()):
        rows = read(statement, params)
        if "api_idempotency" in statement and not finished:
            finished.append(True)
            store.save([(scope, key, FIRST)])  # A's answer, then A gives its key back.
            store.release(scope, key)
        return rows

    monkeypatch.setattr(store.db, "execute", read_then_let_a_finish)
    try:
        claimed = store.begin(scope, key, "f1")  # B
    except ApiError as error:
        assert error.code == "idempotency_request_in_progress"
    else:
        assert claimed == FIRST, "the same Idempotency-Key ran twice"
    monkeypatch.undo()
    if not finished:  # B was refused while A ran; A finishes now.
        store.save([(scope, key, FIRST)])
        store.release(scope, key)
    assert store.begin(scope, key, "f1") == FIRST


def test_concurrent_claims_of_one_key_let_exactly_one_run(store):
    scope, key = "participant:X", "race-2"
    barrier = threading.Barrier(8)
    outcomes = []

    def claim():
        barrier.wait()
        try:
            outcomes.append(store.begin(scope, key, "f1"))
        except ApiError as error:
            outcomes.append(error.code)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count(None) == 1
    assert outcomes.count("idempotency_request_in_progress") == 7


def test_saving_never_replaces_the_first_answer(store):
    scope, key = "participant:X", "first-wins"
    store.save([(scope, key, FIRST)])
    store.save([(scope, key, SECOND)])  # A second run (it must not happen; if it does) ...
    assert store.begin(scope, key, "f1") == FIRST  # ... does not change the stored answer.
    with store.db.transaction() as execute:  # Expired (older than the TTL, not pruned yet) ...
        execute("UPDATE api_idempotency SET created_at = 0 WHERE idempotency_key = ?", (key,))
    assert store.begin(scope, key, "f1") is None
    store.save([(scope, key, SECOND)])  # ... the next request's answer replaces it.
    store.release(scope, key)
    assert store.begin(scope, key, "f1") == SECOND


def test_a_framing_error_is_not_kept_under_the_key(live, bank):
    """L3: a pacs.008 first sent as text/plain got 415, stored; the corrected retry with the same
    key replayed 415 for 24 h. Same for a body that is not JSON (400)."""
    issued, own, other = bank
    message = pacs_008(BANK, OTHER)
    with live.client(issued) as http:
        wrong = http.post(
            "/v1/iso20022/messages",
            content=message,
            headers={"Idempotency-Key": "framing-1", "Content-Type": "text/plain"},
        )
        assert wrong.status_code == 415, wrong.text
        right = http.post(
            "/v1/iso20022/messages",
            content=message,
            headers={"Idempotency-Key": "framing-1", "Content-Type": "application/xml"},
        )
        assert right.status_code == 200, right.text
        assert "Idempotency-Replayed" not in right.headers
        broken = http.post(
            "/v1/transfer-batches",
            content=b'{"transfers": [',
            headers={"Idempotency-Key": "framing-2", "Content-Type": "application/json"},
        )
        assert broken.status_code == 400, broken.text
        transfer = {
            "id": str(secrets.randbits(100)),
            "debit_account": own,
            "credit_account": other,
            "amount": 1,
        }
        fixed = http.post(
            "/v1/transfer-batches",
            json={"transfers": [transfer]},
            headers={"Idempotency-Key": "framing-2"},
        )
        assert fixed.status_code == 200, fixed.text
        assert fixed.json()["results"][0]["result"] == "ok"


def test_the_fingerprint_covers_the_content_type(live, bank):
    issued = bank[0]
    message = pacs_008(BANK, OTHER)
    with live.client(issued) as http:
        first = http.post(
            "/v1/iso20022/messages",
            content=message,
            headers={"Idempotency-Key": "media-1", "Content-Type": "application/xml"},
        )
        assert first.status_code == 200, first.text
        same = http.post(
            "/v1/iso20022/messages",
            content=message,
            headers={"Idempotency-Key": "media-1", "Content-Type": "Application/XML"},
        )
        assert same.headers["Idempotency-Replayed"] == "true"  # Case does not matter ...
        other = http.post(
            "/v1/iso20022/messages",
            content=message,
            headers={"Idempotency-Key": "media-1", "Content-Type": "text/plain"},
        )
    assert other.status_code == 409, other.text  # ... but another media type is another request.
    assert other.json()["code"] == "idempotency_key_reused"
