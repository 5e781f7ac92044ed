"""The one statement builder and its two renderings: the same entries, balances and pages."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from sco_settle.domain.account import Account
from sco_settle.domain.ids import ENGINE_ID_MIN
from sco_settle.domain.transfer import Transfer, TransferFlags
from sco_settle.gateway.statements import (
    NS_PER_DAY,
    DayOutOfRange,
    EntryKind,
    PageOutOfRange,
    build_statement,
    day_bounds,
    statement_camt_053,
    statement_json,
)
from sco_settle.messaging.iso20022 import CashReportMessage, open_message, read_message
from sco_settle.payments.plan import CODE_LSM, CODE_NETTING, CODE_PAYMENT, CODE_RETURN

ME, OTHER = 7, 9
ACCOUNT = Account(ME, "HSBKKZKX", "KZT", "settlement", ref="settlement:HSBKKZKX:KZT")
DAY = dt.date(2026, 11, 25)
START = day_bounds(DAY)[0]
NOW = dt.datetime(2026, 11, 26, 8, tzinfo=dt.UTC)
PENDING, VOID, POST = (
    int(TransferFlags.PENDING),
    int(TransferFlags.VOID_PENDING),
    int(TransferFlags.POST_PENDING),
)


def credit(id_: int, amount: int, at: int, **fields: object) -> Transfer:
    return Transfer(id_, OTHER, ME, amount, timestamp=at, currency="KZT", **fields)  # type: ignore[arg-type]


def debit(id_: int, amount: int, at: int, **fields: object) -> Transfer:
    return Transfer(id_, ME, OTHER, amount, timestamp=at, currency="KZT", **fields)  # type: ignore[arg-type]


HISTORY = [
    credit(1, 100_00, START - 10),  # Yesterday: the opening balance.
    debit(2, 30_00, START - 5, flags=PENDING),  # A reservation: never a booking.
    debit(3, 30_00, START + 1, flags=POST, pending_id=2),  # Its posting, today: booked.
    credit(4, 50_00, START + 2, flags=PENDING),
    credit(5, 0, START + 3, flags=VOID, pending_id=4),  # Released: neither is booked.
    credit(6, 0, START + 4),  # Zero amount: still a credit.
    debit(ENGINE_ID_MIN + 1, 10_00, START + 5, code=CODE_PAYMENT, ref="E2E-SCO-1"),
    credit(ENGINE_ID_MIN + 2, 20_00, START + 6, code=CODE_LSM, ref="HSBKKZKX:UETR-2"),
    credit(ENGINE_ID_MIN + 3, 5_00, START + 7, code=CODE_NETTING),
    credit(ENGINE_ID_MIN + 4, 10_00, START + 8, code=CODE_RETURN, ref="return AC04"),
    credit(8, 1_00, START + 9, code=CODE_PAYMENT, ref="client's own"),  # Not the engine's.
]


def test_booked_movements_and_balances() -> None:
    statement = build_statement(ACCOUNT, DAY, HISTORY)
    assert statement.opening_balance_minor == 100_00
    assert [e.transfer_id for e in statement.entries] == [
        3,
        6,
        ENGINE_ID_MIN + 1,
        ENGINE_ID_MIN + 2,
        ENGINE_ID_MIN + 3,
        ENGINE_ID_MIN + 4,
        8,
    ]
    assert [e.credit_debit for e in statement.entries] == ["DBIT", "CRDT", "DBIT"] + ["CRDT"] * 4
    assert statement.closing_balance_minor == 100_00 - 30_00 - 10_00 + 20_00 + 5_00 + 10_00 + 1_00
    assert (statement.page, statement.pages, statement.entries_count) == (1, 1, 7)
    assert [(e.kind, e.payment_ref) for e in statement.entries[2:]] == [
        (EntryKind.PAYMENT, "E2E-SCO-1"),
        (EntryKind.LSM, "HSBKKZKX:UETR-2"),
        (EntryKind.NETTING, None),
        (EntryKind.RETURN, None),
        (EntryKind.TRANSFER, None),
    ]


def test_a_day_without_entries_has_one_empty_page() -> None:
    statement = build_statement(ACCOUNT, DAY + dt.timedelta(days=1), HISTORY)
    assert statement.entries == () and (statement.page, statement.pages) == (1, 1)
    closing = build_statement(ACCOUNT, DAY, HISTORY).closing_balance_minor
    assert statement.opening_balance_minor == statement.closing_balance_minor == closing
    with pytest.raises(PageOutOfRange):
        build_statement(ACCOUNT, DAY, HISTORY, page=2)


def test_pages_hold_at_most_entries_max_and_chain_their_balances() -> None:
    whole = build_statement(ACCOUNT, DAY, HISTORY)
    pages = [build_statement(ACCOUNT, DAY, HISTORY, page=n, entries_max=3) for n in (1, 2, 3)]
    assert [len(p.entries) for p in pages] == [3, 3, 1]
    assert [p.last_page for p in pages] == [False, False, True]
    assert tuple(e for p in pages for e in p.entries) == whole.entries
    assert pages[0].page_opening_balance_minor == whole.opening_balance_minor
    for before, after in itertools.pairwise(pages):
        assert before.page_closing_balance_minor == after.page_opening_balance_minor
    assert pages[-1].page_closing_balance_minor == whole.closing_balance_minor
    for page in pages:  # Every page states the day's balances too.
        assert (page.opening_balance_minor, page.closing_balance_minor) == (
            whole.opening_balance_minor,
            whole.closing_balance_minor,
        )
    with pytest.raises(PageOutOfRange):
        build_statement(ACCOUNT, DAY, HISTORY, page=4, entries_max=3)


def test_days_outside_the_ledger_timestamps_are_refused() -> None:
    with pytest.raises(DayOutOfRange):
        build_statement(ACCOUNT, dt.date(2262, 4, 11), [])
    assert day_bounds(dt.date(1970, 1, 2)) == (NS_PER_DAY, 2 * NS_PER_DAY - 1)


def camt(statement) -> CashReportMessage:  # type: ignore[no-untyped-def]
    data = statement_camt_053(statement, now=NOW, servicer_bic="NBRKKZKX")
    assert open_message(data).definition == "camt.053.001.08"  # Parsed and XSD-validated.
    message = read_message(data)
    assert isinstance(message, CashReportMessage)
    return message


@pytest.mark.parametrize("entries_max", [50_000, 3])
def test_json_and_camt_053_state_the_same_entries_and_balances(entries_max: int) -> None:
    for number in range(1, 4 if entries_max == 3 else 2):
        statement = build_statement(ACCOUNT, DAY, HISTORY, page=number, entries_max=entries_max)
        shown = statement_json(statement)
        (report,) = camt(statement).reports
        assert (report.page_number, report.last_page) == (shown["page"], shown["last_page"])
        opening, closing = report.balances
        assert opening.amount_minor == shown["page_opening_balance_minor"]
        assert closing.amount_minor == shown["page_closing_balance_minor"]
        assert opening.type_code == ("OPBD" if number == 1 else "ITBD")
        assert closing.type_code == ("CLBD" if shown["last_page"] else "ITBD")
        assert [
            (
                e.entry_reference,
                e.amount_minor,
                e.credit_debit,
                e.bank_transaction_code.proprietary_code,
            )
            for e in report.entries
        ] == [
            (e["transfer_id"][-35:], e["amount_minor"], e["credit_debit"], e["kind"].upper())
            for e in shown["entries"]
        ]
        described = [e.additional_info for e in report.entries]
        for entry, info in zip(shown["entries"], described, strict=True):
            if entry["payment_ref"] is not None:
                assert info == f"payment {entry['payment_ref']}"


def test_the_cli_renders_the_same_statement_as_json_and_camt_053(tmp_path) -> None:
    import json
    import subprocess
    import sys

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sco_settle", *args], capture_output=True, text=True, timeout=120
        )

    db = str(tmp_path / "sco.db")
    assert cli("init", "--db", db).returncode == 0
    today = dt.datetime.now(dt.UTC).date().isoformat()
    common = ("iso", "statement", "--db", db, "--account", "settlement:HSBKKZKX:KZT")
    shown = cli(*common, "--date", today, "--format", "json")
    assert shown.returncode == 0, shown.stderr
    xml = cli(*common, "--date", today, "--out", str(tmp_path / "camt.xml"))
    assert xml.returncode == 0, xml.stderr
    statement = json.loads(shown.stdout)
    (report,) = camt_of((tmp_path / "camt.xml").read_bytes()).reports
    assert report.account_servicer is not None and report.account_servicer.bicfi == "NBRKKZKX"
    assert [b.amount_minor for b in report.balances] == [
        statement["page_opening_balance_minor"],
        statement["page_closing_balance_minor"],
    ]
    assert [e.entry_reference for e in report.entries] == [
        e["transfer_id"][-35:] for e in statement["entries"]
    ]
    beyond = cli(*common, "--date", today, "--page", "2")
    assert beyond.returncode == 1 and "page" in beyond.stderr
    bad = cli(*common, "--date", today, "--format", "mt940")
    assert bad.returncode == 1 and "--format" in bad.stderr


def camt_of(data: bytes) -> CashReportMessage:
    assert open_message(data).definition == "camt.053.001.08"
    message = read_message(data)
    assert isinstance(message, CashReportMessage)
    return message
