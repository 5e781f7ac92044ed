"""``GET /v1/accounts/{id}/statement``: JSON and camt.053 are two renderings of one statement
(``gateway.statements``): the same entries, balances and pages of at most
``statement_entries_max`` entries."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal

import httpx

from sco_settle.messaging.iso20022 import CashReportMessage, open_message, read_message
from sco_settle.server import ServerConfig, parse_database_url
from sco_settle.server.app import build_app, close_context, open_context
from sco_settle.server.keys import Role

DEBTOR, CREDITOR = "BKCHCNBJ", "ICBKCNBJ"
ACCOUNT = f"settlement:{DEBTOR}:CNY"


def test_json_and_camt_053_list_the_same_entries_in_the_same_pages(tmp_path):
    config = ServerConfig(
        parse_database_url(f"sqlite:///{tmp_path / 'statements.db'}"), statement_entries_max=2
    )
    asyncio.run(statements(config))


async def statements(config: ServerConfig) -> None:
    context = open_context(config)
    debtor = context.keys.create(DEBTOR, Role.PARTICIPANT)
    auth = {"Authorization": f"Bearer {debtor.api_key}"}
    transport = httpx.ASGITransport(app=build_app(context), raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://sco") as http:
            for n in range(3):
                paid = await http.post(
                    "/v1/payments",
                    json={
                        "instruction_id": f"stmt-{n}",
                        "end_to_end_id": f"E2E-STMT-{n}",
                        "creditor_agent": CREDITOR,
                        "amount_minor": 100 + n,
                        "currency": "CNY",
                    },
                    headers={**auth, "Idempotency-Key": f"stmt-{n}"},
                )
                assert paid.status_code == 201 and paid.json()["status"] == "settled", paid.text
            day = dt.datetime.now(dt.UTC).date().isoformat()
            url = f"/v1/accounts/{ACCOUNT}/statement"
            pages: list[dict] = []
            while not pages or not pages[-1]["last_page"]:
                params = {"date": day, "page": str(len(pages) + 1)}
                shown = await http.get(url, params=params, headers=auth)
                assert shown.status_code == 200, shown.text
                xml = await http.get(url, params={**params, "format": "camt.053"}, headers=auth)
                assert xml.status_code == 200, xml.text
                assert_same(shown.json(), xml.content)
                pages.append(shown.json())
            entries = [e for p in pages for e in p["entries"]]
            assert len(pages) >= 2 and all(len(p["entries"]) <= 2 for p in pages)
            assert len(entries) == pages[0]["entries_count"]
            paid = [e for e in entries if e["kind"] == "payment"]
            assert [(e["amount_minor"], e["credit_debit"]) for e in paid] == [
                (100, "DBIT"),
                (101, "DBIT"),
                (102, "DBIT"),
            ]
            assert [e["payment_ref"] for e in paid] == ["E2E-STMT-0", "E2E-STMT-1", "E2E-STMT-2"]
            moved = sum(
                e["amount_minor"] * (1 if e["credit_debit"] == "CRDT" else -1) for e in entries
            )
            assert pages[-1]["closing_balance_minor"] == pages[0]["opening_balance_minor"] + moved
            for fmt in ("json", "camt.053"):
                beyond = await http.get(
                    url,
                    params={"date": day, "page": str(len(pages) + 1), "format": fmt},
                    headers=auth,
                )
                assert beyond.status_code == 404, beyond.text
    finally:
        close_context(context)


def assert_same(shown: dict, xml: bytes) -> None:
    assert open_message(xml).definition == "camt.053.001.08"  # Parsed and XSD-validated.
    message = read_message(xml)
    assert isinstance(message, CashReportMessage)
    (report,) = message.reports
    assert report.account_currency == shown["currency"] == "CNY"
    assert (report.page_number, report.last_page) == (shown["page"], shown["last_page"])
    opening, closing = report.balances
    assert opening.amount_minor == shown["page_opening_balance_minor"]
    assert closing.amount_minor == shown["page_closing_balance_minor"]
    assert [(e.entry_reference, e.amount_minor, e.credit_debit) for e in report.entries] == [
        (e["transfer_id"][-35:], e["amount_minor"], e["credit_debit"]) for e in shown["entries"]
    ]
    for entry, shown_entry in zip(report.entries, shown["entries"], strict=True):
        if shown_entry["payment_ref"] is not None:
            assert entry.additional_info == f"payment {shown_entry['payment_ref']}"


def test_a_cross_currency_payment_reads_back_with_its_applied_rate(tmp_path):
    """The JSON outcome states ``amount_sent_minor`` and the rate the amounts imply, the same
    rate as the pacs.002 (``gateway.iso.applied_rate_of``)."""
    config = ServerConfig(parse_database_url(f"sqlite:///{tmp_path / 'rate.db'}"))
    asyncio.run(cross_currency(config))


async def cross_currency(config: ServerConfig) -> None:
    from sco_settle.domain.money import applied_rate

    context = open_context(config)
    debtor = context.keys.create("HSBKKZKX", Role.PARTICIPANT)
    auth = {"Authorization": f"Bearer {debtor.api_key}"}
    transport = httpx.ASGITransport(app=build_app(context), raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://sco") as http:
            paid = await http.post(
                "/v1/payments",
                json={
                    "instruction_id": "fx-1",
                    "creditor_agent": DEBTOR,
                    "amount_minor": 1_000_000_00,
                    "currency": "KZT",
                    "creditor_currency": "CNY",
                },
                headers={**auth, "Idempotency-Key": "fx-1"},
            )
            assert paid.status_code == 201 and paid.json()["status"] == "settled", paid.text
            found = await http.get(f"/v1/payments/{paid.json()['payment_id']}", headers=auth)
            assert found.status_code == 200, found.text
            shown = found.json()
            assert shown["amount_sent_minor"] == 1_000_000_00
            rate = applied_rate(1_000_000_00, "KZT", shown["amount_delivered_minor"], "CNY")
            assert shown["applied_rate"] == format(rate, "f")
            assert Decimal(shown["applied_rate"]) > 0
    finally:
        close_context(context)
