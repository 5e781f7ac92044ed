"""``serve --operating-day``: the writer closes each currency's business day after its end of
day, and ``GET /v1/end-of-day`` shows operators and auditors what it did."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import httpx

from sco_settle.server import ServerConfig, parse_database_url
from sco_settle.server.app import build_app, close_context, open_context
from sco_settle.server.keys import Role


def test_the_server_closes_business_days(tmp_path):
    asyncio.run(closing(tmp_path))


async def closing(tmp_path):
    config = ServerConfig(
        parse_database_url(f"sqlite:///{tmp_path}/e.db"),
        operating_day=True,
        statements_dir=tmp_path / "statements",
        tick_seconds=0.2,
    )
    context = open_context(config)
    keys = {
        "auditor": context.keys.create("NBRKKZKX", Role.AUDITOR),
        "bank": context.keys.create("HSBKKZKX", Role.PARTICIPANT),
    }
    transport = httpx.ASGITransport(app=build_app(context))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://sco") as http:
            auditor = {"Authorization": f"Bearer {keys['auditor'].api_key}"}
            deadline = time.monotonic() + 30
            items: list[dict[str, object]] = []
            while time.monotonic() < deadline and not {"CNY", "RUB"} <= {
                item["currency"] for item in items
            }:
                await asyncio.sleep(0.3)
                answer = await http.get("/v1/end-of-day", headers=auditor)
                assert answer.status_code == 200
                items = answer.json()["items"]
            currencies = {item["currency"] for item in items}
            assert {"CNY", "RUB"} <= currencies, items
            today = dt.datetime.now(dt.UTC).date()
            for item in items:
                assert dt.date.fromisoformat(str(item["business_day"])) <= today
            # The ledger opened after these days ended: nothing to state for them yet (the
            # statements themselves are tested in tests/pipeline/test_end_of_day.py).
            assert all(item["statements"] == 0 for item in items)
            bank = {"Authorization": f"Bearer {keys['bank'].api_key}"}
            refused = await http.get("/v1/end-of-day", headers=bank)
            assert refused.status_code == 403
    finally:
        close_context(context)
