"""The clearing union behind the HTTP API (``serve --mode union``), in-process: a participant's
cross-currency payment is held, an operator's netting cycle settles it through the union, the
cycle is reported as a union cycle, and a bank cannot move the union's accounts."""

from __future__ import annotations

import asyncio

import httpx

from sco_settle.domain.account_key import AccountKey
from sco_settle.network import account_id_for_key
from sco_settle.payments.modes import Mode
from sco_settle.server import ServerConfig, parse_database_url
from sco_settle.server.app import build_app, close_context, open_context
from sco_settle.server.keys import Role


def test_a_union_cycle_over_the_api(tmp_path):
    asyncio.run(_union_cycle(tmp_path))


async def _union_cycle(tmp_path):
    config = ServerConfig(parse_database_url(f"sqlite:///{tmp_path}/u.db"), mode=Mode.UNION)
    context = open_context(config)
    keys = {
        "halyk": context.keys.create("HSBKKZKX", Role.PARTICIPANT),
        "nbk": context.keys.create("NBRKKZKX", Role.PARTICIPANT),
        "operator": context.keys.create("PBOCCNBJ", Role.NETWORK_OPERATOR),
    }

    def auth(name: str, key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {keys[name].api_key}"}
        return headers | ({"Idempotency-Key": key} if key else {})

    transport = httpx.ASGITransport(app=build_app(context))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://sco") as http:
            paid = await http.post(
                "/v1/payments",
                json={
                    "instruction_id": "u-1",
                    "creditor_agent": "BKCHCNBJ",
                    "amount_minor": 1_000_000_00,
                    "currency": "KZT",
                    "creditor_currency": "CNY",
                },
                headers=auth("halyk", "u-1"),
            )
            assert paid.status_code == 201, paid.text
            assert paid.json()["status"] == "queued"
            cycle = await http.post("/v1/netting-cycles", json={}, headers=auth("operator", "c1"))
            assert cycle.status_code == 201, cycle.text
            assert cycle.json()["kind"] == "union" and cycle.json()["settled"] == 1
            assert cycle.json()["net_minor"]["XSC"] > 0
            payment_id = paid.json()["payment_id"]
            shown = (await http.get(f"/v1/payments/{payment_id}", headers=auth("halyk"))).json()
            assert shown["status"] == "settled"
            # The Kazakh central bank's union position is an engine-only account: its own key
            # cannot move it (it answers as a missing account would).
            position = account_id_for_key(AccountKey.settlement("NBRKKZKX", "XSC"))
            moved = await http.post(
                "/v1/transfer-batches",
                json={
                    "transfers": [
                        {
                            "id": "77",
                            "debit_account": str(position),
                            "credit_account": str(
                                account_id_for_key(AccountKey.settlement("NBRKKZKX", "KZT"))
                            ),
                            "amount": 1,
                        }
                    ]
                },
                headers=auth("nbk", "t-1"),
            )
            assert moved.status_code == 200, moved.text
            assert [r["result"] for r in moved.json()["results"]] == ["debit_account_not_found"]
    finally:
        close_context(context)
