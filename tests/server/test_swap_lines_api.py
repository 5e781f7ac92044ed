"""``/v1/swap-lines`` (issue 10): a central bank draws, rolls over and repays a tranche over the
API; a lapsed agreement refuses with its reason; only the drawer acts; what is drawn is known to
the line's two central banks, the network operator and auditors, not to other banks."""

from __future__ import annotations

import asyncio

import httpx

from sco_settle.server import ServerConfig, parse_database_url
from sco_settle.server.app import build_app, close_context, open_context
from sco_settle.server.keys import Role

CBR, PBOC, NBK = "CBRFRUMM", "PBOCCNBJ", "NBRKKZKX"
LINES = "/v1/swap-lines"


def test_swap_line_drawings_over_the_api(tmp_path):
    asyncio.run(drawing(tmp_path))


async def drawing(tmp_path):
    context = open_context(ServerConfig(parse_database_url(f"sqlite:///{tmp_path}/s.db")))
    keys = {
        "cbr": context.keys.create(CBR, Role.PARTICIPANT),
        "pboc": context.keys.create(PBOC, Role.CURRENCY_OPERATOR),
        "nbk": context.keys.create(NBK, Role.PARTICIPANT),
        "bank": context.keys.create("HSBKKZKX", Role.PARTICIPANT),
        "operator": context.keys.create("PBOCCNBJ", Role.NETWORK_OPERATOR),
    }

    def auth(name: str, key: str = "") -> dict[str, str]:
        headers = {"Authorization": f"Bearer {keys[name].api_key}"}
        return {**headers, "Idempotency-Key": key} if key else headers

    draw = {"amount_minor": 1_000_000_00, "months": 3, "interest_rate": "0.025",
            "value_date": "2026-12-07"}  # fmt: skip
    transport = httpx.ASGITransport(app=build_app(context))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://sco") as http:
            # Only the drawer draws: not another bank, not even the network operator.
            for name in ("operator", "bank", "pboc"):
                refused = await http.post(
                    f"{LINES}/{CBR}/{PBOC}/tranches", json=draw, headers=auth(name, f"x-{name}")
                )
                assert refused.status_code == 403, (name, refused.text)
            made = await http.post(
                f"{LINES}/{CBR}/{PBOC}/tranches", json=draw, headers=auth("cbr", "d1")
            )
            assert made.status_code == 201, made.text
            tranche = made.json()
            assert tranche["principal_minor"] == 1_000_000_00 and tranche["counter_minor"] > 0
            assert tranche["maturity"] == "2027-03-07"
            # A lapsed agreement: refused with its reason, nothing moved.
            lapsed = await http.post(
                f"{LINES}/{NBK}/{PBOC}/tranches", json=draw, headers=auth("nbk", "d2")
            )
            assert lapsed.status_code == 409 and lapsed.json()["reason"] == "agreement_lapsed"
            none = await http.post(
                f"{LINES}/{NBK}/{CBR}/tranches", json=draw, headers=auth("nbk", "d3")
            )
            assert none.status_code == 404 and none.json()["code"] == "swap_line_not_found"
            # Who sees what is drawn.
            listed = {
                name: {
                    (s["drawer"], s["provider"]): s
                    for s in (await http.get(f"{LINES}?on=2026-12-07", headers=auth(name))).json()[
                        "items"
                    ]
                }
                for name in ("cbr", "pboc", "bank", "operator")
            }
            for name in ("cbr", "pboc", "operator"):
                assert listed[name][(CBR, PBOC)]["drawn_minor"] == 1_000_000_00, name
            assert "drawn_minor" not in listed["bank"][(CBR, PBOC)]
            assert listed["bank"][(CBR, PBOC)]["size_minor"] > 0  # the agreement is public
            # Roll over, then repay; a second repayment is refused.
            rolled = await http.post(
                f"{LINES}/{CBR}/{PBOC}/tranches/{tranche['tranche']}/rollover",
                json={"months": 6, "interest_rate": "0.03", "on": "2027-03-07"},
                headers=auth("cbr", "r1"),
            )
            assert rolled.status_code == 201, rolled.text
            new_id = rolled.json()["tranche"]
            paid = await http.post(
                f"{LINES}/{CBR}/{PBOC}/tranches/{new_id}/repayment",
                json={"on": "2027-09-07"}, headers=auth("cbr", "p1"),
            )  # fmt: skip
            assert paid.status_code == 200 and paid.json()["state"] == "repaid"
            again = await http.post(
                f"{LINES}/{CBR}/{PBOC}/tranches/{new_id}/repayment",
                json={"on": "2027-09-07"}, headers=auth("cbr", "p2"),
            )  # fmt: skip
            assert again.status_code == 409 and again.json()["reason"] == "tranche_repaid"
            bad = await http.post(
                f"{LINES}/{CBR}/{PBOC}/tranches", json={**draw, "interest_rate": "2.5"},
                headers=auth("cbr", "d4"),
            )  # fmt: skip
            assert bad.status_code == 422
    finally:
        close_context(context)
