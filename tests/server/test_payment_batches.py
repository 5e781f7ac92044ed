"""POST /v1/payment-batches: many payments, one request, one outcome each, one ledger commit."""

from __future__ import annotations

import secrets

BANK, PEER, FOREIGN = "HSBKKZKX", "KCJBKZKX", "BKCHCNBJ"


def test_a_batch_settles_each_payment_with_its_own_outcome(live):
    issued = live.key(BANK)
    prefix = secrets.token_hex(4)
    payments = [
        {
            "instruction_id": f"{prefix}-d{n}",
            "creditor_agent": PEER,
            "amount_minor": 1_000 + n,
            "currency": "KZT",
        }
        for n in range(20)
    ]
    payments.append(
        {
            "instruction_id": f"{prefix}-x",
            "creditor_agent": FOREIGN,
            "amount_minor": 5_000_000,
            "currency": "KZT",
            "creditor_currency": "CNY",
        }
    )
    payments.append(
        {
            "instruction_id": f"{prefix}-usd",
            "creditor_agent": PEER,
            "amount_minor": 5,
            "currency": "USD",
        }
    )
    with live.client(issued) as http:
        before = http.get(f"/v1/accounts/settlement:{BANK}:KZT").json()["debits_posted"]
        answer = http.post(
            "/v1/payment-batches",
            json={"payments": payments},
            headers={"Idempotency-Key": f"{prefix}-b1"},
        )
        after = http.get(f"/v1/accounts/settlement:{BANK}:KZT").json()["debits_posted"]
        replay = http.post(
            "/v1/payment-batches",
            json={"payments": payments},
            headers={"Idempotency-Key": f"{prefix}-b2"},
        )
    assert answer.status_code == 200, answer.text
    outcomes = answer.json()["outcomes"]
    assert [o["payment_id"] for o in outcomes] == [
        f"{BANK}:{p['instruction_id']}" for p in payments
    ]
    assert [o["status"] for o in outcomes[:21]] == ["settled"] * 21
    assert outcomes[20]["route"][-1] == f"{FOREIGN}/CNY"
    assert outcomes[21]["status"] == "rejected" and outcomes[21]["reason"] == "AM03"
    assert after - before == sum(1_000 + n for n in range(20)) + 5_000_000
    # Another idempotency key, same instructions: every payment answers its first outcome.
    assert all(o["duplicate"] for o in replay.json()["outcomes"])


def test_a_participant_cannot_pay_as_another_bank_in_a_batch(live):
    issued = live.key(BANK)
    prefix = secrets.token_hex(4)
    payments = [
        {
            "instruction_id": f"{prefix}-ok",
            "creditor_agent": PEER,
            "amount_minor": 1,
            "currency": "KZT",
        },
        {
            "instruction_id": f"{prefix}-no",
            "debtor_agent": PEER,
            "creditor_agent": BANK,
            "amount_minor": 1,
            "currency": "KZT",
        },
    ]
    with live.client(issued) as http:
        answer = http.post(
            "/v1/payment-batches",
            json={"payments": payments},
            headers={"Idempotency-Key": f"{prefix}-b"},
        )
        own = http.get(f"/v1/payments/{BANK}:{prefix}-ok")
    assert answer.status_code == 403
    assert answer.json()["code"] == "debtor_agent_not_permitted"
    assert own.status_code == 404  # Refused whole: nothing of the batch was submitted.


def test_batch_size_is_bounded(live):
    payments = [
        {"instruction_id": f"big-{n}", "creditor_agent": PEER, "amount_minor": 1, "currency": "KZT"}
        for n in range(1_001)
    ]
    with live.client(live.key(BANK)) as http:
        answer = http.post(
            "/v1/payment-batches",
            json={"payments": payments},
            headers={"Idempotency-Key": secrets.token_hex(8)},
        )
    assert answer.status_code == 422 and answer.json()["code"] == "request_invalid"
