"""Route quotes show only the liquidity the caller could read anyway (review finding M2): no
other participant's ``available_minor``, no exclusion naming an intermediary that lacks
liquidity, no ``uses_credit`` on another participant's leg."""

from __future__ import annotations

import pytest

from sco_settle.server.keys import Role

BANK, PEER = "HSBKKZKX", "KCJBKZKX"
LIQUIDITY = {"insufficient_balance", "exceeds_credit_limit", "exceeds_swap_line_headroom"}
# KZT 22 bn (about CNY 310 m): more than KCJB's CNY nostros hold (CNY 250 m), less than ICBC
# Almaty's (CNY 500 m): there is a route through the clearing bank, and KCJB's own KZT->CNY
# conversion is excluded for lack of CNY (its balance shows as available).
QUOTE = {
    "debtor_agent": BANK,
    "creditor_agent": PEER,
    "amount_minor": 22 * 10**11,
    "currency": "KZT",
    "creditor_currency": "CNY",
    "routes_max": 3,
}


def owner(exclusion: dict) -> str:
    """The participant an excluded edge draws on: its source."""
    return exclusion["path"][-2].split("/")[0]


@pytest.fixture(scope="module")
def quotes(live):
    answers = {}
    for name, participant, role in [
        ("operator", "PBOCCNBJ", Role.NETWORK_OPERATOR),
        ("auditor", "PBOCCNBJ", Role.AUDITOR),
        ("participant", BANK, Role.PARTICIPANT),
        ("kzt_operator", "NBRKKZKX", Role.CURRENCY_OPERATOR),
    ]:
        with live.client(live.key(participant, role)) as http:
            answer = http.post("/v1/route-quotes", json=QUOTE)
        assert answer.status_code == 200, answer.text
        answers[name] = answer.json()
    return answers


def test_operators_and_auditors_see_every_edges_liquidity(quotes):
    for name in ("operator", "auditor"):
        found = quotes[name]
        foreign = [e for e in found["exclusions"] if owner(e) != BANK and e["reason"] in LIQUIDITY]
        assert any(owner(e) == PEER and e["available_minor"] is not None for e in foreign), found
        assert found["exclusions_withheld"] == 0
        assert all(
            leg["uses_credit"] is not None for route in found["routes"] for leg in route["legs"]
        )


def test_a_participant_sees_only_its_own_liquidity(quotes):
    everything, mine = quotes["operator"], quotes["participant"]
    assert mine["status"] == everything["status"] == "ok"
    assert mine["routes"] and [r["nodes"] for r in mine["routes"]] == [
        r["nodes"] for r in everything["routes"]
    ]
    for exclusion in mine["exclusions"]:
        if owner(exclusion) != BANK:
            assert exclusion["reason"] not in LIQUIDITY, exclusion
            assert exclusion["available_minor"] is None, exclusion
    # Its own capacity is still shown, and the others' refusals are only counted.
    own = [e for e in mine["exclusions"] if owner(e) == BANK and e["reason"] in LIQUIDITY]
    assert own and all(e["available_minor"] is not None for e in own)
    foreign = [e for e in everything["exclusions"] if owner(e) != BANK and e["reason"] in LIQUIDITY]
    assert mine["exclusions_withheld"] == len(foreign) > 0
    for route in mine["routes"]:
        for leg in route["legs"]:
            assert (leg["uses_credit"] is None) == (not leg["source"].startswith(f"{BANK}/"))


def test_a_currency_operator_sees_liquidity_in_its_currencies_only(quotes):
    found = quotes["kzt_operator"]
    for exclusion in found["exclusions"]:
        readable = exclusion["currency"] == "KZT" or "NBRKKZKX" in owner(exclusion)
        if exclusion["available_minor"] is not None or exclusion["reason"] in LIQUIDITY:
            assert readable, exclusion
    assert found["exclusions_withheld"] > 0  # KCJB's CNY, for one.


def test_no_amount_of_another_participants_balance_appears_in_a_quote(live, quotes):
    """The review's repro: HSBK learnt KCJB's CNY balance (which it cannot GET) from a quote."""
    foreign_amounts = {
        e["available_minor"]
        for e in quotes["operator"]["exclusions"]
        if owner(e) == PEER and e["available_minor"] is not None
    }
    assert foreign_amounts
    with live.client(live.key(BANK)) as http:
        for amount in (10**13, 10**12, 6 * 10**9, 5 * 10**9 + 1):
            found = http.post("/v1/route-quotes", json={**QUOTE, "amount_minor": amount}).json()
            for exclusion in found["exclusions"]:
                if exclusion["reason"] in LIQUIDITY:
                    assert owner(exclusion) == BANK, exclusion
                if owner(exclusion) != BANK:
                    assert exclusion["available_minor"] is None, exclusion
