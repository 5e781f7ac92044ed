"""Building the messages SCO Settle sends: status reports, returns, statements, notifications.

Invariants:
- A reply uses the version family of what it answers: pacs.008.001.08 / pacs.009.001.08 /
  pacs.004.001.09 are answered with pacs.002.001.10 and returned with pacs.004.001.09; the 2023
  versions (pacs.008.001.12, pacs.009.001.11, pacs.004.001.13) with pacs.002.001.14 and
  pacs.004.001.13.
- A reply carries an application header in the version the sender used (head.001.001.02 or .04)
  when, and only when, the original had one; From and To are swapped.
- A statement's closing booked balance equals its opening balance plus booked credits minus booked
  debits; ``build_account_statement`` refuses input that breaks this.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sco_settle.messaging.iso20022.errors import MessageBuildError
from sco_settle.messaging.iso20022.model import (
    CAMT_053_08,
    CAMT_054_08,
    CASH_REPORT_DEFINITIONS,
    HEAD_001_02,
    PACS_002_10,
    PACS_002_14,
    PACS_004_09,
    PACS_004_13,
    PACS_008_08,
    PACS_008_12,
    PACS_009_08,
    PACS_009_11,
    Account,
    AccountReport,
    Agent,
    AppHeader,
    Balance,
    CashReportMessage,
    CreditTransfer,
    CreditTransferMessage,
    Entry,
    OriginalGroupStatus,
    Party,
    PaymentReturn,
    PaymentReturnMessage,
    ReasonInfo,
    ReturnChain,
    StatusReport,
    TransactionRejection,
    TransactionStatus,
    family,
)
from sco_settle.messaging.iso20022.reasons import StatusCode

# ``AddtlInf`` is Max105Text in every pacs.002/pacs.004 version.
ADDITIONAL_INFO_CHARS_MAX = 105
ADDITIONAL_INFO_LINES_MAX = 4

STATUS_REPORT_FOR = {
    PACS_008_08: PACS_002_10,
    PACS_009_08: PACS_002_10,
    PACS_004_09: PACS_002_10,
    PACS_008_12: PACS_002_14,
    PACS_009_11: PACS_002_14,
    PACS_004_13: PACS_002_14,
}
RETURN_FOR = {
    PACS_008_08: PACS_004_09,
    PACS_009_08: PACS_004_09,
    PACS_008_12: PACS_004_13,
    PACS_009_11: PACS_004_13,
}


def split_additional_info(text: str) -> tuple[str, ...]:
    """Cut narrative into ``AddtlInf`` lines of at most 105 characters (at most 4 lines)."""
    size = ADDITIONAL_INFO_CHARS_MAX
    lines = [text[start : start + size] for start in range(0, len(text), size)]
    return tuple(lines[:ADDITIONAL_INFO_LINES_MAX])


def reply_header(
    original: AppHeader | None,
    *,
    definition: str,
    message_id: str,
    created_at: dt.datetime,
    from_bic: str | None = None,
) -> AppHeader | None:
    """The header of a reply: same header version, From/To swapped, or None if none came."""
    if original is None:
        return None
    return AppHeader(
        version=original.version,
        business_message_id=message_id,
        message_definition_id=definition,
        created_at=created_at,
        from_bic=from_bic if from_bic is not None else original.to_bic,
        to_bic=original.from_bic,
        business_service=original.business_service,
    )


OriginalIds = tuple[str | None, str | None, str | None, str | None]


def original_ids(item: CreditTransfer | PaymentReturn | TransactionRejection) -> OriginalIds:
    """(instruction, end-to-end, transaction, UETR) ids of an original transaction: a credit
    transfer's ``InstrId``/``EndToEndId``/``TxId``/``UETR``, a return's ``RtrId``/
    ``OrgnlEndToEndId``/``OrgnlTxId``/``OrgnlUETR``, a rejected item's as they were read."""
    if isinstance(item, PaymentReturn):
        return (
            item.return_id,
            item.original_end_to_end_id,
            item.original_transaction_id,
            item.original_uetr,
        )
    return (item.instruction_id, item.end_to_end_id, item.transaction_id, item.uetr)


def rejection_reasons(item: TransactionRejection) -> tuple[ReasonInfo, ...]:
    """Why an item was rejected on reading: its reason code and text."""
    return (ReasonInfo(code=item.reason, additional_info=split_additional_info(item.text)),)


def transaction_status(
    original: CreditTransferMessage | PaymentReturnMessage,
    item: CreditTransfer | PaymentReturn | TransactionRejection,
    status: str,
    reasons: tuple[ReasonInfo, ...] = (),
    *,
    sender: Agent | None,
    settled: tuple[int, str] | None = None,
    instructed: tuple[int, str] | None = None,
) -> TransactionStatus:
    """``TxInfAndSts``: the status of one transaction of ``original`` (the one builder of it).

    The reply's instructing agent is ``sender``; its instructed agent the item's instructing
    agent (who sent it), unknown for an item rejected on reading. ``settled`` / ``instructed``
    (minor units, currency): ``OrgnlTxRef/IntrBkSttlmAmt`` and ``OrgnlTxRef/Amt/InstdAmt``.
    """
    ids = original_ids(item)
    if isinstance(item, TransactionRejection):
        assert status == StatusCode.RJCT, (status, item)
    return TransactionStatus(
        status=status,
        reasons=reasons,
        original_message_id=original.message_id,
        original_definition=original.definition,
        original_instruction_id=ids[0],
        original_end_to_end_id=ids[1],
        original_transaction_id=ids[2],
        original_uetr=ids[3],
        instructing_agent=sender,
        instructed_agent=None if isinstance(item, TransactionRejection) else item.instructing_agent,
        original_settlement_amount_minor=settled[0] if settled is not None else None,
        original_settlement_currency=settled[1] if settled is not None else None,
        original_instructed_amount_minor=instructed[0] if instructed is not None else None,
        original_instructed_currency=instructed[1] if instructed is not None else None,
    )


def group_rejection_status(
    original: CreditTransferMessage | PaymentReturnMessage,
) -> OriginalGroupStatus | None:
    """``OrgnlGrpInfAndSts`` RJCT with the group's reason, or None if the group was accepted."""
    rejection = original.group_rejection
    if rejection is None:
        return None
    return OriginalGroupStatus(
        original_message_id=original.message_id,
        original_definition=original.definition,
        original_created_at=original.created_at,
        original_number_of_transactions=original.number_of_transactions,
        group_status=StatusCode.RJCT,
        reasons=(
            ReasonInfo(
                code=rejection.reason, additional_info=split_additional_info(rejection.text)
            ),
        ),
    )


def status_report_for(
    original: CreditTransferMessage | PaymentReturnMessage,
    *,
    message_id: str,
    created_at: dt.datetime,
    accepted_status: StatusCode = StatusCode.ACSP,
    sender_bic: str | None = None,
) -> StatusReport:
    """A pacs.002 answering every transaction of a read pacs.008/pacs.009/pacs.004.

    Accepted items get ``accepted_status`` (ACSP, ACSC or PDNG); rejected items RJCT with their
    reason code and text. A group rejection also sets the group status RJCT with its reason, and
    rejects every item (RJCT with the group's reason code).
    """
    definition = STATUS_REPORT_FOR.get(original.definition)
    if definition is None:
        raise MessageBuildError(f"no status report version answers {original.definition}")
    sender = Agent(bicfi=sender_bic) if sender_bic is not None else None
    group = group_rejection_status(original)
    transactions = []
    for item in original.items:
        if isinstance(item, TransactionRejection):
            status, reasons = StatusCode.RJCT, rejection_reasons(item)
        elif original.group_rejection is not None:
            status, reasons = StatusCode.RJCT, (ReasonInfo(code=original.group_rejection.reason),)
        else:
            status, reasons = accepted_status, ()
        transactions.append(transaction_status(original, item, status, reasons, sender=sender))
    return StatusReport(
        definition=definition,
        message_id=message_id,
        created_at=created_at,
        original_groups=(group,) if group is not None else (),
        transactions=tuple(transactions),
        app_header=reply_header(
            original.app_header,
            definition=definition,
            message_id=message_id,
            created_at=created_at,
            from_bic=sender_bic,
        ),
    )


def return_for(
    original: CreditTransferMessage,
    transfer: CreditTransfer,
    *,
    message_id: str,
    created_at: dt.datetime,
    reason_code: str,
    additional_info: str = "",
    return_id: str | None = None,
    returned_amount_minor: int | None = None,
    settlement_date: dt.date | None = None,
) -> PaymentReturnMessage:
    """A pacs.004 returning one accepted transfer of a pacs.008/pacs.009 to its instructing agent.

    ``reason_code`` is an ``ExternalReturnReason1Code`` (AC01, AC04, AM04, MS03...). The full
    settlement amount is returned unless ``returned_amount_minor`` says otherwise.
    """
    definition = RETURN_FOR.get(original.definition)
    if definition is None:
        raise MessageBuildError(f"no payment return version returns {original.definition}")
    amount = (
        transfer.settlement_amount_minor if returned_amount_minor is None else returned_amount_minor
    )
    if not 0 < amount <= transfer.settlement_amount_minor:
        raise MessageBuildError(f"returned amount {amount} is not within the original amount")
    with_accounts = definition == PACS_004_13
    chain = ReturnChain(
        debtor=transfer.debtor,
        debtor_account=transfer.debtor_account if with_accounts else None,
        debtor_agent=transfer.debtor_agent,
        creditor_agent=transfer.creditor_agent,
        creditor=transfer.creditor,
        creditor_account=transfer.creditor_account if with_accounts else None,
    )
    item = PaymentReturn(
        returned_amount_minor=amount,
        returned_currency=transfer.settlement_currency,
        return_id=return_id if return_id is not None else message_id,
        original_message_id=original.message_id,
        original_definition=original.definition,
        original_created_at=original.created_at,
        original_instruction_id=transfer.instruction_id,
        original_end_to_end_id=transfer.end_to_end_id,
        original_transaction_id=transfer.transaction_id,
        original_uetr=transfer.uetr,
        original_settlement_amount_minor=transfer.settlement_amount_minor,
        original_settlement_currency=transfer.settlement_currency,
        original_settlement_date=transfer.settlement_date,
        settlement_date=settlement_date,
        charge_bearer=(transfer.charge_bearer or "SHAR")
        if family(original.definition) == "pacs.008"
        else None,
        instructing_agent=transfer.instructed_agent,
        instructed_agent=transfer.instructing_agent,
        chain=chain,
        reasons=(
            ReasonInfo(code=reason_code, additional_info=split_additional_info(additional_info)),
        ),
    )
    return PaymentReturnMessage(
        definition=definition,
        message_id=message_id,
        created_at=created_at,
        number_of_transactions=1,
        settlement_method=original.settlement_method,
        items=(item,),
        app_header=reply_header(
            original.app_header,
            definition=definition,
            message_id=message_id,
            created_at=created_at,
        ),
        clearing_system=original.clearing_system,
    )


def _signed(entry: Entry) -> int:
    return entry.amount_minor if entry.credit_debit == "CRDT" else -entry.amount_minor


def _owner(owner_bic: str | None) -> Party | None:
    return Party(any_bic=owner_bic) if owner_bic is not None else None


def build_account_statement(
    *,
    message_id: str,
    created_at: dt.datetime,
    statement_id: str,
    account_id: str,
    currency: str,
    statement_date: dt.date,
    opening_balance_minor: int,
    closing_balance_minor: int,
    entries: Sequence[Entry],
    owner_bic: str | None = None,
    servicer_bic: str | None = None,
    definition: str = CAMT_053_08,
    app_header: AppHeader | None = None,
    page_number: int = 1,
    last_page: bool = True,
    opening_type: str = "OPBD",
    closing_type: str = "CLBD",
) -> CashReportMessage:
    """A camt.053 statement of one account and one day from ledger values (minor units).

    ``account_id`` is written as an IBAN when it looks like one, else as ``Othr/Id``.
    Balances are signed (credit positive); opening is OPBD and closing CLBD, both booked. A
    statement in pages numbers them (``page_number``, ``last_page``); a balance at a page break
    is an interim booked balance (``ITBD``).
    """
    if family(definition) != "camt.053" or definition not in CASH_REPORT_DEFINITIONS:
        raise MessageBuildError(f"{definition} is not a camt.053 version SCO Settle writes")
    if opening_type not in ("OPBD", "ITBD") or closing_type not in ("CLBD", "ITBD"):
        raise MessageBuildError(f"balances {opening_type}/{closing_type} are not booked ones")
    booked = sum(_signed(entry) for entry in entries if entry.status == "BOOK")
    if opening_balance_minor + booked != closing_balance_minor:
        raise MessageBuildError(
            f"opening {opening_balance_minor} + booked entries {booked} != closing "
            f"{closing_balance_minor}"
        )
    for entry in entries:
        if entry.currency != currency:
            raise MessageBuildError(f"entry in {entry.currency} on a {currency} statement")
    report = AccountReport(
        report_id=statement_id,
        account=_account(account_id),
        account_currency=currency,
        account_owner=_owner(owner_bic),
        account_servicer=Agent(bicfi=servicer_bic) if servicer_bic is not None else None,
        created_at=created_at,
        page_number=page_number,
        last_page=last_page,
        balances=(
            Balance(opening_type, opening_balance_minor, currency, statement_date),
            Balance(closing_type, closing_balance_minor, currency, statement_date),
        ),
        entries=tuple(entries),
    )
    return CashReportMessage(definition, message_id, created_at, (report,), app_header)


def _account(account_id: str) -> Account:
    # An IBAN is 15-34 characters: two letters, two check digits, then letters or digits.
    looks_like_iban = (
        15 <= len(account_id) <= 34
        and account_id[:2].isalpha()
        and account_id[:2].isupper()
        and account_id[2:4].isdigit()
        and account_id.isalnum()
    )
    return Account(iban=account_id) if looks_like_iban else Account(other_id=account_id)


def build_debit_credit_notification(
    *,
    message_id: str,
    created_at: dt.datetime,
    notification_id: str,
    account_id: str,
    entry: Entry,
    owner_bic: str | None = None,
    servicer_bic: str | None = None,
    definition: str = CAMT_054_08,
    app_header: AppHeader | None = None,
) -> CashReportMessage:
    """A camt.054 notifying one booked debit or credit entry on one account."""
    if family(definition) != "camt.054" or definition not in CASH_REPORT_DEFINITIONS:
        raise MessageBuildError(f"{definition} is not a camt.054 version SCO Settle writes")
    report = AccountReport(
        report_id=notification_id,
        account=_account(account_id),
        account_currency=entry.currency,
        account_owner=_owner(owner_bic),
        account_servicer=Agent(bicfi=servicer_bic) if servicer_bic is not None else None,
        created_at=created_at,
        entries=(entry,),
    )
    return CashReportMessage(definition, message_id, created_at, (report,), app_header)


def app_header_for(
    *,
    definition: str,
    message_id: str,
    created_at: dt.datetime,
    from_bic: str,
    to_bic: str,
    version: str = HEAD_001_02,
    business_service: str | None = None,
) -> AppHeader:
    """A new application header (head.001.001.02 unless asked otherwise)."""
    return AppHeader(
        version=version,
        business_message_id=message_id,
        message_definition_id=definition,
        created_at=created_at,
        from_bic=from_bic,
        to_bic=to_bic,
        business_service=business_service,
    )
