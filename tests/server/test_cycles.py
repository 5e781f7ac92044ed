"""Netting cycles in DNS mode, in-process: payments are held, a cycle settles them; a central
bank runs cycles for its own currency only."""

from __future__ import annotations

import asyncio

import httpx

from sco_settle.payments.engine import Mode
from sco_settle.server import ServerConfig, parse_database_url
from sco_settle.server.app import build_app, close_context, open_context
from sco_settle.server.keys import Role


def test_dns_cycles_by_currency(tmp_path):
    asyncio.run(dns_cycles_by_currency(tmp_path))


async def dns_cycles_by_currency(tmp_path):
    config = ServerConfig(parse_database_url(f"sqlite:///{tmp_path}/dns.db"), mode=Mode.DNS)
    context = open_context(config)
    keys = {
        "cny": context.keys.create("BKCHCNBJ", Role.PARTICIPANT),
        "kzt": context.keys.create("HSBKKZKX", Role.PARTICIPANT),
        "pboc": context.keys.create("PBOCCNBJ", Role.CURRENCY_OPERATOR),
        "operator": context.keys.create("PBOCCNBJ", Role.NETWORK_OPERATOR),
    }

    def auth(name: str, key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {keys[name].api_key}"}
        return headers | ({"Idempotency-Key": key} if key else {})

    transport = httpx.ASGITransport(app=build_app(context))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://sco") as http:
            await run(http, auth)
    finally:
        close_context(context)


async def run(http, auth) -> None:
    async def get(path: str, who: str = "operator") -> httpx.Response:
        return await http.get(path, headers=auth(who))

    held = []
    for number, (who, creditor, code) in enumerate(
        [("cny", "ICBKCNBJ", "CNY"), ("cny", "XIHCCNB2", "CNY"), ("kzt", "KCJBKZKX", "KZT")]
    ):
        response = await http.post(
            "/v1/payments",
            json={
                "instruction_id": f"dns-{number}",
                "creditor_agent": creditor,
                "amount_minor": 1000 + number,
                "currency": code,
            },
            headers=auth(who, f"dns-{number}"),
        )
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "queued"
        held.append(response.json()["payment_id"])

    cny = await http.post("/v1/netting-cycles", json={}, headers=auth("pboc", "cycle-cny"))
    assert cny.status_code == 201, cny.text
    result = cny.json()
    assert result["kind"] == "dns" and result["currencies"] == ["CNY"]
    assert result["settled"] == 2 and result["gross_minor"] == {"CNY": 2001}
    statuses = [(await get(f"/v1/payments/{p}")).json()["status"] for p in held]
    assert statuses == ["settled", "settled", "queued"]

    denied = await http.post(
        "/v1/netting-cycles", json={"currency": "KZT"}, headers=auth("pboc", "cycle-kzt")
    )
    assert denied.status_code == 403
    everything = await http.post("/v1/netting-cycles", json={}, headers=auth("operator", "all"))
    assert everything.status_code == 201 and everything.json()["settled"] == 1
    assert everything.json()["currencies"] is None

    listed = (await get("/v1/netting-cycles?limit=1")).json()
    assert [c["cycle_id"] for c in listed["items"]] == [1] and listed["next_cursor"]
    second = (await get(f"/v1/netting-cycles?limit=1&after={listed['next_cursor']}")).json()
    assert [c["cycle_id"] for c in second["items"]] == [2] and second["next_cursor"] is None
    assert (await get("/v1/netting-cycles/2", "pboc")).json()["settled"] == 1
    assert (await get("/v1/netting-cycles/3")).status_code == 404
    report = (await get("/v1/reports/corridors")).json()["items"]
    assert {(r["corridor"], r["currency"], r["settled_count"]) for r in report} == {
        ("CN-CN", "CNY", 2),
        ("KZ-KZ", "KZT", 1),
    }
