"""The map, the liquidity savings and a payment's ISO 20022 messages, in a real browser.

Debian's Chromium driven by Playwright, every page watched as in ``test_browser.py`` (no request
leaves the server's origin, no console error). The numbers on the pages are checked against the
API's answers for the same keys.
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from sco_settle.messaging.iso20022 import CreditTransferMessage, StatusReport, read_message
from sco_settle.payments.liquidity_use import liquidity_by_currency
from sco_settle.payments.modes import Mode
from sco_settle.server.dashboard.views import _settled_flow
from tests.dashboard.conftest import A, B, Parties, pay
from tests.dashboard.test_browser import DESKTOP, PHONE, watched  # noqa: F401 - the fixture
from tests.server.conftest import LiveServer

ROOT = Path(__file__).resolve().parents[2]
ISO_PAYMENT = "HSBKKZKX:5c0e4b1f-3d2a-4e8b-9f61-2a7d9c4e8101"  # examples/pacs008_kz_to_cn.xml
SETTLE_SECONDS_MAX = 20


def api_get(server: LiveServer, key: Any, path: str, **params: Any) -> dict[str, Any]:
    with server.client(key) as http:
        answer = http.get(path, params=params)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def api_payments(server: LiveServer, key: Any, status: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    after = None
    while True:
        params = {"status": status, "limit": 100, **({"after": after} if after else {})}
        page = api_get(server, key, "/v1/payments", **params)
        items += page["items"]
        after = page["next_cursor"]
        if not after:
            return items


@pytest.fixture(scope="module")
def scene(server: LiveServer, parties: Parties) -> Parties:
    """Besides the parties' payments: a pair that only offsetting settles (A and B each pay the
    other more than they hold), and the example pacs.008 from Halyk Bank (KZT) to A (CNY)."""
    balances = [
        int(account["available_minor"])
        for key in (parties.a, parties.b)
        for account in api_get(server, key, "/v1/accounts")["items"]
    ]
    big = max(balances) + 10**8
    pay(server, parties.a, "lsm-a", creditor_agent=B, amount_minor=big)
    pay(server, parties.b, "lsm-b", creditor_agent=A, amount_minor=big)
    with server.client(parties.operator) as http:
        answer = http.post("/v1/netting-cycles", json={}, headers={"Idempotency-Key": "cycle-1"})
    assert answer.status_code < 300, answer.text
    deadline = time.monotonic() + SETTLE_SECONDS_MAX
    while api_payments(server, parties.operator, "queued"):
        assert time.monotonic() < deadline, "the offsetting pair did not settle"
        time.sleep(0.2)
    halyk = server.key("HSBKKZKX")
    message = (ROOT / "examples" / "pacs008_kz_to_cn.xml").read_bytes()
    with server.client(halyk) as http:
        answer = http.post(
            "/v1/iso20022/messages",
            content=message,
            headers={"Content-Type": "application/xml", "Idempotency-Key": "iso-1"},
        )
    assert answer.status_code == 200, answer.text
    return parties


# -- the map ---------------------------------------------------------------------------------


def _map_flows(page: Any) -> set[tuple[str, str]]:
    found = page.eval_on_selector_all(
        "svg.map a.flow", "els => els.map(e => [e.dataset.corridor, e.dataset.currency])"
    )
    return {(corridor, currency) for corridor, currency in found}


def _api_flows(server: LiveServer, key: Any) -> set[tuple[str, str]]:
    rows = api_get(server, key, "/v1/reports/corridors", limit=1000)["items"]
    return {(row["corridor"], row["currency"]) for row in rows}


@pytest.mark.parametrize("role", ["operator", "a", "b"])
def test_the_map_shows_exactly_the_callers_corridors(watched, server, scene, role):  # noqa: F811
    key = getattr(scene, role)
    one = watched(DESKTOP)
    one.sign_in(key.api_key)
    one.goto("/dashboard/map")
    page = one.page
    assert page.locator("svg.map [data-country]").count() >= 27
    member = page.locator('svg.map [data-country="KZ"] path').get_attribute("class")
    partner = page.locator('svg.map [data-country="MN"] path').get_attribute("class")
    assert (member, partner) == ("member", "partner")
    expected = _api_flows(server, key)
    assert _map_flows(page) == expected and expected
    table = page.locator("#map-corridors tbody").inner_text()
    rows = api_get(server, key, "/v1/reports/corridors", limit=1000)["items"]
    for row in rows:  # The settled share of every corridor, as the API's counts give it.
        share = Decimal(100 * row["settled_count"]) / Decimal(row["payments"])
        assert f"{share:.1f} %" in table
    if role == "b":  # B takes part in neither the pacs.008 to A nor A's payment to Russia.
        assert ("KZ-CN", "KZT") not in expected and ("CN-RU", "CNY") not in expected
        assert "KZ-CN" not in table and "SABRRUMM" not in page.content()
    else:
        assert ("KZ-CN", "KZT") in expected


def test_a_corridor_is_selected_with_the_keyboard_alone(watched, scene):  # noqa: F811
    one = watched(DESKTOP)
    one.sign_in(scene.operator.api_key)
    one.goto("/dashboard/map")
    page = one.page
    focused = None
    for _ in range(60):  # Tab until a corridor (on the map or in its table) has the focus.
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.getAttribute('href')")
        if focused and "corridor=" in focused:
            break
    assert focused and "corridor=" in focused, focused
    corridor = focused.split("corridor=")[1].split("#")[0]
    page.keyboard.press("Enter")
    page.wait_for_url(f"**corridor={corridor}**")
    selected = page.locator(f'svg.map a.flow[data-corridor="{corridor}"]').first
    assert selected.get_attribute("aria-current") == "true"
    assert "selected" in (selected.get_attribute("class") or "")
    assert corridor in page.locator("#map-selected").inner_text()
    # The table's link of the same corridor is marked, and another one selects that one.
    other = page.locator(f'#map-corridors a:not([href*="corridor={corridor}"])').first
    href = other.get_attribute("href")
    other.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"**{href.split('?')[1].split('#')[0]}**")
    assert page.locator('svg.map a.flow[aria-current="true"]').count() >= 1


def test_the_map_fits_a_phone_and_keeps_its_period(watched, scene):  # noqa: F811
    one = watched(PHONE)
    one.sign_in(scene.a.api_key)
    one.goto("/dashboard/map?from=2000-01-01&to=2000-01-02")
    page = one.page
    widths = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], widths
    box = page.locator("svg.map").bounding_box()
    assert box is not None and box["width"] <= PHONE["width"] and box["height"] > 100
    assert _map_flows(page) == set()  # nothing was received in 2000
    assert "No payments yet." in page.locator("#map-corridors").inner_text()
    answer = one.goto("/dashboard/map?corridor=not-a-corridor")
    assert answer is not None and answer.status == 400
    assert all("400" in error for error in one.errors)
    one.errors.clear()


# -- liquidity savings -----------------------------------------------------------------------


@pytest.mark.parametrize("role", ["operator", "a"])
def test_liquidity_savings_equal_the_count_over_the_apis_payments(watched, server, scene, role):  # noqa: F811
    key = getattr(scene, role)
    settled = api_payments(server, key, "settled") + api_payments(server, key, "returned")
    settled.sort(key=lambda item: item["settled_at"])

    def counted(bic: str, currency: str) -> bool:
        return role == "operator" or bic == A

    expected = liquidity_by_currency([_settled_flow(item) for item in settled], counted)
    cny = expected["CNY"]
    assert cny.saved_minor(Mode.RTGS) > 0  # the offsetting pair needed nothing but gross
    one = watched(DESKTOP)
    one.sign_in(key.api_key)
    one.goto("/dashboard/liquidity")
    rows = one.page.eval_on_selector_all(
        "#savings tbody tr",
        "rows => rows.map(r => Array.from(r.children).map(c => c.innerText.trim()))",
    )
    shown = {row[0]: row[1:] for row in rows}
    assert set(shown) == {code for code, use in expected.items() if use.gross_minor}
    gross, used, saved = (Decimal(text.split()[0].replace(",", "")) for text in shown["CNY"][:3])
    assert gross * 100 == cny.gross_minor and used * 100 == cny.used_minor(Mode.RTGS)
    assert saved * 100 == cny.saved_minor(Mode.RTGS)
    one.page.wait_for_selector("#live [data-chart] .main-svg")


# -- a payment's ISO 20022 messages ----------------------------------------------------------


def test_a_payments_iso_messages_are_shown_and_downloadable(watched, server, scene):  # noqa: F811
    one = watched(DESKTOP)
    one.sign_in(scene.a.api_key)  # A is the creditor agent of the example pacs.008
    one.goto("/dashboard/payments/" + ISO_PAYMENT.replace(":", "%3A"))
    page = one.page
    table = page.locator("#messages").inner_text()
    assert "pacs.008.001.08" in table and "pacs.002.001.10" in table and "ACSC" in table
    page.locator("details.xml summary").first.press("Enter")  # opens with the keyboard
    assert "<FIToFICstmrCdtTrf>" in page.locator("details.xml pre").first.inner_text()
    links = page.locator("#messages a[download]")
    assert links.count() == 2
    for index, expected in enumerate((CreditTransferMessage, StatusReport)):
        href = links.nth(index).get_attribute("href")
        answer = one.context.request.get(server.base_url + href)
        assert answer.status == 200 and answer.headers["content-type"] == "application/xml"
        assert "attachment" in answer.headers["content-disposition"]
        message = read_message(answer.body())  # XSD-valid
        assert isinstance(message, expected)
    shown = api_get(server, scene.a, f"/v1/payments/{ISO_PAYMENT}")
    first = links.nth(0).get_attribute("href")
    incoming = read_message(one.context.request.get(server.base_url + first).body())
    assert isinstance(incoming, CreditTransferMessage)
    item = incoming.transfers[0]
    assert item.uetr == shown["instruction"]["uetr"]
    assert item.settlement_amount_minor == shown["instruction"]["amount_minor"]
    # A JSON payment has no message, and says so.
    one.goto("/dashboard/payments/" + scene.payment_a.replace(":", "%3A"))
    assert "came as JSON" in page.locator("main").inner_text()


def test_another_participant_gets_no_message(watched, server, scene):  # noqa: F811
    one = watched(DESKTOP)
    one.sign_in(scene.b.api_key)  # B is neither agent of the example pacs.008
    url = f"{server.base_url}/dashboard/payments/{ISO_PAYMENT.replace(':', '%3A')}/messages"
    for name in ("in", "out", "other"):
        answer = one.context.request.get(f"{url}/{name}.xml")
        assert answer.status == 404 and b"FIToFICstmrCdtTrf" not in answer.body()
    anonymous = httpx.get(f"{url}/in.xml", follow_redirects=False, timeout=30)
    assert anonymous.status_code == 303 and anonymous.headers["location"].endswith("/sign-in")
