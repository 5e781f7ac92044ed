"""The API for a participant's waiting payments (issue 9): cancel one, or change its priority,
only as its debtor agent; and fixed received amounts (``amount_type: receive``) over JSON."""

from __future__ import annotations

import asyncio

import httpx

from sco_settle.payments.engine import Mode
from sco_settle.server import ServerConfig, parse_database_url
from sco_settle.server.app import build_app, close_context, open_context
from sco_settle.server.keys import Role


def test_cancel_and_reprioritise_waiting_payments(tmp_path):
    asyncio.run(waiting(tmp_path))


async def waiting(tmp_path):
    config = ServerConfig(parse_database_url(f"sqlite:///{tmp_path}/w.db"), mode=Mode.DNS)
    context = open_context(config)
    keys = {
        "halyk": context.keys.create("HSBKKZKX", Role.PARTICIPANT),
        "center": context.keys.create("KCJBKZKX", Role.PARTICIPANT),
        "auditor": context.keys.create("NBRKKZKX", Role.AUDITOR),
    }

    def auth(name: str, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {keys[name].api_key}", "Idempotency-Key": key}

    transport = httpx.ASGITransport(app=build_app(context))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://sco") as http:
            ids = []
            for number in range(2):
                made = await http.post(
                    "/v1/payments",
                    json={
                        "instruction_id": f"w-{number}",
                        "creditor_agent": "KCJBKZKX",
                        "amount_minor": 1000,
                        "currency": "KZT",
                    },
                    headers=auth("halyk", f"w-{number}"),
                )
                assert made.status_code == 201 and made.json()["status"] == "queued"
                ids.append(made.json()["payment_id"])
            first, second = ids
            # Another participant: the payment does not exist for it. An auditor moves nothing.
            other = await http.post(
                f"/v1/payments/{first}/cancellation", headers=auth("center", "c1")
            )
            assert other.status_code == 404 and other.json()["code"] == "payment_not_found"
            audit = await http.post(
                f"/v1/payments/{first}/cancellation", headers=auth("auditor", "c2")
            )
            assert audit.status_code == 403
            done = await http.post(
                f"/v1/payments/{first}/cancellation", headers=auth("halyk", "c3")
            )
            assert done.status_code == 200 and done.json()["status"] == "cancelled"
            again = await http.post(
                f"/v1/payments/{first}/cancellation", headers=auth("halyk", "c4")
            )
            assert again.status_code == 409 and again.json()["code"] == "payment_not_waiting"
            urgent = await http.patch(
                f"/v1/payments/{second}", json={"priority": "urgent"}, headers=auth("halyk", "p1")
            )
            assert urgent.status_code == 200, urgent.text
            bad = await http.patch(
                f"/v1/payments/{second}", json={"priority": "high"}, headers=auth("halyk", "p2")
            )
            assert bad.status_code == 422
            shown = await http.get(f"/v1/payments/{second}", headers=auth("halyk", "g"))
            assert shown.json()["instruction"]["priority"] == "urgent"
            events = [e["detail"] for e in shown.json()["events"]]
            assert any("priority set to urgent" in e for e in events)
            received = await http.post(
                "/v1/payments",
                json={
                    "instruction_id": "r-1",
                    "creditor_agent": "BKCHCNBJ",
                    "amount_minor": 14_100_00,
                    "currency": "KZT",
                    "creditor_currency": "CNY",
                    "amount_type": "receive",
                },
                headers=auth("halyk", "r-1"),
            )
            assert received.status_code == 201, received.text
            assert received.json()["status"] == "queued"  # DNS: held for its cycle
    finally:
        close_context(context)


def test_returns_over_json_are_payments_back(tmp_path):
    asyncio.run(returns(tmp_path))


async def returns(tmp_path):
    config = ServerConfig(parse_database_url(f"sqlite:///{tmp_path}/r.db"))
    context = open_context(config)
    keys = {
        "halyk": context.keys.create("HSBKKZKX", Role.PARTICIPANT),
        "boc": context.keys.create("BKCHCNBJ", Role.PARTICIPANT),
    }

    def auth(name: str, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {keys[name].api_key}", "Idempotency-Key": key}

    transport = httpx.ASGITransport(app=build_app(context))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://sco") as http:
            paid = await http.post(
                "/v1/payments",
                json={
                    "instruction_id": "inv-1",
                    "creditor_agent": "BKCHCNBJ",
                    "amount_minor": 14_100_00,
                    "currency": "KZT",
                    "creditor_currency": "CNY",
                    "amount_type": "receive",
                },
                headers=auth("halyk", "inv-1"),
            )
            assert paid.status_code == 201, paid.text
            body = paid.json()
            assert body["status"] == "settled" and body["amount_delivered_minor"] == 14_100_00
            assert body["amount_sent_minor"] > 0 and body["applied_rate"].startswith("0.014")
            payment_id = body["payment_id"]
            path = f"/v1/payments/{payment_id}/returns"
            payer = await http.post(path, json={"return_id": "R1"}, headers=auth("halyk", "x"))
            assert payer.status_code == 404  # Only the creditor agent returns a payment.
            part = await http.post(
                path,
                json={"return_id": "R1", "amount_minor": 100_00, "reason": "AC04"},
                headers=auth("boc", "r1"),
            )
            assert part.status_code == 201, part.text
            assert part.json()["status"] == "settled"
            assert part.json()["amount_sent_minor"] == 100_00
            too_much = await http.post(
                path,
                json={"return_id": "R2", "amount_minor": 14_100_00},
                headers=auth("boc", "r2"),
            )
            assert too_much.status_code == 409
            assert too_much.json()["code"] == "payment_not_returnable"
            shown = await http.get(f"/v1/payments/{payment_id}", headers=auth("halyk", "g"))
            assert shown.json()["amount_returned_minor"] == 100_00
            assert shown.json()["status"] == "settled"
    finally:
        close_context(context)
