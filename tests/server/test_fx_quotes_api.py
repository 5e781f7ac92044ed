"""``/v1/fx-quotes`` (issue 10): a firm quote over the API, a payment that settles exactly at it,
a second use refused, and quotes private to their debtor agent."""

from __future__ import annotations

import asyncio

import httpx

from sco_settle.server import ServerConfig, parse_database_url
from sco_settle.server.app import build_app, close_context, open_context
from sco_settle.server.keys import Role

QUOTE = {
    "creditor_agent": "BKCHCNBJ",
    "amount_minor": 50_000_000_00,
    "currency": "KZT",
    "creditor_currency": "CNY",
}


def test_a_firm_quote_over_the_api(tmp_path):
    asyncio.run(quoting(tmp_path))


async def quoting(tmp_path):
    context = open_context(ServerConfig(parse_database_url(f"sqlite:///{tmp_path}/q.db")))
    keys = {
        "center": context.keys.create("KCJBKZKX", Role.PARTICIPANT),
        "halyk": context.keys.create("HSBKKZKX", Role.PARTICIPANT),
        "auditor": context.keys.create("NBRKKZKX", Role.AUDITOR),
    }

    def auth(name: str, key: str = "") -> dict[str, str]:
        headers = {"Authorization": f"Bearer {keys[name].api_key}"}
        return {**headers, "Idempotency-Key": key} if key else headers

    transport = httpx.ASGITransport(app=build_app(context))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://sco") as http:
            made = await http.post("/v1/fx-quotes", json=QUOTE, headers=auth("center", "q1"))
            assert made.status_code == 201, made.text
            quote = made.json()
            assert quote["status"] == "open" and quote["send_minor"] == 50_000_000_00
            assert quote["conversions"][0]["provider"] == "ICBKKZKX"
            assert quote["holds"] and quote["holds"][0]["owner"] == "ICBKKZKX"
            # the same Idempotency-Key answers the same quote, holding nothing more
            again = await http.post("/v1/fx-quotes", json=QUOTE, headers=auth("center", "q1"))
            assert again.json()["quote_id"] == quote["quote_id"]
            # private to its debtor agent (and auditors)
            hidden = await http.get(f"/v1/fx-quotes/{quote['quote_id']}", headers=auth("halyk"))
            assert hidden.status_code == 404 and hidden.json()["code"] == "fx_quote_not_found"
            seen = await http.get(f"/v1/fx-quotes/{quote['quote_id']}", headers=auth("auditor"))
            assert seen.status_code == 200 and seen.json()["status"] == "open"
            # an auditor cannot take a quote: it moves liquidity
            refused = await http.post("/v1/fx-quotes", json=QUOTE, headers=auth("auditor", "q2"))
            assert refused.status_code == 403
            # another participant cannot pay at this quote
            other = {
                "instruction_id": "h-1",
                "creditor_agent": "BKCHCNBJ",
                "amount_minor": 50_000_000_00,
                "currency": "KZT",
                "creditor_currency": "CNY",
                "fx_quote_id": quote["quote_id"],
            }
            stolen = await http.post("/v1/payments", json=other, headers=auth("halyk", "h1"))
            assert stolen.json()["status"] == "rejected" and stolen.json()["reason"] == "NARR"
            # its debtor agent pays at it: settled exactly at the quoted amounts
            paid = await http.post(
                "/v1/payments",
                json={**other, "instruction_id": "c-1"},
                headers=auth("center", "p1"),
            )
            body = paid.json()
            assert paid.status_code == 201 and body["status"] == "settled", body
            assert body["amount_delivered_minor"] == quote["receive_minor"]
            twice = await http.post(
                "/v1/payments",
                json={**other, "instruction_id": "c-2"},
                headers=auth("center", "p2"),
            )
            assert twice.json()["status"] == "rejected" and twice.json()["reason"] == "DUPL"
            used = await http.get(f"/v1/fx-quotes/{quote['quote_id']}", headers=auth("center"))
            assert used.json()["status"] == "used"
            # a quote that cannot be given: a specific 422 with an ISO reason, holding nothing
            huge = {**QUOTE, "amount_minor": 10**17}
            no = await http.post("/v1/fx-quotes", json=huge, headers=auth("center", "q3"))
            assert no.status_code == 422 and no.json()["code"] == "fx_quote_refused"
            assert no.json()["reason"] in ("AM02", "AM04")
            bad = await http.post(
                "/v1/fx-quotes",
                json={**QUOTE, "amount_type": "receive", "charge_bearer": "CRED"},
                headers=auth("center", "q4"),
            )
            assert bad.status_code == 422 and "CRED" in bad.json()["detail"]
    finally:
        close_context(context)
