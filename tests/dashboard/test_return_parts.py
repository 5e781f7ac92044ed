"""The pure parts of a return's messages: its terms read back from its record, a camt.054 that
states the same entry as the camt.053, and a pacs.004 not written when the record lacks what it
needs."""

from __future__ import annotations

import datetime as dt

from sco_settle.domain.account import Account
from sco_settle.domain.transfer import Transfer
from sco_settle.gateway.statements import (
    build_statement,
    notification_camt_054,
    statement_camt_053,
)
from sco_settle.messaging.iso20022 import CashReportMessage, read_message
from sco_settle.payments.model import Payment
from sco_settle.payments.records import payment_fields
from sco_settle.server.dashboard.messages import ReturnTerms, return_message

ORIGINAL = "HSBKKZKX:5c0e4b1f-3d2a-4e8b-9f61-2a7d9c4e8101"
DAY_NS = 86_400 * 10**9


def _return(payment_id: str, remittance: str) -> Payment:
    return Payment(
        payment_id=payment_id,
        debtor_agent="BKCHCNBJ",
        creditor_agent="HSBKKZKX",
        amount_minor=100,
        currency="CNY",
        creditor_currency="KZT",
        remittance_info=remittance,
        returns=ORIGINAL,
    )


def test_a_returns_terms_come_from_its_id_and_remittance():
    given = _return(f"BKCHCNBJ:RTN-1:{ORIGINAL}", f"return of {ORIGINAL}: AC04")
    assert ReturnTerms.of(given) == ReturnTerms("RTN-1", "AC04")
    none_given = _return(f"BKCHCNBJ:return:{ORIGINAL}", f"return of {ORIGINAL}: NARR")
    assert ReturnTerms.of(none_given) == ReturnTerms("", "NARR")


def test_a_record_without_the_terms_says_so():
    cut = _return(f"BKCHCNBJ:RTN-1:{ORIGINAL}", f"return of {ORIGINAL}: AC0")
    assert "cut short" in str(ReturnTerms.of(cut))
    foreign = _return(f"ICBKCNBJ:RTN-1:{ORIGINAL}", f"return of {ORIGINAL}: AC04")
    assert "does not name its return id" in str(ReturnTerms.of(foreign))


def _shown(payment: Payment) -> dict[str, object]:
    """The payment as the API shows it (the fields ``return_message`` reads)."""
    fields = payment_fields(payment)
    return {"payment_id": fields.pop("payment_id"), "received_at": DAY_NS, "instruction": fields}


def test_no_pacs004_for_a_return_of_a_json_payment():
    original = Payment("BKCHCNBJ:x", "BKCHCNBJ", "SABRRUMM", 100, "CNY", "RUB")
    back = Payment(
        "SABRRUMM:R1:BKCHCNBJ:x", "SABRRUMM", "BKCHCNBJ", 100, "RUB", "CNY",
        remittance_info="return of BKCHCNBJ:x: AM09", returns="BKCHCNBJ:x",
    )  # fmt: skip
    answer = return_message(_shown(back), _shown(original), "PBOCCNBJ")
    assert isinstance(answer, str) and "came as JSON" in answer
    assert "not found" in str(return_message(_shown(back), None, "PBOCCNBJ"))


def test_a_notification_states_the_entry_the_statement_states():
    account = Account(7, "BKCHCNBJ", "CNY", "settlement", ref="settlement:BKCHCNBJ:CNY")
    booked = 20_000 * DAY_NS + 3_600 * 10**9
    transfers = [
        Transfer(2**127 + 1, 9, 7, 500_00, code=14, ref="return AC04", timestamp=booked),
        Transfer(2**127 + 2, 7, 9, 120_00, code=14, ref="return AC04", timestamp=booked + 1),
    ]
    day = dt.date(1970, 1, 1) + dt.timedelta(days=20_000)
    now = dt.datetime(2024, 10, 4, tzinfo=dt.UTC)
    statement = read_message(statement_camt_053(build_statement(account, day, transfers), now=now))
    assert isinstance(statement, CashReportMessage)
    for transfer, stated in zip(transfers, statement.reports[0].entries, strict=True):
        notified = read_message(notification_camt_054(account, transfer, now=now))
        assert isinstance(notified, CashReportMessage) and notified.definition.startswith(
            "camt.054"
        )
        assert notified.reports[0].entries == (stated,)
        assert notified.reports[0].account_owner is not None
        assert notified.reports[0].account_owner.any_bic == "BKCHCNBJ"
