"""The ISO 20022 messages of one payment, for its dashboard page: in and out, as XML.

The server keeps payments, not message bytes: the messages are written again from the payment's
record with the gateway's and the messaging package's own builders and writers (XSD-validated
on writing), so they say what the record says and nothing more. The page says so.

- In: a payment that came through the ISO 20022 door (``POST /v1/iso20022/messages``; its id is
  ``<debtor agent>:<UETR>``, as ``gateway.iso.payment_from_credit_transfer`` makes it) came as a
  credit transfer: a pacs.008 when it names a debtor or creditor customer, else a pacs.009 (the
  banks' own transfer). One made through the JSON API came as JSON: no message in.
- Out: the pacs.002 status report that answered it, built by ``gateway.iso.payment_status``
  (the one builder of a ``TxInfAndSts`` from an outcome) for its current status.

A message's time is the payment's: received (the credit transfer) and its last event (the
status report). Who may see a payment sees its messages (the page's own rule); nothing else is
read.

A return (a payment whose ``returns`` names the payment it returns, made by
``PaymentEngine.return_payment``) has other messages:

- In: the pacs.004 that returns the original, written by the messaging package's ``return_for``
  from the original's credit transfer (rebuilt as above) and the return's record: its return id
  (from the return's payment id, ``<returning agent>:<return id>:<original id>``), reason code
  (from its remittance text, ``return of <original id>: <reason>``), amount and time. The record
  does not keep whether the return came as a pacs.004 or as JSON (``POST
  /v1/payments/{id}/returns``), nor the message's own id (written from the return id), and the
  page says so. When the original came as JSON there is no credit transfer for a pacs.004 to
  name, and nothing is written: the page says why (``gaps``).
- Out: the camt.054 debit and credit notifications of the return's chain (the returning agent's
  account debited, the original debtor agent's credited), by the gateway's
  ``notification_camt_054`` from the ledger's transfers, each shown only to whoever may read that
  account.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, replace
from typing import Any

from sco_settle.domain.account import Account as LedgerAccount
from sco_settle.domain.money import format_minor_amount
from sco_settle.domain.transfer import Transfer
from sco_settle.gateway.iso import PACS_002_DEFAULT, payment_status, value_day
from sco_settle.gateway.statements import notification_camt_054
from sco_settle.messaging.iso20022 import (
    Account,
    Agent,
    CreditTransfer,
    CreditTransferMessage,
    MessageBuildError,
    Party,
    PaymentReturnMessage,
    StatusReport,
    return_for,
    write_credit_transfer,
    write_payment_return,
    write_status_report,
)
from sco_settle.messaging.iso20022.replies import STATUS_REPORT_FOR
from sco_settle.payments.model import AmountType, Payment, PaymentOutcome, PaymentStatus, Reason
from sco_settle.payments.records import payment_from_fields

PACS_008 = "pacs.008.001.08"
PACS_009 = "pacs.009.001.08"
CAMT_054 = "camt.054.001.08"
RETURN_REASON = re.compile(r"[A-Z0-9]{4}")  # ``ExternalReturnReason1Code``, as the API takes it
SETTLEMENT_METHOD = "CLRG"  # settled in SCO Settle itself, as the example pacs.008 states it
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class PaymentMessage:
    """One message of a payment, for the page and its download link."""

    name: str  # in the URL: "in", "out", or a return's "debit" and "credit" notifications
    direction: str  # "in" (to SCO Settle) or "out" (from it)
    definition: str  # "pacs.008.001.08"
    sender: str  # BIC
    receiver: str  # BIC
    summary: str  # one line for people
    xml: bytes


def payment_messages(shown: dict[str, Any], network_bic: str) -> list[PaymentMessage]:
    """The messages of a payment as the API shows it (``payment_json`` with its events);
    ``network_bic`` is SCO Settle's own (the pacs.002's sender)."""
    payment = payment_from_fields({"payment_id": shown["payment_id"], **shown["instruction"]})
    if not came_as_iso(payment):
        return []
    received = _moment(shown["received_at"])
    message = credit_transfer_message(payment, received)
    answered = _moment(max([shown["received_at"], *(e["at"] for e in shown["events"])]))
    report = status_report(message, payment, outcome_of(shown), answered, network_bic)
    item = message.transfers[0]
    return [
        PaymentMessage(
            "in",
            "in",
            message.definition,
            payment.debtor_agent,
            network_bic,
            f"credit transfer of {_amount(item.settlement_amount_minor, item.settlement_currency)}"
            f" to {payment.creditor_agent}",
            write_credit_transfer(message),
        ),
        PaymentMessage(
            "out",
            "out",
            report.definition,
            network_bic,
            payment.debtor_agent,
            f"status {report.transactions[0].status}"
            + "".join(f" {r.code}" for r in report.transactions[0].reasons if r.code),
            write_status_report(report),
        ),
    ]


def came_as_iso(payment: Payment) -> bool:
    """Whether the payment came as a credit transfer (the gateway's payment id and fixed
    received amount), not as JSON."""
    return (
        bool(payment.uetr)
        and payment.payment_id == f"{payment.debtor_agent}:{payment.uetr}"
        and payment.amount_type is AmountType.RECEIVE
        and not payment.returns
    )


def credit_transfer_message(payment: Payment, created_at: dt.datetime) -> CreditTransferMessage:
    """The pacs.008 (or pacs.009) the payment was read from, as far as its record keeps it."""
    customers = bool(payment.debtor.name or payment.creditor.name)
    debtor: Party | Agent = Agent(bicfi=payment.debtor_agent)
    creditor: Party | Agent = Agent(bicfi=payment.creditor_agent)
    if customers:
        debtor, creditor = Party(name=payment.debtor.name), Party(name=payment.creditor.name)
    instructed = payment.instructed_minor > 0 and payment.currency != payment.creditor_currency
    item = CreditTransfer(
        end_to_end_id=payment.end_to_end_id or "NOTPROVIDED",
        settlement_amount_minor=payment.amount_minor,
        settlement_currency=payment.creditor_currency,
        debtor=debtor,
        creditor=creditor,
        uetr=payment.uetr,
        settlement_date=settlement_date(payment),
        instructed_amount_minor=payment.instructed_minor if instructed else None,
        instructed_currency=payment.currency if instructed else None,
        charge_bearer="SHAR" if customers else None,
        instructing_agent=Agent(bicfi=payment.debtor_agent),
        debtor_account=_account(payment.debtor.account) if customers else None,
        debtor_agent=Agent(bicfi=payment.debtor_agent),
        creditor_agent=Agent(bicfi=payment.creditor_agent),
        creditor_account=_account(payment.creditor.account) if customers else None,
        remittance_lines=(payment.remittance_info,) if payment.remittance_info else (),
    )
    return CreditTransferMessage(
        definition=PACS_008 if customers else PACS_009,
        message_id=payment.uetr.replace("-", "")[:35],
        created_at=created_at,
        number_of_transactions=1,
        settlement_method=SETTLEMENT_METHOD,
        items=(item,),
    )


def settlement_date(payment: Payment) -> dt.date | None:
    """``IntrBkSttlmDt``: the day whose span (``gateway.iso.value_day``) the payment has."""
    if not payment.settle_from:
        return None
    day = _moment(payment.settle_from).date()
    return day if value_day(day) == (payment.settle_from, payment.settle_till) else None


def status_report(
    message: CreditTransferMessage,
    payment: Payment,
    outcome: PaymentOutcome,
    created_at: dt.datetime,
    network_bic: str,
) -> StatusReport:
    """The pacs.002 of the payment's outcome, by the gateway's own builder."""
    sender = Agent(bicfi=network_bic)
    status = payment_status(message, message.transfers[0], payment, outcome, sender=sender)
    return StatusReport(
        definition=STATUS_REPORT_FOR.get(message.definition, PACS_002_DEFAULT),
        message_id=f"R{message.message_id}"[:35],
        created_at=created_at,
        transactions=(status,),
    )


def outcome_of(shown: dict[str, Any]) -> PaymentOutcome:
    """The outcome fields of a payment as the API shows it, back as a ``PaymentOutcome``."""
    return PaymentOutcome(
        payment_id=shown["payment_id"],
        status=PaymentStatus(shown["status"]),
        reason=Reason(shown["reason"]) if shown["reason"] else None,
        reason_text=shown["reason_text"] or "",
        amount_delivered_minor=shown["amount_delivered_minor"],
        amount_sent_minor=shown["amount_sent_minor"],
        amount_returned_minor=shown["amount_returned_minor"],
        route=tuple(shown["route"]),
        transfer_ids=tuple(int(i) for i in shown["transfer_ids"]),
        settled_at=shown["settled_at"],
    )


def _account(identifier: str) -> Account | None:
    if not identifier:
        return None
    country, check, rest = identifier[:2], identifier[2:4], identifier[4:]
    if country.isalpha() and country.isupper() and check.isdigit() and rest.isalnum():
        return Account(iban=identifier)
    return Account(other_id=identifier)


def _amount(minor: int, currency: str) -> str:
    return f"{format_minor_amount(minor, currency)} {currency}"


def _moment(ns: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=ns // 1000)


# -- a return's messages -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReturnTerms:
    """What a return's record says of the pacs.004 that makes it (``return_payment``'s shape)."""

    return_id: str  # "" when none was given
    reason: str

    @classmethod
    def of(cls, payment: Payment) -> ReturnTerms | str:
        """The terms, or why the record does not give them."""
        head, tail = f"{payment.debtor_agent}:", f":{payment.returns}"
        if not (payment.payment_id.startswith(head) and payment.payment_id.endswith(tail)):
            return "its payment id does not name its return id"
        return_id = payment.payment_id[len(head) : -len(tail)]
        prefix = f"return of {payment.returns}: "
        reason = payment.remittance_info.removeprefix(prefix)
        if not payment.remittance_info.startswith(prefix) or not RETURN_REASON.fullmatch(reason):
            return "its record does not keep a return reason code (the text is cut short)"
        return cls("" if return_id == "return" else return_id, reason)


def return_message(
    shown: dict[str, Any], original: dict[str, Any] | None, network_bic: str
) -> PaymentMessage | str:
    """The pacs.004 of the return ``shown`` (the API's payment, with ``returns``), rebuilt from
    its record and its ``original``'s; or why it cannot be written without guessing."""
    payment = payment_from_fields({"payment_id": shown["payment_id"], **shown["instruction"]})
    if original is None:
        return "No pacs.004: the payment it returns is not found."
    returned = payment_from_fields(
        {"payment_id": original["payment_id"], **original["instruction"]}
    )
    if not came_as_iso(returned):
        return (
            "No pacs.004: the payment it returns came as JSON, so there is no credit transfer"
            " for a pacs.004 to name."
        )
    terms = ReturnTerms.of(payment)
    if isinstance(terms, str):
        return f"No pacs.004: {terms}."
    credit_transfer = credit_transfer_message(returned, _moment(original["received_at"]))
    message_id = (terms.return_id or f"RTR{payment.uetr.replace('-', '')}")[:35]
    try:
        message = return_for(
            credit_transfer,
            credit_transfer.transfers[0],
            message_id=message_id,
            created_at=_moment(shown["received_at"]),
            reason_code=terms.reason,
            return_id=terms.return_id or None,
            returned_amount_minor=payment.amount_minor,
        )
    except MessageBuildError as error:
        return f"No pacs.004: {error}."
    # The return's debtor agent is the agent that returned it (only the original's creditor
    # agent may): the pacs.004's instructing agent, which the rebuilt original does not name.
    returning = replace(message.returns[0], instructing_agent=Agent(bicfi=payment.debtor_agent))
    return _return_item(replace(message, items=(returning,)), payment, network_bic)


def _return_item(
    message: PaymentReturnMessage, payment: Payment, network_bic: str
) -> PaymentMessage:
    item = message.returns[0]
    return PaymentMessage(
        "in",
        "in",
        message.definition,
        payment.debtor_agent,
        network_bic,
        f"return of {_amount(item.returned_amount_minor, item.returned_currency)} to"
        f" {payment.creditor_agent}, reason {item.reasons[0].code}",
        write_payment_return(message),
    )


def notification(
    account: LedgerAccount, transfer: Transfer, servicer_bic: str | None
) -> PaymentMessage:
    """The camt.054 telling ``account``'s owner of its entry for ``transfer`` (a debit:
    ``debit``; a credit: ``credit``), dated when the transfer was booked."""
    credit = transfer.credit_account == account.id
    side = "credit" if credit else "debit"
    booked = _moment(transfer.timestamp)
    return PaymentMessage(
        side,
        "out",
        CAMT_054,
        servicer_bic or "",
        account.participant,
        f"{side} of {_amount(transfer.amount, account.currency)} on {account.ref}",
        notification_camt_054(account, transfer, now=booked, servicer_bic=servicer_bic),
    )
