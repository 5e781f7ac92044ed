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

Status per transaction: settled -> ACSC, queued -> PDNG (reason AM04 or cycle), rejected -> RJCT
with the pipeline's reason. A message that cannot be read at all (unsafe, malformed, invalid
against its schema, unsupported) is answered by a group-level RJCT with reason FF01 and the
first error in ``AddtlInf``.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from lxml import etree

from sco_settle.domain.transfer import TransferFlags
from sco_settle.ledger import Ledger
from sco_settle.messaging.iso20022 import (
    Agent,
    CreditTransfer,
    CreditTransferMessage,
    Entry,
    MessageRejectedError,
    OriginalGroupStatus,
    PaymentReturn,
    PaymentReturnMessage,
    ReasonInfo,
    StatusReport,
    TransactionStatus,
    build_account_statement,
    read_message,
    write_cash_report,
    write_status_report,
)
from sco_settle.messaging.iso20022.replies import STATUS_REPORT_FOR, split_additional_info
from sco_settle.payments.engine import PaymentEngine
from sco_settle.payments.model import (
    Party,
    Payment,
    PaymentOutcome,
    PaymentStatus,
    Priority,
)

PACS_002_DEFAULT = "pacs.002.001.10"
_VOID = int(TransferFlags.VOID_PENDING)
_PENDING = int(TransferFlags.PENDING)


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
    amount, currency = item.settlement_amount_minor, item.settlement_currency
    if item.instructed_amount_minor is not None and item.instructed_currency:
        amount, currency = item.instructed_amount_minor, item.instructed_currency
    return Payment(
        payment_id=payment_id,
        debtor_agent=debtor_agent,
        creditor_agent=creditor_agent,
        amount_minor=amount,
        currency=currency,
        creditor_currency=item.settlement_currency,
        debtor=_party(item.debtor, item.debtor_account),
        creditor=_party(item.creditor, item.creditor_account),
        end_to_end_id=item.end_to_end_id,
        uetr=item.uetr or "",
        remittance_info=" ".join(item.remittance_lines)[:140],
        priority=Priority.NORMAL,
    )


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
    transactions = []
    for item in message.items:
        if isinstance(item, PaymentReturn):
            status, reasons = _return_one(item, engine, caller_bic)
            ids = (
                item.return_id,
                item.original_end_to_end_id,
                item.original_transaction_id,
                item.original_uetr,
            )
        else:
            status = "RJCT"
            reasons = (
                ReasonInfo(code=item.reason, additional_info=split_additional_info(item.text)),
            )
            ids = (item.instruction_id, item.end_to_end_id, item.transaction_id, item.uetr)
        transactions.append(_transaction_status(message, ids, status, reasons, sender_bic))
    return StatusReport(
        definition=STATUS_REPORT_FOR.get(message.definition, PACS_002_DEFAULT),
        message_id=message_id,
        created_at=now,
        transactions=tuple(transactions),
    )


def _return_one(
    item: PaymentReturn, engine: PaymentEngine, caller_bic: str | None
) -> tuple[str, tuple[ReasonInfo, ...]]:
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
        )
        if answer.accepted:
            return "ACSC", ()
        assert answer.reason is not None
        return "RJCT", (
            ReasonInfo(
                code=answer.reason.value, additional_info=split_additional_info(answer.reason_text)
            ),
        )
    return "RJCT", (ReasonInfo(code="NARR", additional_info=("original payment not found",)),)


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
    transactions = []
    for index, item in enumerate(message.items):
        ids = (item.instruction_id, item.end_to_end_id, item.transaction_id, item.uetr)
        if index in foreign:
            status, reasons = _forbidden(f"the debtor agent must be the sender {caller_bic}")
        elif isinstance(item, CreditTransfer) and index in outcomes:
            status, reasons = _status_of(outcomes[index])
        elif isinstance(item, CreditTransfer):
            status, reasons = "RJCT", (ReasonInfo(code=message.group_rejection.reason),)  # type: ignore[union-attr]
        else:
            status = "RJCT"
            reasons = (
                ReasonInfo(code=item.reason, additional_info=split_additional_info(item.text)),
            )
        transactions.append(_transaction_status(message, ids, status, reasons, sender_bic))
    groups: tuple[OriginalGroupStatus, ...] = ()
    if message.group_rejection is not None:
        groups = (
            OriginalGroupStatus(
                original_message_id=message.message_id,
                original_definition=message.definition,
                original_created_at=message.created_at,
                original_number_of_transactions=message.number_of_transactions,
                group_status="RJCT",
                reasons=(
                    ReasonInfo(
                        code=message.group_rejection.reason,
                        additional_info=split_additional_info(message.group_rejection.text),
                    ),
                ),
            ),
        )
    return StatusReport(
        definition=STATUS_REPORT_FOR.get(message.definition, PACS_002_DEFAULT),
        message_id=message_id,
        created_at=now,
        original_groups=groups,
        transactions=tuple(transactions),
    )


def _forbidden(text: str) -> tuple[str, tuple[ReasonInfo, ...]]:
    return "RJCT", (ReasonInfo(code="AG01", additional_info=split_additional_info(text)),)


def _transaction_status(
    message: CreditTransferMessage | PaymentReturnMessage,
    ids: tuple[str | None, str | None, str | None, str | None],
    status: str,
    reasons: tuple[ReasonInfo, ...],
    sender_bic: str,
) -> TransactionStatus:
    """``TxInfAndSts`` for one original transaction; ``ids`` = (instruction, end-to-end,
    transaction, UETR) of the original."""
    return TransactionStatus(
        status=status,
        reasons=reasons,
        original_message_id=message.message_id,
        original_definition=message.definition,
        original_instruction_id=ids[0],
        original_end_to_end_id=ids[1],
        original_transaction_id=ids[2],
        original_uetr=ids[3],
        instructing_agent=Agent(bicfi=sender_bic),
    )


def _status_of(outcome: PaymentOutcome) -> tuple[str, tuple[ReasonInfo, ...]]:
    if outcome.status is PaymentStatus.SETTLED:
        return "ACSC", ()
    info = split_additional_info(outcome.reason_text) if outcome.reason_text else ()
    if outcome.status is PaymentStatus.QUEUED:
        code = outcome.reason.value if outcome.reason else "NARR"
        return "PDNG", (ReasonInfo(code=code, additional_info=info),)
    code = outcome.reason.value if outcome.reason else "NARR"
    return "RJCT", (ReasonInfo(code=code, additional_info=info),)


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


def statement(
    ledger: Ledger,
    account_id: int,
    day: dt.date,
    *,
    now: dt.datetime,
    servicer_bic: str | None = None,
) -> bytes:
    """A camt.053 for one account and one UTC day: booked (posted) entries only; opening and
    closing balances (credits minus debits, posted) agree with the ledger at those instants."""
    state = ledger.lookup_account(account_id)
    if state is None:
        raise KeyError(f"no account {account_id}")
    start = int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp()) * 10**9
    end = start + 86_400 * 10**9 - 1
    opening = 0
    entries: list[Entry] = []
    cursor = 0
    while True:
        page = ledger.get_account_transfers(
            account_id, timestamp_min=cursor, timestamp_max=end, limit=10_000
        )
        for transfer in page:
            if transfer.flags & (_PENDING | _VOID):
                continue  # Reservations and their release are not bookings.
            signed = transfer.amount if transfer.credit_account == account_id else -transfer.amount
            if transfer.timestamp < start:
                opening += signed
                continue
            entries.append(
                Entry(
                    amount_minor=transfer.amount,
                    currency=transfer.currency,
                    credit_debit="CRDT" if signed > 0 else "DBIT",
                    booked_at=dt.datetime.fromtimestamp(transfer.timestamp // 10**9, dt.UTC),
                    value_at=day,
                    entry_reference=str(transfer.id)[-35:],
                    account_servicer_reference=(transfer.ref or str(transfer.id))[:35],
                )
            )
        if len(page) < 10_000:
            break
        cursor = page[-1].timestamp + 1
    closing = opening + sum(
        e.amount_minor if e.credit_debit == "CRDT" else -e.amount_minor for e in entries
    )
    message = build_account_statement(
        message_id=f"SCOSSTMT{day:%Y%m%d}{account_id % 10**12:012d}"[:35],
        created_at=now,
        statement_id=f"{account_id}-{day:%Y%m%d}"[-35:],
        account_id=state.account.ref.replace(":", "-")[:34] or str(account_id)[:34],
        currency=state.currency,
        statement_date=day,
        opening_balance_minor=opening,
        closing_balance_minor=closing,
        entries=entries,
        owner_bic=state.account.participant,
        servicer_bic=servicer_bic,
    )
    return write_cash_report(message)
