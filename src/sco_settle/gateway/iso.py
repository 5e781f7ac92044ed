"""The ISO 20022 gateway: messages in, payments through the engine, status reports out.

Mapping of a credit transfer (pacs.008 / pacs.009) to a payment:
- payment id: ``<debtor agent>:<UETR>`` (CBPR+ makes the UETR mandatory), else
  ``<debtor agent>:<instruction id or transaction id or end-to-end id>``; resubmitting the same
  message returns the first outcome, and ids are never shared across sending agents.
- debtor agent / creditor agent: ``DbtrAgt``/``CdtrAgt`` BICFI (a pacs.009's debtor and creditor
  are themselves agents), falling back to the instructing / instructed agent.
- amounts: the debtor agent pays the instructed amount (``InstdAmt``) in its currency when given,
  else the interbank settlement amount; the creditor receives the settlement currency. SCO Settle
  converts itself (payment-versus-payment), so a sender's ``XchgRate`` is informational.

Status per transaction (``payment_status``, built by ``replies.transaction_status`` like every
other ``TxInfAndSts``): settled -> ACSC with the amounts that moved (``OrgnlTxRef``) and, across
currencies, the applied rate; queued -> PDNG (reason AM04 or cycle); rejected -> RJCT with the
pipeline's reason. A message that cannot be read at all (unsafe, malformed, invalid against its
schema, unsupported) is answered by a group-level RJCT with reason FF01 and the first error in
``AddtlInf``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal

from lxml import etree

from sco_settle.domain.money import applied_rate
from sco_settle.messaging.iso20022 import (
    Agent,
    CreditTransfer,
    CreditTransferMessage,
    MessageRejectedError,
    OriginalGroupStatus,
    PaymentReturn,
    PaymentReturnMessage,
    ReasonInfo,
    StatusCode,
    StatusReport,
    TransactionRejection,
    TransactionStatus,
    read_message,
    write_status_report,
)
from sco_settle.messaging.iso20022.replies import (
    STATUS_REPORT_FOR,
    group_rejection_status,
    rejection_reasons,
    split_additional_info,
    transaction_status,
)
from sco_settle.payments.engine import PaymentEngine
from sco_settle.payments.model import (
    AmountType,
    Party,
    Payment,
    PaymentOutcome,
    PaymentStatus,
    Priority,
)

PACS_002_DEFAULT = "pacs.002.001.10"


def agent_bic(agent: Agent | None) -> str | None:
    return agent.bicfi if agent is not None and agent.bicfi else None


def payment_from_credit_transfer(item: CreditTransfer) -> Payment:
    debtor_agent = agent_bic(item.debtor_agent) or agent_bic(item.instructing_agent) or ""
    creditor_agent = agent_bic(item.creditor_agent) or agent_bic(item.instructed_agent) or ""
    if isinstance(item.debtor, Agent):  # pacs.009: the financial institutions themselves.
        debtor_agent = item.debtor.bicfi or debtor_agent
    if isinstance(item.creditor, Agent):
        creditor_agent = item.creditor.bicfi or creditor_agent
    reference = item.uetr or item.instruction_id or item.transaction_id or item.end_to_end_id
    # Scoped by the sending agent: another bank reusing an id (even a UETR) must never be
    # answered with this bank's outcome.
    payment_id = f"{debtor_agent}:{reference}"
    # The creditor agent receives ``IntrBkSttlmAmt`` exactly; the debtor agent pays in the
    # currency of ``InstdAmt`` (when stated) what that costs, and ``InstdAmt`` / ``XchgRate``
    # are checked against it (AM09), never settled instead of it.
    currency = item.settlement_currency
    instructed = 0
    if item.instructed_amount_minor is not None and item.instructed_currency:
        currency, instructed = item.instructed_currency, item.instructed_amount_minor
    rate = item.exchange_rate
    settle_from, settle_till = value_day(item.settlement_date)
    return Payment(
        payment_id=payment_id,
        debtor_agent=debtor_agent,
        creditor_agent=creditor_agent,
        amount_minor=item.settlement_amount_minor,
        currency=currency,
        creditor_currency=item.settlement_currency,
        amount_type=AmountType.RECEIVE,
        instructed_minor=instructed,
        exchange_rate=str(rate) if rate is not None and rate.is_finite() and rate > 0 else "",
        debtor=_party(item.debtor, item.debtor_account),
        creditor=_party(item.creditor, item.creditor_account),
        end_to_end_id=item.end_to_end_id,
        uetr=item.uetr or "",
        remittance_info=" ".join(item.remittance_lines)[:140],
        priority=_URGENCY.get(item.settlement_priority or "", Priority.NORMAL),
        settle_from=settle_from,
        settle_till=settle_till,
    )


# ``SttlmPrty`` / ``InstrPrty`` to the queue's priority: urgent and high before normal.
_URGENCY = {"URGT": Priority.URGENT, "HIGH": Priority.URGENT, "NORM": Priority.NORMAL}
_NS_PER_DAY = 86_400 * 1_000_000_000


def value_day(date: dt.date | None) -> tuple[int, int]:
    """``IntrBkSttlmDt`` as the times a payment may settle (ledger ns, UTC days; (0, 0): no
    date): from that day's start until its end. A future date waits in the warehouse until
    its day; a past one is refused (DT01); one not settled by its day's end is rejected (TM01).
    The operating day is the UTC calendar day: an assumption until the network's calendars
    and cut-off times (per currency, in its central bank's time zone) are modelled."""
    if date is None:
        return 0, 0
    start = dt.datetime(date.year, date.month, date.day, tzinfo=dt.UTC)
    first = int(start.timestamp()) * 1_000_000_000
    return first, first + _NS_PER_DAY


def _party(party: object, account: object) -> Party:
    name = getattr(party, "name", None) or getattr(party, "bicfi", None) or ""
    account_id = ""
    if account is not None:
        account_id = getattr(account, "iban", None) or getattr(account, "other_id", None) or ""
    return Party(name, account_id)


class SenderNotPermitted(Exception):
    """The message acts for agents other than its authenticated sender (``agents``)."""

    def __init__(self, agents: list[str]) -> None:
        super().__init__(f"the message acts for {', '.join(agents)}")
        self.agents = agents


def acting_agent(item: object) -> str | None:
    """The agent whose authority a transaction uses: a credit transfer's debtor agent, a
    return's returning (instructing) agent; None for an item already rejected on reading."""
    if isinstance(item, CreditTransfer):
        return payment_from_credit_transfer(item).debtor_agent
    if isinstance(item, PaymentReturn):
        return agent_bic(item.instructing_agent) or ""
    return None


def submit_message(
    data: bytes,
    engine: PaymentEngine,
    *,
    now: dt.datetime,
    sender_bic: str,
    caller_bic: str | None,
    refuse_foreign: bool = False,
) -> bytes:
    """Run one message through the pipeline; return the pacs.002 that answers it.

    ``caller_bic`` is the *authenticated* participant the message comes from (an API key's, or
    the CLI's ``--as``): a credit transfer is processed only where it is the debtor agent, a
    return only where it is the original payment's creditor agent; every other transaction is
    answered RJCT AG01 and moves nothing. The message's own agent fields never grant authority.
    ``None`` trusts the message's agents (a test harness replaying third-party samples).
    ``refuse_foreign``: a message acting for anyone but the sender is refused whole, before
    anything is processed (``SenderNotPermitted``: the API answers 403) instead of per item.
    ``sender_bic`` is the network's BIC, the instructing agent of the pacs.002 reply."""
    message_id = _reply_id(data, now)
    try:
        message = read_message(data)
    except MessageRejectedError as error:
        return write_status_report(_group_rejection(data, error, message_id, now))
    if refuse_foreign and caller_bic is not None:
        agents = {acting_agent(item) for item in getattr(message, "items", ())}
        foreign = sorted(a for a in agents if a is not None and a != caller_bic)
        if foreign:
            raise SenderNotPermitted(foreign)
    if isinstance(message, PaymentReturnMessage):
        return write_status_report(
            _return_report(message, engine, message_id, now, sender_bic, caller_bic)
        )
    if not isinstance(message, CreditTransferMessage):
        rejection = MessageRejectedError(f"{message.definition} is not a payment instruction")
        return write_status_report(_group_rejection(data, rejection, message_id, now))
    report = _status_report(message, engine, message_id, now, sender_bic, caller_bic)
    return write_status_report(report)


def _return_report(
    message: PaymentReturnMessage,
    engine: PaymentEngine,
    message_id: str,
    now: dt.datetime,
    sender_bic: str,
    caller_bic: str | None,
) -> StatusReport:
    """Each pacs.004 transaction returns the original payment it names (found by the original
    debtor agent and UETR or instruction id), moving the money back: ACSC, or RJCT with why."""
    sender = Agent(bicfi=sender_bic)
    transactions = []
    for item in message.items:
        if isinstance(item, PaymentReturn):
            status, reasons = _return_one(item, engine, caller_bic)
        else:
            status, reasons = StatusCode.RJCT, rejection_reasons(item)
        transactions.append(transaction_status(message, item, status, reasons, sender=sender))
    return StatusReport(
        definition=STATUS_REPORT_FOR.get(message.definition, PACS_002_DEFAULT),
        message_id=message_id,
        created_at=now,
        transactions=tuple(transactions),
    )


def _return_one(
    item: PaymentReturn, engine: PaymentEngine, caller_bic: str | None
) -> tuple[StatusCode, tuple[ReasonInfo, ...]]:
    reference = (
        item.original_uetr
        or item.original_instruction_id
        or item.original_transaction_id
        or item.original_end_to_end_id
    )
    named = acting_agent(item) or ""
    if caller_bic is not None and named != caller_bic:
        return _forbidden(f"the returning agent must be the sender {caller_bic}")
    returned_by = caller_bic if caller_bic is not None else named
    candidates = [agent_bic(item.instructed_agent)]
    if item.chain is not None:
        candidates += [agent_bic(item.chain.debtor_agent), agent_bic(item.chain.creditor_agent)]
    reason = item.reasons[0].code if item.reasons and item.reasons[0].code else "NARR"
    for debtor_agent in dict.fromkeys(c for c in candidates if c):
        payment_id = f"{debtor_agent}:{reference}"
        if engine.outcome(payment_id) is None:
            continue
        answer = engine.return_payment(
            payment_id,
            returned_by=returned_by,
            reason=reason,
            amount=(item.returned_amount_minor, item.returned_currency),
            return_id=item.return_id or "",
        )
        if not answer.accepted:
            assert answer.reason is not None
            return _rejected(answer.reason.value, answer.reason_text)
        # The return is a payment back: settled (ACSC) or waiting for liquidity (PDNG).
        back = answer.payment
        if back is not None and back.status is PaymentStatus.QUEUED:
            code = back.reason.value if back.reason else "NARR"
            info = split_additional_info(back.reason_text) if back.reason_text else ()
            return StatusCode.PDNG, (ReasonInfo(code=code, additional_info=info),)
        return StatusCode.ACSC, ()
    return _rejected("NARR", "original payment not found")


def _status_report(
    message: CreditTransferMessage,
    engine: PaymentEngine,
    message_id: str,
    now: dt.datetime,
    sender_bic: str,
    caller_bic: str | None,
) -> StatusReport:
    payments = {
        index: payment_from_credit_transfer(item)
        for index, item in enumerate(message.items)
        if isinstance(item, CreditTransfer)
    }
    foreign = {
        index
        for index, payment in payments.items()
        if caller_bic is not None and acting_agent(message.items[index]) != caller_bic
    }
    accepted = [(index, payment) for index, payment in payments.items() if index not in foreign]
    outcomes: dict[int, PaymentOutcome] = {}
    if message.group_rejection is None and accepted:
        results = engine.submit_many([payment for _, payment in accepted])
        outcomes = {index: outcome for (index, _), outcome in zip(accepted, results, strict=True)}
    sender = Agent(bicfi=sender_bic)
    transactions = []
    for index, item in enumerate(message.items):
        if isinstance(item, TransactionRejection):
            status, reasons = StatusCode.RJCT, rejection_reasons(item)
        elif index in foreign:
            status, reasons = _forbidden(f"the debtor agent must be the sender {caller_bic}")
        elif index in outcomes:
            transactions.append(
                payment_status(message, item, payments[index], outcomes[index], sender=sender)
            )
            continue
        else:
            assert message.group_rejection is not None
            status, reasons = StatusCode.RJCT, (ReasonInfo(code=message.group_rejection.reason),)
        transactions.append(transaction_status(message, item, status, reasons, sender=sender))
    group = group_rejection_status(message)
    return StatusReport(
        definition=STATUS_REPORT_FOR.get(message.definition, PACS_002_DEFAULT),
        message_id=message_id,
        created_at=now,
        original_groups=(group,) if group is not None else (),
        transactions=tuple(transactions),
    )


def _rejected(code: str, text: str = "") -> tuple[StatusCode, tuple[ReasonInfo, ...]]:
    return StatusCode.RJCT, (ReasonInfo(code=code, additional_info=split_additional_info(text)),)


def _forbidden(text: str) -> tuple[StatusCode, tuple[ReasonInfo, ...]]:
    return _rejected("AG01", text)


def payment_status(
    message: CreditTransferMessage,
    item: CreditTransfer,
    payment: Payment,
    outcome: PaymentOutcome,
    *,
    sender: Agent,
) -> TransactionStatus:
    """The ``TxInfAndSts`` of a credit transfer from its payment's outcome.

    Settled: ACSC, with the amounts that moved in ``OrgnlTxRef`` (``IntrBkSttlmAmt``: delivered
    to the creditor agent, in the creditor currency; ``Amt/InstdAmt``: debited from the debtor
    agent, in the payment's currency, when known) and, across currencies, the applied rate in
    ``StsRsnInf/AddtlInf`` ("applied rate 0.0141 CNY per KZT"). Queued: PDNG with the reason it
    waits. Anything else: RJCT with the pipeline's reason (NARR if none).
    """
    code = outcome.reason.value if outcome.reason else "NARR"
    info = split_additional_info(outcome.reason_text) if outcome.reason_text else ()
    if outcome.status is PaymentStatus.QUEUED:
        pending = (ReasonInfo(code=code, additional_info=info),)
        return transaction_status(message, item, StatusCode.PDNG, pending, sender=sender)
    if outcome.status is PaymentStatus.CANCELLED:
        cancelled = (ReasonInfo(additional_info=info),)
        return transaction_status(message, item, StatusCode.CANC, cancelled, sender=sender)
    if outcome.status is not PaymentStatus.SETTLED:
        rejected = (ReasonInfo(code=code, additional_info=info),)
        return transaction_status(message, item, StatusCode.RJCT, rejected, sender=sender)
    delivered, sent = outcome.amount_delivered_minor, outcome.amount_sent_minor
    rate = applied_rate_of(payment, outcome)
    reasons: tuple[ReasonInfo, ...] = ()
    if rate is not None:
        text = f"applied rate {rate:f} {payment.creditor_currency} per {payment.currency}"
        reasons = (ReasonInfo(additional_info=(text,)),)
    return transaction_status(
        message,
        item,
        StatusCode.ACSC,
        reasons,
        sender=sender,
        settled=(delivered, payment.creditor_currency) if delivered > 0 else None,
        instructed=(sent, payment.currency) if sent > 0 else None,
    )


def applied_rate_of(payment: Payment, outcome: PaymentOutcome) -> Decimal | None:
    """The rate a payment settled at (units of the creditor currency per unit of the payment's
    currency), for the pacs.002 and the API's JSON alike: None unless the payment settled (or
    was returned after settling) across two currencies with both amounts known."""
    if not outcome.settled_amounts or payment.currency == payment.creditor_currency:
        return None
    if outcome.amount_sent_minor <= 0 or outcome.amount_delivered_minor <= 0:
        return None
    return applied_rate(
        outcome.amount_sent_minor,
        payment.currency,
        outcome.amount_delivered_minor,
        payment.creditor_currency,
    )


def _group_rejection(
    data: bytes, error: MessageRejectedError, message_id: str, now: dt.datetime
) -> StatusReport:
    original_id, definition = _best_effort_ids(data)
    where = f"line {error.line}: " if error.line else ""
    return StatusReport(
        definition=STATUS_REPORT_FOR.get(definition, PACS_002_DEFAULT),
        message_id=message_id,
        created_at=now,
        original_groups=(
            OriginalGroupStatus(
                original_message_id=original_id,
                original_definition=definition,
                group_status="RJCT",
                reasons=(
                    ReasonInfo(
                        code="FF01",
                        additional_info=split_additional_info(
                            f"{error.reason}: {where}{error.text}"
                        ),
                    ),
                ),
            ),
        ),
    )


def _best_effort_ids(data: bytes) -> tuple[str, str]:
    """The original MsgId and message definition of a message we refused, if they can be read
    safely (no DTD, no entities, no network); placeholders otherwise."""
    definition, message_id = "pacs.008.001.08", "NOTPROVIDED"
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data or len(data) > 1_048_576:
        return message_id, definition
    try:
        parser = etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
        )
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        return message_id, definition
    for element in root.iter():
        tag = element.tag if isinstance(element.tag, str) else ""
        if tag.endswith("}Document") and "urn:iso:std:iso:20022:tech:xsd:" in tag:
            found = tag[1:].split("}")[0].rsplit(":", 1)[-1]
            if found in STATUS_REPORT_FOR:
                definition = found
        if tag.endswith("}GrpHdr"):
            for child in element:
                if isinstance(child.tag, str) and child.tag.endswith("}MsgId") and child.text:
                    message_id = child.text.strip()[:35]
            break
    return message_id, definition


def _reply_id(data: bytes, now: dt.datetime) -> str:
    digest = hashlib.blake2b(data, digest_size=8).hexdigest().upper()
    return f"SCOS{now:%Y%m%d}{digest}"[:35]
