"""FX providers' positions on the liquidity view, and a return's messages on its payment's page,
in a real browser (Debian's Chromium, every page watched as in ``test_browser.py``).

The numbers on the pages are checked against the API's: account balances (``GET /v1/accounts``),
a firm quote's holds (``POST /v1/fx-quotes``), and the return's record (``GET /v1/payments``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from sco_settle.messaging.iso20022 import (
    CashReportMessage,
    CreditTransferMessage,
    PaymentReturnMessage,
    read_message,
    return_for,
    write_payment_return,
)
from sco_settle.server.dashboard.views import money
from sco_settle.server.keys import Role
from tests.dashboard.conftest import A, Parties
from tests.dashboard.test_browser import DESKTOP, watched  # noqa: F401 - the fixture
from tests.dashboard.test_browser_views import api_get
from tests.server.conftest import LiveServer

ROOT = Path(__file__).resolve().parents[2]
HALYK = "HSBKKZKX"
ISO_PAYMENT = "HSBKKZKX:5c0e4b1f-3d2a-4e8b-9f61-2a7d9c4e8101"  # examples/pacs008_kz_to_cn.xml
RETURN_ID = "RTN-DASH-1"
RETURN_PAYMENT = f"{A}:{RETURN_ID}:{ISO_PAYMENT}"
POSITION_KINDS = {"settlement", "vostro"}


def _post(server: LiveServer, key: Any, path: str, idempotency: str, **kwargs: Any) -> Any:
    headers = {"Idempotency-Key": idempotency, **kwargs.pop("headers", {})}
    with server.client(key) as http:
        answer = http.post(path, headers=headers, **kwargs)
    assert answer.status_code < 300, answer.text
    return answer


def _post_xml(server: LiveServer, key: Any, message: bytes, idempotency: str) -> Any:
    headers = {"Content-Type": "application/xml"}
    return _post(
        server, key, "/v1/iso20022/messages", idempotency, content=message, headers=headers
    )


@pytest.fixture(scope="module")
def quote(server: LiveServer, parties: Parties) -> dict[str, Any]:
    """A firm quote of A's CNY into RUB (a conversion by an FX provider): its holds stay open
    for the module (600 s)."""
    body = {
        "creditor_agent": "SABRRUMM",
        "amount_minor": 250_00,
        "currency": "CNY",
        "creditor_currency": "RUB",
        "validity_seconds": 600,
    }
    found: dict[str, Any] = _post(server, parties.a, "/v1/fx-quotes", "q-1", json=body).json()
    assert found["holds"], found
    return found


@pytest.fixture(scope="module")
def returned(server: LiveServer, parties: Parties) -> PaymentReturnMessage:
    """Halyk's example pacs.008 to A, settled, then returned whole by A with a pacs.004 (AC04);
    and A's JSON payment to Sberbank returned by Sberbank as JSON."""
    original = (ROOT / "examples" / "pacs008_kz_to_cn.xml").read_bytes()
    _post_xml(server, server.key(HALYK), original, "iso-ret-1")
    message = read_message(original)
    assert isinstance(message, CreditTransferMessage)
    sent = return_for(
        message,
        message.transfers[0],
        message_id="RTNMSG-DASH-1",
        created_at=dt.datetime.now(dt.UTC),
        reason_code="AC04",
        return_id=RETURN_ID,
    )
    _post_xml(server, parties.a, write_payment_return(sent), "iso-ret-2")
    record = api_get(server, parties.operator, f"/v1/payments/{RETURN_PAYMENT}")
    assert record["status"] == "settled", record
    body = {"return_id": "RTN-JSON-1", "reason": "AM09"}
    sber = server.key("SABRRUMM")
    _post(server, sber, f"/v1/payments/{parties.payment_a}/returns", "ret-json", json=body)
    return sent


# -- FX providers' positions ----------------------------------------------------------------


def _position_rows(one: Any) -> dict[tuple[str, str], list[str]]:
    rows = one.page.eval_on_selector_all(
        "#fx-positions tbody tr[data-provider]",
        "rows => rows.map(r => [r.dataset.provider, r.dataset.currency,"
        " ...Array.from(r.children).map(c => c.innerText.trim())])",
    )
    return {(row[0], row[1]): row[5:] for row in rows}  # from the balance on


def _expected_position(server: LiveServer, key: Any, bic: str, code: str) -> dict[str, int]:
    items = api_get(server, key, "/v1/accounts", participant=bic, currency=code, limit=1000)
    dealing = [item for item in items["items"] if item["kind"] in POSITION_KINDS]
    income = [item for item in items["items"] if item["kind"] == "fx-income"]
    return {
        "balance": sum(item["balance_posted_minor"] for item in dealing),
        "available": sum(item["available_minor"] for item in dealing),
        "pending": sum(item["debits_pending"] for item in dealing),
        "income": sum(item["balance_posted_minor"] for item in income),
    }


def test_fx_positions_equal_the_apis_balances_and_the_quotes_holds(watched, server, quote):  # noqa: F811
    operator = server.key("PBOCCNBJ", Role.NETWORK_OPERATOR)
    one = watched(DESKTOP)
    one.sign_in(operator.api_key)
    one.goto("/dashboard/liquidity")
    shown = _position_rows(one)
    held: dict[tuple[str, str], int] = {}
    for hold in quote["holds"]:
        held[(hold["owner"], hold["currency"])] = held.get((hold["owner"], hold["currency"]), 0)
        held[(hold["owner"], hold["currency"])] += hold["amount_minor"]
    assert set(held) <= set(shown), (held, sorted(shown))
    assert len(shown) >= 14  # every declared provider has at least its settlement account
    for (bic, code), cells in shown.items():
        expected = _expected_position(server, operator, bic, code)
        # cells: balance, held, other pending, available, income, role and sources
        assert cells[0] == money(expected["balance"], code), (bic, code, cells)
        assert cells[1] == money(held.get((bic, code), 0), code), (bic, code, cells)
        other = expected["pending"] - held.get((bic, code), 0)
        assert cells[2] == money(other, code), (bic, code, cells)
        assert cells[3] == money(expected["available"], code), (bic, code, cells)
        assert cells[4] == money(expected["income"], code), (bic, code, cells)
    assert any(cells[1] != money(0, code) for (_, code), cells in shown.items())
    assert "assumption" in one.page.locator("#fx-positions").inner_text()  # HSBKKZKX's role


def test_fx_positions_are_role_scoped(watched, server, parties, quote):  # noqa: F811
    owner = quote["holds"][0]["owner"]
    provider = server.key(owner)
    one = watched(DESKTOP)
    one.sign_in(provider.api_key)
    one.goto("/dashboard/liquidity")
    assert {bic for bic, _ in _position_rows(one)} == {owner}
    for (bic, code), cells in _position_rows(one).items():
        assert cells[0] == money(_expected_position(server, provider, bic, code)["balance"], code)
    bank_of_russia = server.key("CBRFRUMM", Role.CURRENCY_OPERATOR)
    two = watched(DESKTOP)
    two.sign_in(bank_of_russia.api_key)
    two.goto("/dashboard/liquidity")
    rows = _position_rows(two)
    assert rows and {code for _, code in rows} == {"RUB"}
    three = watched(DESKTOP)
    three.sign_in(parties.a.api_key)  # Bank of China deals for nobody: no provider's position
    three.goto("/dashboard/liquidity")
    assert _position_rows(three) == {}
    assert "No FX provider's account visible." in three.page.locator("#fx-positions").inner_text()


# -- a return's messages ---------------------------------------------------------------------


def _messages(one: Any, server: LiveServer, payment_id: str) -> dict[str, Any]:
    one.goto("/dashboard/payments/" + payment_id.replace(":", "%3A"))
    links = one.page.locator("#messages a[download]")
    found = {}
    for index in range(links.count()):
        href = links.nth(index).get_attribute("href")
        answer = one.context.request.get(server.base_url + href)
        assert answer.status == 200 and answer.headers["content-type"] == "application/xml"
        found[href.rsplit("/", 1)[1]] = read_message(answer.body())  # XSD-valid
    return found


def test_a_returns_pacs004_and_camt054_read_back_to_the_apis_record(watched, server, returned):  # noqa: F811
    operator = server.key("PBOCCNBJ", Role.NETWORK_OPERATOR)
    one = watched(DESKTOP)
    one.sign_in(operator.api_key)
    found = _messages(one, server, RETURN_PAYMENT)
    assert set(found) == {"in.xml", "debit.xml", "credit.xml"}
    record = api_get(server, operator, f"/v1/payments/{RETURN_PAYMENT}")
    pacs_004 = found["in.xml"]
    assert isinstance(pacs_004, PaymentReturnMessage)
    rebuilt, sent = pacs_004.returns[0], returned.returns[0]
    for name in ("return_id", "original_uetr", "original_end_to_end_id", "returned_currency"):
        assert getattr(rebuilt, name) == getattr(sent, name), name
    assert rebuilt.returned_amount_minor == sent.returned_amount_minor
    assert rebuilt.returned_amount_minor == record["instruction"]["amount_minor"]
    assert rebuilt.reasons[0].code == "AC04" and rebuilt.instructing_agent.bicfi == A
    debit, credit = found["debit.xml"], found["credit.xml"]
    assert isinstance(debit, CashReportMessage) and isinstance(credit, CashReportMessage)
    debit_entry, credit_entry = debit.reports[0].entries[0], credit.reports[0].entries[0]
    assert (debit_entry.credit_debit, credit_entry.credit_debit) == ("DBIT", "CRDT")
    assert debit_entry.amount_minor == record["amount_sent_minor"]
    assert credit_entry.amount_minor == record["amount_delivered_minor"]
    assert debit.reports[0].account_owner.any_bic == A
    assert credit.reports[0].account_owner.any_bic == HALYK
    assert "does not keep whether this return came as a pacs.004" in one.page.content()
    # The returned payment links to its return.
    one.goto("/dashboard/payments/" + ISO_PAYMENT.replace(":", "%3A"))
    assert one.page.locator(f'a[href*="{RETURN_ID}"]').count() == 1


def test_a_return_shows_each_party_only_its_own_notification(watched, server, parties, returned):  # noqa: F811
    one = watched(DESKTOP)
    one.sign_in(server.key(HALYK).api_key)  # the return's creditor agent
    assert set(_messages(one, server, RETURN_PAYMENT)) == {"in.xml", "credit.xml"}
    two = watched(DESKTOP)
    two.sign_in(parties.b.api_key)  # neither agent: the return does not exist for B
    answer = two.goto("/dashboard/payments/" + RETURN_PAYMENT.replace(":", "%3A"))
    assert answer is not None and answer.status == 404
    for name in ("in", "debit", "credit"):
        url = f"{server.base_url}/dashboard/payments/{RETURN_PAYMENT}/messages/{name}.xml"
        refused = two.context.request.get(url)
        assert refused.status == 404 and b"PmtRtr" not in refused.body()
    assert all("404" in error for error in two.errors)
    two.errors.clear()


def test_a_return_of_a_json_payment_says_why_it_has_no_pacs004(watched, server, parties, returned):  # noqa: F811
    one = watched(DESKTOP)
    one.sign_in(parties.operator.api_key)
    found = _messages(one, server, f"SABRRUMM:RTN-JSON-1:{parties.payment_a}")
    assert set(found) == {"debit.xml", "credit.xml"}  # notifications, but no pacs.004
    assert "came as JSON, so there is no credit transfer" in one.page.locator("main").inner_text()
