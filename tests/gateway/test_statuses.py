"""pacs.002 transaction statuses from payment outcomes: one builder (``payment_status`` over
``replies.transaction_status``); a settled payment states the amounts that moved and the rate."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

import pytest
from lxml import etree

from sco_settle.gateway.iso import applied_rate_of, submit_message
from sco_settle.messaging.iso20022 import (
    Agent,
    CreditTransfer,
    open_message,
    read_message,
    write_credit_transfer,
)
from sco_settle.payments.model import Payment, PaymentOutcome, PaymentStatus, Reason
from sco_settle.server.payment_reads import outcome_fields
from tests.iso20022.builders import credit_message, transfer

NOW = dt.datetime(2026, 11, 25, 12, tzinfo=dt.UTC)
KZT_SENT = 1_000_000_00  # KZT 1,000,000.00
CNY_DELIVERED = 14_100_00  # CNY 14,100.00: 0.0141 CNY per KZT


class ScriptedEngine:
    """Answers ``submit_many`` with ``answer(payment)``: the status builder's input, no ledger."""

    def __init__(self, answer: Callable[[Payment], PaymentOutcome]) -> None:
        self.answer = answer
        self.payments: list[Payment] = []

    def submit_many(self, payments: list[Payment]) -> list[PaymentOutcome]:
        self.payments.extend(payments)
        return [self.answer(payment) for payment in payments]


def settled(sent: int = KZT_SENT, delivered: int = CNY_DELIVERED):
    def answer(payment: Payment) -> PaymentOutcome:
        return PaymentOutcome(
            payment.payment_id,
            PaymentStatus.SETTLED,
            amount_delivered_minor=delivered,
            amount_sent_minor=sent,
        )

    return answer


def kzt_to_cny(index: int = 1, **changes: object) -> CreditTransfer:
    """HSBKKZKX pays BKCHCNBJ CNY 14,100.00, instructed as KZT 1,000,000.00."""
    values: dict[str, object] = {
        "settlement_amount_minor": CNY_DELIVERED,
        "settlement_currency": "CNY",
        "instructed_amount_minor": KZT_SENT,
        "instructed_currency": "KZT",
        "instructed_agent": Agent(bicfi="BKCHCNBJ"),
        "creditor_agent": Agent(bicfi="BKCHCNBJ"),
    }
    values.update(changes)
    return transfer(index, **values)


def message_bytes(items: tuple[CreditTransfer, ...], definition: str = "pacs.008.001.08") -> bytes:
    return write_credit_transfer(credit_message(items, definition, header=False))


def submit(data: bytes, engine: ScriptedEngine) -> bytes:
    return submit_message(data, engine, now=NOW, sender_bic="PBOCCNBJ", caller_bic="HSBKKZKX")  # type: ignore[arg-type]


def transactions(reply: bytes) -> list[etree._Element]:
    root = etree.fromstring(reply)
    return root.findall(f".//{{{root.nsmap[None]}}}TxInfAndSts")


def find(element: etree._Element, path: str) -> etree._Element | None:
    namespace = etree.QName(element).namespace
    return element.find("/".join(f"{{{namespace}}}{step}" for step in path.split("/")))


@pytest.mark.parametrize(
    ("definition", "reply_version"),
    [("pacs.008.001.08", "pacs.002.001.10"), ("pacs.008.001.12", "pacs.002.001.14")],
)
def test_settled_cross_currency_payment_states_both_amounts_and_the_rate(
    definition: str, reply_version: str
) -> None:
    reply = submit(message_bytes((kzt_to_cny(),), definition), ScriptedEngine(settled()))
    assert open_message(reply).definition == reply_version  # Parsed and XSD-validated.
    (status,) = transactions(reply)
    assert find(status, "TxSts").text == "ACSC"
    delivered = find(status, "OrgnlTxRef/IntrBkSttlmAmt")
    assert (delivered.text, delivered.get("Ccy")) == ("14100.00", "CNY")
    sent = find(status, "OrgnlTxRef/Amt/InstdAmt")
    assert (sent.text, sent.get("Ccy")) == ("1000000.00", "KZT")
    assert find(status, "StsRsnInf/Rsn") is None  # Information, not a reason.
    assert find(status, "StsRsnInf/AddtlInf").text == "applied rate 0.0141 CNY per KZT"
    report = read_message(reply)
    assert report.transactions[0].reasons[0].additional_info == ("applied rate 0.0141 CNY per KZT",)


def test_unknown_sent_amount_is_left_out_with_the_rate() -> None:
    reply = submit(message_bytes((kzt_to_cny(),)), ScriptedEngine(settled(sent=0)))
    (status,) = transactions(reply)
    assert find(status, "TxSts").text == "ACSC"
    assert find(status, "OrgnlTxRef/IntrBkSttlmAmt").text == "14100.00"
    assert find(status, "OrgnlTxRef/Amt") is None
    assert find(status, "StsRsnInf") is None


def test_one_currency_payment_states_the_amounts_without_a_rate() -> None:
    domestic = transfer(
        2,
        settlement_currency="KZT",
        instructed_agent=Agent(bicfi="KCJBKZKX"),
        creditor_agent=Agent(bicfi="KCJBKZKX"),
    )
    amount = domestic.settlement_amount_minor
    reply = submit(message_bytes((domestic,)), ScriptedEngine(settled(amount, amount)))
    (status,) = transactions(reply)
    assert find(status, "OrgnlTxRef/IntrBkSttlmAmt").get("Ccy") == "KZT"
    assert find(status, "OrgnlTxRef/Amt/InstdAmt").get("Ccy") == "KZT"
    assert find(status, "StsRsnInf") is None


REJECTED = (
    "<TxInfAndSts><OrgnlGrpInf><OrgnlMsgId>MSG-1</OrgnlMsgId>"
    "<OrgnlMsgNmId>pacs.008.001.08</OrgnlMsgNmId></OrgnlGrpInf>"
    "<OrgnlInstrId>INSTR-1</OrgnlInstrId><OrgnlEndToEndId>E2E-1</OrgnlEndToEndId>"
    "<OrgnlTxId>TX-1</OrgnlTxId><OrgnlUETR>8a562c67-ca16-48ba-b074-65581be6f001</OrgnlUETR>"
    "<TxSts>{status}</TxSts><StsRsnInf><Rsn><Cd>{code}</Cd></Rsn>{info}</StsRsnInf>"
    "<InstgAgt><FinInstnId><BICFI>PBOCCNBJ</BICFI></FinInstnId></InstgAgt>"
    "<InstdAgt><FinInstnId><BICFI>HSBKKZKX</BICFI></FinInstnId></InstdAgt></TxInfAndSts>"
)


@pytest.mark.parametrize(
    ("outcome", "status", "code", "info"),
    [
        (PaymentStatus.REJECTED, "RJCT", "AM02", "not enough liquidity"),
        (PaymentStatus.REJECTED, "RJCT", None, ""),
        (PaymentStatus.QUEUED, "PDNG", "AM04", "waits for liquidity"),
    ],
)
def test_rejected_and_queued_payments_are_answered_as_before(outcome, status, code, info) -> None:
    """As before the builders were merged: status, reason code (NARR when none) and text, the
    network as instructing agent; no amounts, no rate (even with amounts in the outcome). The
    one addition is the instructed agent: the original's instructing agent."""

    def answer(payment: Payment) -> PaymentOutcome:
        reason = Reason(code) if code else None
        return PaymentOutcome(
            payment.payment_id, outcome, reason, info, amount_delivered_minor=5, amount_sent_minor=7
        )

    reply = submit(message_bytes((kzt_to_cny(),)), ScriptedEngine(answer))
    (element,) = transactions(reply)
    text = etree.tostring(element).decode().replace(f' xmlns="{element.nsmap[None]}"', "")
    expected = REJECTED.format(
        status=status, code=code or "NARR", info=f"<AddtlInf>{info}</AddtlInf>" if info else ""
    )
    assert text == expected


def test_items_rejected_on_reading_and_foreign_items_keep_their_reasons() -> None:
    good, foreign = kzt_to_cny(1), kzt_to_cny(2, debtor_agent=Agent(bicfi="KCJBKZKX"))
    # Three decimals in CNY (the first item only): rejected on reading.
    data = message_bytes((good, foreign)).replace(
        b'Ccy="CNY">14100.00<', b'Ccy="CNY">14100.001<', 1
    )
    engine = ScriptedEngine(settled())
    report = read_message(submit(data, engine))
    assert engine.payments == []  # Neither was carried out.
    assert [(s.status, s.reasons[0].code) for s in report.transactions] == [
        ("RJCT", "CH20"),  # Three decimals in CNY: rejected on reading.
        ("RJCT", "AG01"),  # Another agent's payment.
    ]
    assert report.transactions[0].instructed_agent is None  # Unknown for an unread item.
    assert all(s.original_settlement_amount_minor is None for s in report.transactions)


def test_the_json_outcome_states_the_same_rate() -> None:
    payment = Payment(
        "HSBKKZKX:X", "HSBKKZKX", "BKCHCNBJ", CNY_DELIVERED, "KZT", creditor_currency="CNY"
    )
    outcome = settled()(payment)
    fields = outcome_fields(outcome, payment)
    assert fields["amount_sent_minor"] == KZT_SENT
    assert fields["applied_rate"] == "0.0141" == format(applied_rate_of(payment, outcome), "f")
    returned = dataclasses.replace(outcome, status=PaymentStatus.RETURNED)
    assert outcome_fields(returned, payment)["applied_rate"] == "0.0141"
    for other in (
        dataclasses.replace(outcome, status=PaymentStatus.REJECTED),
        dataclasses.replace(outcome, status=PaymentStatus.QUEUED),
        dataclasses.replace(outcome, amount_sent_minor=0),
    ):
        assert "applied_rate" not in outcome_fields(other, payment)
    domestic = dataclasses.replace(payment, creditor_currency="KZT")
    assert "applied_rate" not in outcome_fields(outcome, domestic)
    assert "applied_rate" not in outcome_fields(outcome)  # The instruction is not at hand.
