"""Writing the models of ``model`` as ISO 20022 XML.

Invariants:
- Elements are written in the order of the official XSD, and every written Document and header is
  validated against that XSD before it is returned (``validate=False`` only for benchmarks that
  measure the two costs apart). Input that cannot make a valid message raises
  ``MessageBuildError``; the writer never emits a message its own reader would reject.
- Amounts are written from minor units with ``format_minor_amount`` (exactly the currency's
  decimals); signed balances become an absolute amount plus ``CdtDbtInd``.
- A message with an application header is wrapped as ``<Envelope><AppHdr/><Document/></Envelope>``
  (no namespace on ``Envelope``, as in CBPR+ sample files); without one, the bare ``Document``.
"""

from __future__ import annotations

import datetime as dt

from lxml import etree

from sco_settle.domain.money import format_minor_amount
from sco_settle.messaging.iso20022.errors import MessageBuildError, SchemaValidationError
from sco_settle.messaging.iso20022.model import (
    CASH_REPORT_DEFINITIONS,
    CREDIT_TRANSFER_DEFINITIONS,
    PAYMENT_RETURN_DEFINITIONS,
    STATUS_REPORT_DEFINITIONS,
    Account,
    AccountReport,
    Agent,
    AppHeader,
    Balance,
    CashReportMessage,
    CreditTransfer,
    CreditTransferMessage,
    Entry,
    EntryDetail,
    Party,
    PaymentReturn,
    PaymentReturnMessage,
    PostalAddress,
    ReasonInfo,
    ReturnChain,
    StatusReport,
    TransactionStatus,
    UnderlyingCustomerTransfer,
    family,
)
from sco_settle.messaging.iso20022.schemas import namespace_of, validate

ENVELOPE_ELEMENT = "Envelope"


class _Builder:
    """Appends namespace-qualified children in XSD order."""

    __slots__ = ("definition", "prefix")

    def __init__(self, definition: str):
        self.definition = definition
        self.prefix = "{" + namespace_of(definition) + "}"

    def root(self, name: str) -> etree._Element:
        return etree.Element(self.prefix + name, nsmap={None: namespace_of(self.definition)})

    def add(self, parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
        element = etree.SubElement(parent, self.prefix + name)
        if text is not None:
            element.text = text
        return element

    def opt(self, parent: etree._Element, name: str, text: str | None) -> None:
        if text is not None:
            self.add(parent, name, text)

    def amount(self, parent: etree._Element, name: str, minor: int, currency: str) -> None:
        if minor < 0:
            raise MessageBuildError(f"{name} must not be negative, got {minor}")
        self.add(parent, name, format_minor_amount(minor, currency)).set("Ccy", currency)

    def opt_amount(
        self, parent: etree._Element, name: str, minor: int | None, currency: str | None
    ) -> None:
        if minor is None and currency is None:
            return
        if minor is None or currency is None:
            raise MessageBuildError(f"{name} needs both an amount and a currency")
        self.amount(parent, name, minor, currency)


def format_datetime(value: dt.datetime) -> str:
    """xs:dateTime with the shortest exact fraction (none, milliseconds or microseconds)."""
    if value.microsecond == 0:
        return value.isoformat(timespec="seconds")
    if value.microsecond % 1000 == 0:
        return value.isoformat(timespec="milliseconds")
    return value.isoformat(timespec="microseconds")


def _opt_datetime(
    b: _Builder, parent: etree._Element, name: str, value: dt.datetime | None
) -> None:
    if value is not None:
        b.add(parent, name, format_datetime(value))


def _opt_date(b: _Builder, parent: etree._Element, name: str, value: dt.date | None) -> None:
    if value is not None:
        b.add(parent, name, value.isoformat())


def _date_choice(b: _Builder, parent: etree._Element, name: str, value: dt.date | None) -> None:
    """``DateAndDateTime2Choice``: ``Dt`` for a date, ``DtTm`` for a datetime."""
    if value is None:
        return
    choice = b.add(parent, name)
    if isinstance(value, dt.datetime):
        b.add(choice, "DtTm", format_datetime(value))
    else:
        b.add(choice, "Dt", value.isoformat())


# ---------------------------------------------------------------------------------------------
# Parties, agents, accounts.


def _address(b: _Builder, parent: etree._Element, address: PostalAddress | None) -> None:
    if address is None:
        return
    element = b.add(parent, "PstlAdr")
    b.opt(element, "StrtNm", address.street_name)
    b.opt(element, "BldgNb", address.building_number)
    b.opt(element, "BldgNm", address.building_name)
    b.opt(element, "PstCd", address.post_code)
    b.opt(element, "TwnNm", address.town_name)
    b.opt(element, "CtrySubDvsn", address.country_subdivision)
    b.opt(element, "Ctry", address.country)
    for line in address.address_lines:
        b.add(element, "AdrLine", line)


def _agent_body(b: _Builder, element: etree._Element, agent: Agent) -> None:
    institution = b.add(element, "FinInstnId")
    b.opt(institution, "BICFI", agent.bicfi)
    if agent.clearing_system_member_id is not None:
        b.add(b.add(institution, "ClrSysMmbId"), "MmbId", agent.clearing_system_member_id)
    b.opt(institution, "LEI", agent.lei)
    b.opt(institution, "Nm", agent.name)
    _address(b, institution, agent.postal_address)


def _agent(b: _Builder, parent: etree._Element, name: str, agent: Agent | None) -> None:
    if agent is not None:
        _agent_body(b, b.add(parent, name), agent)


def _party_body(b: _Builder, element: etree._Element, party: Party) -> None:
    b.opt(element, "Nm", party.name)
    _address(b, element, party.postal_address)
    if party.any_bic is not None or party.lei is not None:
        organisation = b.add(b.add(element, "Id"), "OrgId")
        b.opt(organisation, "AnyBIC", party.any_bic)
        b.opt(organisation, "LEI", party.lei)


def _party(b: _Builder, parent: etree._Element, name: str, party: Party | None) -> None:
    if party is not None:
        _party_body(b, b.add(parent, name), party)


def _party_or_agent(b: _Builder, parent: etree._Element, name: str, who: Party | Agent) -> None:
    """A debtor/creditor: a ``Party`` or (pacs.009) an ``Agent``, written as the schema expects."""
    if isinstance(who, Agent):
        _agent_body(b, b.add(parent, name), who)
    else:
        _party_body(b, b.add(parent, name), who)


def _choice_party(
    b: _Builder, parent: etree._Element, name: str, who: Party | Agent | None
) -> None:
    """``Party40Choice``/``Party50Choice`` (pacs.004 return chain): ``Pty`` or ``Agt``."""
    if who is None:
        return
    element = b.add(parent, name)
    if isinstance(who, Agent):
        _agent_body(b, b.add(element, "Agt"), who)
    else:
        _party_body(b, b.add(element, "Pty"), who)


def _account(b: _Builder, parent: etree._Element, name: str, account: Account | None) -> None:
    if account is None or account.identifier is None:
        return
    identifier = b.add(b.add(parent, name), "Id")
    if account.iban is not None:
        b.add(identifier, "IBAN", account.iban)
    else:
        b.add(b.add(identifier, "Othr"), "Id", account.other_id)


def _intermediaries(b: _Builder, parent: etree._Element, agents: tuple[Agent, ...]) -> None:
    if len(agents) > 3:
        raise MessageBuildError(f"at most 3 intermediary agents, got {len(agents)}")
    for number, agent in enumerate(agents, start=1):
        _agent(b, parent, f"IntrmyAgt{number}", agent)


def _reason(b: _Builder, parent: etree._Element, name: str, reason: ReasonInfo) -> None:
    element = b.add(parent, name)
    if reason.code is not None or reason.proprietary is not None:
        choice = b.add(element, "Rsn")
        if reason.code is not None:
            b.add(choice, "Cd", reason.code)
        else:
            b.add(choice, "Prtry", reason.proprietary)
    for line in reason.additional_info:
        b.add(element, "AddtlInf", line)


def _clearing_system(b: _Builder, parent: etree._Element, code: str | None) -> None:
    if code is None:
        return
    # ExternalCashClearingSystem1Code is 1-3 letters; anything longer is proprietary.
    b.add(b.add(parent, "ClrSys"), "Cd" if len(code) <= 3 else "Prtry", code)


# ---------------------------------------------------------------------------------------------
# Header, envelope, validation.


def _app_header(header: AppHeader) -> etree._Element:
    b = _Builder(header.version)
    root = b.root("AppHdr")
    for name, bic in (("Fr", header.from_bic), ("To", header.to_bic)):
        institution = b.add(b.add(b.add(root, name), "FIId"), "FinInstnId")
        b.opt(institution, "BICFI", bic)
    b.add(root, "BizMsgIdr", header.business_message_id)
    b.add(root, "MsgDefIdr", header.message_definition_id)
    b.opt(root, "BizSvc", header.business_service)
    b.add(root, "CreDt", format_datetime(header.created_at))
    if header.possible_duplicate:
        b.add(root, "PssblDplct", "true")
    return root


def _finish(
    document: etree._Element, definition: str, header: AppHeader | None, check: bool
) -> bytes:
    header_element = _app_header(header) if header is not None else None
    if check:
        try:
            if header is not None and header_element is not None:
                validate(header_element, header.version)
            validate(document, definition)
        except SchemaValidationError as error:
            raise MessageBuildError(
                f"the written message is not schema-valid: {error.text}"
            ) from None
    if header_element is None:
        return etree.tostring(document, xml_declaration=True, encoding="UTF-8")
    envelope = etree.Element(ENVELOPE_ELEMENT)
    envelope.append(header_element)
    envelope.append(document)
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def _require(definition: str, allowed: frozenset[str], kind: str) -> None:
    if definition not in allowed:
        raise MessageBuildError(f"{definition} is not a {kind} definition SCO Settle writes")


# ---------------------------------------------------------------------------------------------
# pacs.008 / pacs.009.


def _credit_transfer(
    b: _Builder, parent: etree._Element, tx: CreditTransfer, customer: bool
) -> None:
    element = b.add(parent, "CdtTrfTxInf")
    ids = b.add(element, "PmtId")
    b.opt(ids, "InstrId", tx.instruction_id)
    b.add(ids, "EndToEndId", tx.end_to_end_id)
    b.opt(ids, "TxId", tx.transaction_id)
    b.opt(ids, "UETR", tx.uetr)
    b.amount(element, "IntrBkSttlmAmt", tx.settlement_amount_minor, tx.settlement_currency)
    _opt_date(b, element, "IntrBkSttlmDt", tx.settlement_date)
    b.opt(element, "SttlmPrty", tx.settlement_priority)
    if customer:
        b.opt_amount(element, "InstdAmt", tx.instructed_amount_minor, tx.instructed_currency)
        rate = tx.exchange_rate
        b.opt(element, "XchgRate", None if rate is None else format(rate, "f"))
        b.opt(element, "ChrgBr", tx.charge_bearer)
    elif tx.instructed_amount_minor is not None or tx.charge_bearer or tx.exchange_rate:
        raise MessageBuildError("pacs.009 has no instructed amount, exchange rate or charge bearer")
    _agent(b, element, "InstgAgt", tx.instructing_agent)
    _agent(b, element, "InstdAgt", tx.instructed_agent)
    _intermediaries(b, element, tx.intermediary_agents)
    _party_or_agent(b, element, "Dbtr", tx.debtor)
    _account(b, element, "DbtrAcct", tx.debtor_account)
    _agent(b, element, "DbtrAgt", tx.debtor_agent)
    _agent(b, element, "CdtrAgt", tx.creditor_agent)
    _party_or_agent(b, element, "Cdtr", tx.creditor)
    _account(b, element, "CdtrAcct", tx.creditor_account)
    for instruction in tx.creditor_agent_instructions:
        instruction_element = b.add(element, "InstrForCdtrAgt")
        b.opt(instruction_element, "Cd", instruction.code)
        b.opt(instruction_element, "InstrInf", instruction.information)
    if tx.purpose_code is not None or tx.purpose_proprietary is not None:
        purpose = b.add(element, "Purp")
        if tx.purpose_code is not None:
            b.add(purpose, "Cd", tx.purpose_code)
        else:
            b.add(purpose, "Prtry", tx.purpose_proprietary)
    _remittance(b, element, tx.remittance_lines)
    if tx.underlying is not None:
        if customer:
            raise MessageBuildError("an underlying customer transfer exists only in pacs.009")
        _underlying(b, element, tx.underlying)


def _remittance(b: _Builder, parent: etree._Element, lines: tuple[str, ...]) -> None:
    if lines:
        remittance = b.add(parent, "RmtInf")
        for line in lines:
            b.add(remittance, "Ustrd", line)


def _underlying(
    b: _Builder, parent: etree._Element, underlying: UnderlyingCustomerTransfer
) -> None:
    element = b.add(parent, "UndrlygCstmrCdtTrf")
    _party(b, element, "Dbtr", underlying.debtor)
    _account(b, element, "DbtrAcct", underlying.debtor_account)
    _agent(b, element, "DbtrAgt", underlying.debtor_agent)
    _intermediaries(b, element, underlying.intermediary_agents)
    _agent(b, element, "CdtrAgt", underlying.creditor_agent)
    _party(b, element, "Cdtr", underlying.creditor)
    _account(b, element, "CdtrAcct", underlying.creditor_account)
    _remittance(b, element, underlying.remittance_lines)
    b.opt_amount(
        element, "InstdAmt", underlying.instructed_amount_minor, underlying.instructed_currency
    )


def _payment_group_header(
    b: _Builder,
    parent: etree._Element,
    message_id: str,
    created_at: dt.datetime,
    count: int,
    method: str,
    clearing: str | None,
) -> etree._Element:
    group = b.add(parent, "GrpHdr")
    b.add(group, "MsgId", message_id)
    b.add(group, "CreDtTm", format_datetime(created_at))
    b.add(group, "NbOfTxs", str(count))
    settlement = b.add(group, "SttlmInf")
    b.add(settlement, "SttlmMtd", method)
    _clearing_system(b, settlement, clearing)
    return group


def write_credit_transfer(message: CreditTransferMessage, *, validate: bool = True) -> bytes:
    """Write a pacs.008 (customer) or pacs.009 (institution) credit transfer.

    Every item must be a ``CreditTransfer``: a rejected transaction has nothing to send.
    """
    _require(message.definition, CREDIT_TRANSFER_DEFINITIONS, "credit transfer")
    transfers = message.transfers
    if len(transfers) != len(message.items) or not transfers:
        raise MessageBuildError("a credit transfer message needs >= 1 transfers and no rejections")
    customer = family(message.definition) == "pacs.008"
    b = _Builder(message.definition)
    document = b.root("Document")
    body = b.add(document, "FIToFICstmrCdtTrf" if customer else "FICdtTrf")
    _payment_group_header(
        b,
        body,
        message.message_id,
        message.created_at,
        len(transfers),
        message.settlement_method,
        message.clearing_system,
    )
    for transfer in transfers:
        _credit_transfer(b, body, transfer, customer)
    return _finish(document, message.definition, message.app_header, validate)


# ---------------------------------------------------------------------------------------------
# pacs.004.


def _return_chain(b: _Builder, parent: etree._Element, chain: ReturnChain, v13: bool) -> None:
    if chain.debtor is None or chain.creditor is None:
        raise MessageBuildError("a return chain needs a debtor and a creditor")
    if not v13 and (chain.debtor_account is not None or chain.creditor_account is not None):
        raise MessageBuildError("pacs.004.001.09 has no accounts in the return chain")
    element = b.add(parent, "RtrChain")
    _choice_party(b, element, "Dbtr", chain.debtor)
    _account(b, element, "DbtrAcct", chain.debtor_account)
    _agent(b, element, "DbtrAgt", chain.debtor_agent)
    _agent(b, element, "CdtrAgt", chain.creditor_agent)
    _choice_party(b, element, "Cdtr", chain.creditor)
    _account(b, element, "CdtrAcct", chain.creditor_account)


def _payment_return(b: _Builder, parent: etree._Element, item: PaymentReturn, v13: bool) -> None:
    element = b.add(parent, "TxInf")
    b.opt(element, "RtrId", item.return_id)
    _original_group(
        b,
        element,
        "OrgnlGrpInf",
        item.original_message_id,
        item.original_definition,
        item.original_created_at,
    )
    b.opt(element, "OrgnlInstrId", item.original_instruction_id)
    b.opt(element, "OrgnlEndToEndId", item.original_end_to_end_id)
    b.opt(element, "OrgnlTxId", item.original_transaction_id)
    b.opt(element, "OrgnlUETR", item.original_uetr)
    b.opt_amount(
        element,
        "OrgnlIntrBkSttlmAmt",
        item.original_settlement_amount_minor,
        item.original_settlement_currency,
    )
    _opt_date(b, element, "OrgnlIntrBkSttlmDt", item.original_settlement_date)
    b.amount(element, "RtrdIntrBkSttlmAmt", item.returned_amount_minor, item.returned_currency)
    _opt_date(b, element, "IntrBkSttlmDt", item.settlement_date)
    b.opt_amount(
        element,
        "RtrdInstdAmt",
        item.returned_instructed_amount_minor,
        item.returned_instructed_currency,
    )
    b.opt(element, "ChrgBr", item.charge_bearer)
    _agent(b, element, "InstgAgt", item.instructing_agent)
    _agent(b, element, "InstdAgt", item.instructed_agent)
    if item.chain is not None:
        _return_chain(b, element, item.chain, v13)
    for reason in item.reasons:
        _reason(b, element, "RtrRsnInf", reason)


def _original_group(
    b: _Builder,
    parent: etree._Element,
    name: str,
    message_id: str | None,
    definition: str | None,
    created_at: dt.datetime | None,
) -> None:
    if message_id is None and definition is None:
        return
    if message_id is None or definition is None:
        raise MessageBuildError(f"{name} needs both the original message id and its definition")
    element = b.add(parent, name)
    b.add(element, "OrgnlMsgId", message_id)
    b.add(element, "OrgnlMsgNmId", definition)
    _opt_datetime(b, element, "OrgnlCreDtTm", created_at)


def write_payment_return(message: PaymentReturnMessage, *, validate: bool = True) -> bytes:
    """Write a pacs.004 payment return (.09 or .13); every item must be a ``PaymentReturn``."""
    _require(message.definition, PAYMENT_RETURN_DEFINITIONS, "payment return")
    returns = message.returns
    if len(returns) != len(message.items) or not returns:
        raise MessageBuildError("a payment return message needs >= 1 returns and no rejections")
    b = _Builder(message.definition)
    document = b.root("Document")
    body = b.add(document, "PmtRtr")
    _payment_group_header(
        b,
        body,
        message.message_id,
        message.created_at,
        len(returns),
        message.settlement_method,
        message.clearing_system,
    )
    v13 = message.definition.endswith(".13")
    for item in returns:
        _payment_return(b, body, item, v13)
    return _finish(document, message.definition, message.app_header, validate)


# ---------------------------------------------------------------------------------------------
# pacs.002.


def _transaction_status(b: _Builder, parent: etree._Element, status: TransactionStatus) -> None:
    element = b.add(parent, "TxInfAndSts")
    b.opt(element, "StsId", status.status_id)
    _original_group(
        b,
        element,
        "OrgnlGrpInf",
        status.original_message_id,
        status.original_definition,
        status.original_created_at,
    )
    b.opt(element, "OrgnlInstrId", status.original_instruction_id)
    b.opt(element, "OrgnlEndToEndId", status.original_end_to_end_id)
    b.opt(element, "OrgnlTxId", status.original_transaction_id)
    b.opt(element, "OrgnlUETR", status.original_uetr)
    b.opt(element, "TxSts", status.status)
    for reason in status.reasons:
        _reason(b, element, "StsRsnInf", reason)
    _opt_datetime(b, element, "AccptncDtTm", status.accepted_at)
    _date_choice(b, element, "FctvIntrBkSttlmDt", status.effective_settlement_date)
    b.opt(element, "ClrSysRef", status.clearing_system_reference)
    _agent(b, element, "InstgAgt", status.instructing_agent)
    _agent(b, element, "InstdAgt", status.instructed_agent)
    settled = (status.original_settlement_amount_minor, status.original_settlement_currency)
    instructed = (status.original_instructed_amount_minor, status.original_instructed_currency)
    if settled == (None, None) and instructed == (None, None):
        return
    reference = b.add(element, "OrgnlTxRef")
    b.opt_amount(reference, "IntrBkSttlmAmt", *settled)
    if instructed != (None, None):
        b.opt_amount(b.add(reference, "Amt"), "InstdAmt", *instructed)


def write_status_report(report: StatusReport, *, validate: bool = True) -> bytes:
    """Write a pacs.002 FI-to-FI payment status report (.10 or .14)."""
    _require(report.definition, STATUS_REPORT_DEFINITIONS, "status report")
    if not report.original_groups and not report.transactions:
        raise MessageBuildError("a status report needs a group status or transaction statuses")
    b = _Builder(report.definition)
    document = b.root("Document")
    body = b.add(document, "FIToFIPmtStsRpt")
    group = b.add(body, "GrpHdr")
    b.add(group, "MsgId", report.message_id)
    b.add(group, "CreDtTm", format_datetime(report.created_at))
    _agent(b, group, "InstgAgt", report.instructing_agent)
    _agent(b, group, "InstdAgt", report.instructed_agent)
    for original in report.original_groups:
        element = b.add(body, "OrgnlGrpInfAndSts")
        b.add(element, "OrgnlMsgId", original.original_message_id)
        b.add(element, "OrgnlMsgNmId", original.original_definition)
        _opt_datetime(b, element, "OrgnlCreDtTm", original.original_created_at)
        count = original.original_number_of_transactions
        b.opt(element, "OrgnlNbOfTxs", None if count is None else str(count))
        b.opt(element, "GrpSts", original.group_status)
        for reason in original.reasons:
            _reason(b, element, "StsRsnInf", reason)
    for status in report.transactions:
        _transaction_status(b, body, status)
    return _finish(document, report.definition, report.app_header, validate)


# ---------------------------------------------------------------------------------------------
# camt.053 / camt.054.


def _balance(b: _Builder, parent: etree._Element, balance: Balance) -> None:
    element = b.add(parent, "Bal")
    kind = b.add(b.add(element, "Tp"), "CdOrPrtry")
    if balance.type_code is not None:
        b.add(kind, "Cd", balance.type_code)
    else:
        b.add(kind, "Prtry", balance.type_proprietary)
    b.amount(element, "Amt", abs(balance.amount_minor), balance.currency)
    b.add(element, "CdtDbtInd", "DBIT" if balance.amount_minor < 0 else "CRDT")
    _date_choice(b, element, "Dt", balance.date)


def _entry_detail(b: _Builder, parent: etree._Element, detail: EntryDetail) -> None:
    element = b.add(parent, "TxDtls")
    references = (
        ("MsgId", detail.message_id),
        ("AcctSvcrRef", detail.account_servicer_reference),
        ("InstrId", detail.instruction_id),
        ("EndToEndId", detail.end_to_end_id),
        ("UETR", detail.uetr),
        ("TxId", detail.transaction_id),
        ("ClrSysRef", detail.clearing_system_reference),
    )
    if any(value is not None for _, value in references):
        refs = b.add(element, "Refs")
        for name, value in references:
            b.opt(refs, name, value)
    b.opt_amount(element, "Amt", detail.amount_minor, detail.currency)
    b.opt(element, "CdtDbtInd", detail.credit_debit)
    _remittance(b, element, detail.remittance_lines)


def _entry(b: _Builder, parent: etree._Element, entry: Entry) -> None:
    element = b.add(parent, "Ntry")
    b.opt(element, "NtryRef", entry.entry_reference)
    b.amount(element, "Amt", entry.amount_minor, entry.currency)
    b.add(element, "CdtDbtInd", entry.credit_debit)
    if entry.reversal is not None:
        b.add(element, "RvslInd", "true" if entry.reversal else "false")
    status = b.add(element, "Sts")
    if entry.status is not None:
        b.add(status, "Cd", entry.status)
    else:
        b.add(status, "Prtry", entry.status_proprietary)
    _date_choice(b, element, "BookgDt", entry.booked_at)
    _date_choice(b, element, "ValDt", entry.value_at)
    b.opt(element, "AcctSvcrRef", entry.account_servicer_reference)
    code = entry.bank_transaction_code
    codes = b.add(element, "BkTxCd")
    if code.domain is not None:
        domain = b.add(codes, "Domn")
        b.add(domain, "Cd", code.domain)
        family_element = b.add(domain, "Fmly")
        b.add(family_element, "Cd", code.family)
        b.add(family_element, "SubFmlyCd", code.sub_family)
    if code.proprietary_code is not None:
        proprietary = b.add(codes, "Prtry")
        b.add(proprietary, "Cd", code.proprietary_code)
        b.opt(proprietary, "Issr", code.proprietary_issuer)
    if entry.details:
        details = b.add(element, "NtryDtls")
        for detail in entry.details:
            _entry_detail(b, details, detail)
    b.opt(element, "AddtlNtryInf", entry.additional_info)


def _account_report(b: _Builder, parent: etree._Element, report: AccountReport, stmt: bool) -> None:
    element = b.add(parent, "Stmt" if stmt else "Ntfctn")
    b.add(element, "Id", report.report_id)
    if report.page_number is not None and report.last_page is not None:
        pages = b.add(element, "StmtPgntn" if stmt else "NtfctnPgntn")
        b.add(pages, "PgNb", str(report.page_number))
        b.add(pages, "LastPgInd", "true" if report.last_page else "false")
    sequence = report.electronic_sequence_number
    b.opt(element, "ElctrncSeqNb", None if sequence is None else str(sequence))
    legal = report.legal_sequence_number
    b.opt(element, "LglSeqNb", None if legal is None else str(legal))
    _opt_datetime(b, element, "CreDtTm", report.created_at)
    if report.from_time is not None and report.to_time is not None:
        period = b.add(element, "FrToDt")
        b.add(period, "FrDtTm", format_datetime(report.from_time))
        b.add(period, "ToDtTm", format_datetime(report.to_time))
    account = b.add(element, "Acct")
    if report.account.identifier is not None:
        identifier = b.add(account, "Id")
        if report.account.iban is not None:
            b.add(identifier, "IBAN", report.account.iban)
        else:
            b.add(b.add(identifier, "Othr"), "Id", report.account.other_id)
    b.opt(account, "Ccy", report.account_currency)
    _party(b, account, "Ownr", report.account_owner)
    _agent(b, account, "Svcr", report.account_servicer)
    if not stmt and report.balances:
        raise MessageBuildError("a camt.054 notification has no balances")
    for balance in report.balances:
        _balance(b, element, balance)
    for entry in report.entries:
        _entry(b, element, entry)
    b.opt(element, "AddtlStmtInf" if stmt else "AddtlNtfctnInf", report.additional_info)


def write_cash_report(message: CashReportMessage, *, validate: bool = True) -> bytes:
    """Write a camt.053 statement or camt.054 debit/credit notification (.08 or .12)."""
    _require(message.definition, CASH_REPORT_DEFINITIONS, "camt.053/camt.054")
    if not message.reports:
        raise MessageBuildError("a statement or notification needs at least one account report")
    stmt = message.is_statement
    b = _Builder(message.definition)
    document = b.root("Document")
    body = b.add(document, "BkToCstmrStmt" if stmt else "BkToCstmrDbtCdtNtfctn")
    group = b.add(body, "GrpHdr")
    b.add(group, "MsgId", message.message_id)
    b.add(group, "CreDtTm", format_datetime(message.created_at))
    for report in message.reports:
        _account_report(b, body, report, stmt)
    return _finish(document, message.definition, message.app_header, validate)


def write_message(
    message: CreditTransferMessage | PaymentReturnMessage | StatusReport | CashReportMessage,
    *,
    validate: bool = True,
) -> bytes:
    """Write any model with the matching writer."""
    if isinstance(message, CreditTransferMessage):
        return write_credit_transfer(message, validate=validate)
    if isinstance(message, PaymentReturnMessage):
        return write_payment_return(message, validate=validate)
    if isinstance(message, StatusReport):
        return write_status_report(message, validate=validate)
    return write_cash_report(message, validate=validate)
