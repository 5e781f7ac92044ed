"""Reading ISO 20022 messages into the plain values of ``model``.

Pipeline: ``parse_untrusted`` (size, DOCTYPE) -> ``open_message`` (envelope, both XSDs) -> mapping.

Invariants:
- For any input bytes, ``read_message`` returns a model or raises ``MessageRejectedError``.
- In pacs.008/pacs.009/pacs.004, a problem with one transaction rejects only that transaction
  (a ``TransactionRejection`` with an ``ExternalStatusReason1Code``); a problem with the group
  header rejects every transaction with the same reason and sets ``group_rejection``.
- In pacs.002 and camt, a value that cannot be mapped rejects the whole message
  (``InvalidContentError``): a statement or status report is trusted whole or not at all.
- Amounts become minor units through ``domain.money``; excess precision is refused, never rounded.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from lxml import etree

from sco_settle.domain.money import AMOUNT_MAX, AmountError, currency, is_currency
from sco_settle.domain.money import parse_major_amount as _parse_major_amount
from sco_settle.domain.participants import BicError, parse_bic
from sco_settle.messaging.iso20022.envelope import open_message
from sco_settle.messaging.iso20022.errors import (
    EnvelopeError,
    InvalidContentError,
    UnsupportedMessageError,
)
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
    BankTransactionCode,
    CashReportMessage,
    CreditorAgentInstruction,
    CreditTransfer,
    CreditTransferMessage,
    Entry,
    EntryDetail,
    Message,
    OriginalGroupStatus,
    Party,
    PaymentReturn,
    PaymentReturnMessage,
    PostalAddress,
    ReasonInfo,
    Rejection,
    ReturnChain,
    StatusReport,
    TransactionRejection,
    TransactionStatus,
    UnderlyingCustomerTransfer,
    family,
)
from sco_settle.messaging.iso20022.reasons import SETTLEMENT_METHODS_SUPPORTED, StatusReason

R = StatusReason

# BIC validation (schwifty) costs ~40 us; a network has few hundred participants, so cache it.
BIC_CACHE_MAX = 4096
_bic_cached = lru_cache(maxsize=BIC_CACHE_MAX)(parse_bic)
_parse_major_cached = lru_cache(maxsize=BIC_CACHE_MAX)(_parse_major_amount)

_DATE_PATTERN = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:Z|[+-]\d{2}:\d{2})?$")


@dataclass(frozen=True, slots=True)
class ReaderPolicy:
    """What the network can settle. Anything else is rejected with a reason, never ignored.

    ``currencies_allowed`` None means every ISO 4217 currency with minor units.
    """

    settlement_methods: frozenset[str] = SETTLEMENT_METHODS_SUPPORTED
    currencies_allowed: frozenset[str] | None = None


DEFAULT_POLICY = ReaderPolicy()


class _Reject(Exception):
    """Internal: a transaction (or group) is rejected for this reason; never leaves this module."""

    def __init__(self, reason: StatusReason, text: str):
        super().__init__(text)
        self.reason = reason
        self.text = text


# A mapped element: (text, children by local name in document order, the lxml element).
# lxml's ElementPath costs 3-8 us per lookup; one pass into dicts makes lookups ~0.2 us.
_Node = tuple[str | None, dict[str, list["_Node"]], etree._Element]


def _tree(element: etree._Element) -> _Node:
    """Index a Document in one pass for dictionary navigation (children by local name, in order).

    lxml keeps one proxy per live element, so ``getparent()`` returns the very key stored here.
    """
    # A parsed tree's tags are strings (comments and processing instructions are dropped at
    # parse, see safe_xml), and every descendant has a parent: asserted, not converted, as this
    # loop runs once per element of every message.
    tag = element.tag
    assert isinstance(tag, str), tag
    prefix_length = tag.index("}") + 1 if tag.startswith("{") else 0
    root_children: dict[str, list[_Node]] = {}
    index: dict[etree._Element, dict[str, list[_Node]]] = {element: root_children}
    for child in element.iterdescendants():
        children: dict[str, list[_Node]] = {}
        index[child] = children
        parent, tag = child.getparent(), child.tag
        assert parent is not None and isinstance(tag, str), tag
        index[parent].setdefault(tag[prefix_length:], []).append((child.text, children, child))
    return (element.text, root_children, element)


class _Nav:
    """Navigation by local-name paths: ``nav.text(node, "PmtId/EndToEndId")``."""

    __slots__ = ("_paths",)

    def __init__(self) -> None:
        self._paths: dict[str, tuple[str, ...]] = {}

    def steps(self, path: str) -> tuple[str, ...]:
        steps = self._paths.get(path)
        if steps is None:
            steps = self._paths[path] = tuple(path.split("/"))
        return steps

    def find(self, node: _Node | None, path: str) -> _Node | None:
        steps = self._paths.get(path)
        if steps is None:
            steps = self.steps(path)
        for step in steps:
            if node is None:
                return None
            found = node[1].get(step)
            node = found[0] if found else None
        return node

    def find_mandatory(self, node: _Node, path: str) -> _Node:
        """``find`` for an element its schema makes mandatory: the message was validated against
        that schema before it is read, so a miss is a programmer error."""
        found = self.find(node, path)
        assert found is not None, f"mandatory {path} missing after schema validation"
        return found

    def findall(self, node: _Node | None, path: str) -> list[_Node]:
        steps = self.steps(path)
        for step in steps[:-1]:
            if node is None:
                return []
            found = node[1].get(step)
            node = found[0] if found else None
        if node is None:
            return []
        return node[1].get(steps[-1], [])

    def text(self, node: _Node | None, path: str) -> str | None:
        found = self.find(node, path)
        if found is None:
            return None
        return found[0] if found[0] is not None else ""

    def texts(self, node: _Node | None, path: str) -> tuple[str, ...]:
        return tuple(found[0] or "" for found in self.findall(node, path))


_NAV = _Nav()


# ---------------------------------------------------------------------------------------------
# Scalars.


def parse_datetime(text: str) -> dt.datetime:
    """An ``ISODateTime`` (xs:dateTime) as a datetime; ValueError if Python cannot hold it."""
    return dt.datetime.fromisoformat(text.strip())


def parse_date(text: str) -> dt.date:
    """An ``ISODate`` (xs:date, an optional zone is dropped); ValueError if out of range."""
    match = _DATE_PATTERN.match(text.strip())
    if match is None:
        raise ValueError(f"not an ISO date: {text!r}")
    return dt.date.fromisoformat(match.group(1))


def _is_true(text: str | None) -> bool:
    """xs:boolean: "true"/"1" (whitespace collapsed) is true; anything else false."""
    return text is not None and text.strip() in ("true", "1")


def _date_or_datetime(nav: _Nav, choice: _Node | None) -> dt.date | dt.datetime | None:
    """``DateAndDateTime2Choice``: ``Dt`` or ``DtTm``."""
    if choice is None:
        return None
    date_text = nav.text(choice, "Dt")
    if date_text is not None:
        return parse_date(date_text)
    return parse_datetime(nav.text(choice, "DtTm") or "")


def _amount(
    element: _Node, what: str, policy: ReaderPolicy | None, *, zero_allowed: bool = False
) -> tuple[int, str]:
    """``(minor units, currency)`` of an amount element with a ``Ccy`` attribute, or ``_Reject``.

    ``policy`` None skips the network's currency list (for amounts that are not settled here).
    """
    code = element[2].get("Ccy") or ""
    text = (element[0] or "").strip()
    if not is_currency(code):
        raise _Reject(R.AM11, f"{what} currency {code!r} is not an ISO 4217 currency")
    allowed = None if policy is None else policy.currencies_allowed
    if allowed is not None and code not in allowed:
        raise _Reject(R.AM03, f"{what} currency {code} is not settled by this network")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise _Reject(R.AM12, f"{what} {text!r} is not a decimal amount") from None
    if not value.is_finite() or value < 0:
        raise _Reject(R.AM12, f"{what} {text!r} is not a valid amount")
    minor_units = currency(code).minor_units
    scaled = value.scaleb(minor_units)
    if scaled != scaled.to_integral_value():
        raise _Reject(
            R.CH20, f"{what} {text} {code} has more than {minor_units} decimal places allowed"
        )
    if value == 0:
        if zero_allowed:
            return 0, code
        raise _Reject(R.AM01, f"{what} is zero")
    if scaled > AMOUNT_MAX:
        raise _Reject(R.AM02, f"{what} {text} {code} exceeds the maximum amount")
    try:
        return _parse_major_cached(text, code), code
    except AmountError as error:
        raise _Reject(R.AM12, f"{what}: {error}") from None


def _optional_amount(
    nav: _Nav, parent: _Node | None, path: str, what: str
) -> tuple[int | None, str | None]:
    element = nav.find(parent, path)
    if element is None:
        return None, None
    return _amount(element, what, None)


def _bic(text: str, reason: StatusReason, what: str) -> str:
    try:
        return _bic_cached(text)
    except BicError as error:
        raise _Reject(reason, f"{what} BIC: {error}") from None


def _date_or_reject(text: str | None, what: str) -> dt.date | None:
    if text is None:
        return None
    try:
        return parse_date(text)
    except ValueError:
        raise _Reject(R.DT01, f"{what} {text!r} is not a usable date") from None


def _datetime_or_reject(text: str | None, what: str, reason: StatusReason) -> dt.datetime | None:
    if text is None:
        return None
    try:
        return parse_datetime(text)
    except ValueError:
        raise _Reject(reason, f"{what} {text!r} is not a usable date and time") from None


# ---------------------------------------------------------------------------------------------
# Parties, agents, accounts.


def _address(nav: _Nav, element: _Node | None) -> PostalAddress | None:
    if element is None:
        return None
    return PostalAddress(
        street_name=nav.text(element, "StrtNm"),
        building_number=nav.text(element, "BldgNb"),
        building_name=nav.text(element, "BldgNm"),
        post_code=nav.text(element, "PstCd"),
        town_name=nav.text(element, "TwnNm"),
        country_subdivision=nav.text(element, "CtrySubDvsn"),
        country=nav.text(element, "Ctry"),
        address_lines=nav.texts(element, "AdrLine"),
    )


def _agent(
    nav: _Nav, element: _Node | None, reason: StatusReason | None, what: str
) -> Agent | None:
    """A ``BranchAndFinancialInstitutionIdentification``; ``reason`` None skips the BIC check."""
    if element is None:
        return None
    institution = nav.find(element, "FinInstnId")
    bic = nav.text(institution, "BICFI")
    if bic is not None and reason is not None:
        bic = _bic(bic, reason, what)
    return Agent(
        bicfi=bic,
        clearing_system_member_id=nav.text(institution, "ClrSysMmbId/MmbId"),
        lei=nav.text(institution, "LEI"),
        name=nav.text(institution, "Nm"),
        postal_address=_address(nav, nav.find(institution, "PstlAdr")),
    )


def _party(
    nav: _Nav, element: _Node | None, reason: StatusReason | None, what: str
) -> Party | None:
    if element is None:
        return None
    bic = nav.text(element, "Id/OrgId/AnyBIC")
    if bic is not None and reason is not None:
        bic = _bic(bic, reason, what)
    return Party(
        name=nav.text(element, "Nm"),
        postal_address=_address(nav, nav.find(element, "PstlAdr")),
        any_bic=bic,
        lei=nav.text(element, "Id/OrgId/LEI"),
    )


def _party_or_agent(
    nav: _Nav, element: _Node | None, reason: StatusReason | None, what: str
) -> Party | Agent | None:
    """``Party40Choice``/``Party50Choice``: ``Pty`` or ``Agt``."""
    if element is None:
        return None
    agent = nav.find(element, "Agt")
    if agent is not None:
        return _agent(nav, agent, reason, what)
    return _party(nav, nav.find(element, "Pty"), reason, what)


def _account(nav: _Nav, element: _Node | None) -> Account | None:
    if element is None:
        return None
    return Account(iban=nav.text(element, "Id/IBAN"), other_id=nav.text(element, "Id/Othr/Id"))


def _intermediaries(nav: _Nav, transaction: _Node) -> tuple[Agent, ...]:
    agents = []
    for number in (1, 2, 3):
        agent = _agent(nav, nav.find(transaction, f"IntrmyAgt{number}"), R.RC11, "intermediary")
        if agent is not None:
            agents.append(agent)
    return tuple(agents)


def _reasons(nav: _Nav, parent: _Node | None, path: str) -> tuple[ReasonInfo, ...]:
    return tuple(
        ReasonInfo(
            code=nav.text(info, "Rsn/Cd"),
            proprietary=nav.text(info, "Rsn/Prtry"),
            additional_info=nav.texts(info, "AddtlInf"),
        )
        for info in nav.findall(parent, path)
    )


# ---------------------------------------------------------------------------------------------
# Application header.


def _app_header(
    header: _Node | None, version: str | None, definition: str, warnings: list[str]
) -> AppHeader | None:
    if header is None or version is None:
        return None
    nav = _NAV
    declared = nav.text(header, "MsgDefIdr") or ""
    if family(declared) != family(definition):
        raise EnvelopeError(
            f"application header MsgDefIdr {declared!r} contradicts the Document {definition}"
        )
    if declared != definition:
        warnings.append(
            f"application header MsgDefIdr {declared} differs from the Document namespace "
            f"{definition}; the Document namespace is used"
        )
    try:
        created_at = parse_datetime(nav.text(header, "CreDt") or "")
    except ValueError:
        raise InvalidContentError(
            "application header CreDt is not a usable date and time", reason=R.DT02
        ) from None
    return AppHeader(
        version=version,
        business_message_id=nav.text(header, "BizMsgIdr") or "",
        message_definition_id=declared,
        created_at=created_at,
        from_bic=nav.text(header, "Fr/FIId/FinInstnId/BICFI"),
        to_bic=nav.text(header, "To/FIId/FinInstnId/BICFI"),
        business_service=nav.text(header, "BizSvc"),
        possible_duplicate=_is_true(nav.text(header, "PssblDplct")),
    )


def _created_at(nav: _Nav, group: _Node | None) -> dt.datetime:
    text = nav.text(group, "CreDtTm") or ""
    try:
        return parse_datetime(text)
    except ValueError:
        raise InvalidContentError(
            f"GrpHdr/CreDtTm {text!r} is not a usable date and time", reason=R.DT02
        ) from None


# ---------------------------------------------------------------------------------------------
# Group header of payment messages (pacs.008, pacs.009, pacs.004).


@dataclass(frozen=True, slots=True)
class _Group:
    message_id: str
    created_at: dt.datetime
    number_of_transactions: int
    settlement_method: str
    clearing_system: str | None
    settlement_date: dt.date | None
    instructing_agent: Agent | None
    instructed_agent: Agent | None
    rejection: Rejection | None


def _group(
    nav: _Nav,
    group: _Node | None,
    transactions: list[_Node],
    policy: ReaderPolicy,
    amount_path: str,
    total_path: str,
) -> _Group:
    settlement = nav.find(group, "SttlmInf")
    method = nav.text(settlement, "SttlmMtd") or ""
    clearing = nav.text(settlement, "ClrSys/Cd") or nav.text(settlement, "ClrSys/Prtry")
    declared_text = nav.text(group, "NbOfTxs") or "0"
    settlement_date = None
    instructing = instructed = None
    rejection = None
    try:
        settlement_date = _date_or_reject(nav.text(group, "IntrBkSttlmDt"), "IntrBkSttlmDt")
        instructing = _agent(nav, nav.find(group, "InstgAgt"), R.RC05, "instructing agent")
        instructed = _agent(nav, nav.find(group, "InstdAgt"), R.RC05, "instructed agent")
        _group_checks(nav, group, settlement, transactions, policy, amount_path, total_path)
    except _Reject as reject:
        rejection = Rejection(reject.reason, reject.text)
    return _Group(
        message_id=nav.text(group, "MsgId") or "",
        created_at=_created_at(nav, group),
        number_of_transactions=int(declared_text),
        settlement_method=method,
        clearing_system=clearing,
        settlement_date=settlement_date,
        instructing_agent=instructing,
        instructed_agent=instructed,
        rejection=rejection,
    )


def _group_checks(
    nav: _Nav,
    group: _Node | None,
    settlement: _Node | None,
    transactions: list[_Node],
    policy: ReaderPolicy,
    amount_path: str,
    total_path: str,
) -> None:
    method = nav.text(settlement, "SttlmMtd") or ""
    if method not in policy.settlement_methods:
        supported = ", ".join(sorted(policy.settlement_methods))
        raise _Reject(R.AG03, f"settlement method {method} is not supported (only {supported})")
    for agent in ("InstgRmbrsmntAgt", "InstdRmbrsmntAgt", "ThrdRmbrsmntAgt"):
        if nav.find(settlement, agent) is not None:
            raise _Reject(
                R.AG03,
                f"settlement through a reimbursement agent ({agent}) is not "
                "supported: the network settles on its own books",
            )
    if _is_true(nav.text(group, "GrpRtr")):
        raise _Reject(R.AG03, "group returns (GrpRtr) are not supported: return each transaction")
    declared = int(nav.text(group, "NbOfTxs") or "0")
    if declared != len(transactions):
        raise _Reject(R.AM19, f"NbOfTxs is {declared} but the message holds {len(transactions)}")
    amounts = [nav.find(transaction, amount_path) for transaction in transactions]
    values = [Decimal(amount[0] or "0") for amount in amounts if amount is not None]
    control_sum = nav.text(group, "CtrlSum")
    if control_sum is not None and Decimal(control_sum) != sum(values, Decimal(0)):
        raise _Reject(R.AM16, f"CtrlSum {control_sum} differs from the sum of the amounts")
    total = nav.find(group, total_path)
    if total is not None:
        currencies = {amount[2].get("Ccy") for amount in amounts if amount is not None}
        if currencies != {total[2].get("Ccy")} or Decimal(total[0] or "0") != sum(
            values, Decimal(0)
        ):
            raise _Reject(R.AM16, f"{total_path} differs from the sum of the transaction amounts")


def _duplicates(seen: dict[str, set[str]], ids: dict[str, str | None]) -> None:
    """Reject a transaction whose instruction id, transaction id or UETR repeats in the message."""
    for name, value in ids.items():
        if value is None:
            continue
        if value in seen[name]:
            reason = R.DU05 if name == "instruction id" else R.RF01
            raise _Reject(reason, f"{name} {value!r} is not unique within the message")
    for name, value in ids.items():
        if value is not None:
            seen[name].add(value)


# ---------------------------------------------------------------------------------------------
# pacs.008 / pacs.009.


def _credit_transfer(
    nav: _Nav, tx: _Node, group: _Group, policy: ReaderPolicy, is_customer: bool
) -> CreditTransfer:
    amount, code = _amount(nav.find_mandatory(tx, "IntrBkSttlmAmt"), "IntrBkSttlmAmt", policy)
    instructed_amount, instructed_code = _optional_amount(nav, tx, "InstdAmt", "InstdAmt")
    instructions = tuple(
        CreditorAgentInstruction(nav.text(item, "Cd"), nav.text(item, "InstrInf"))
        for item in nav.findall(tx, "InstrForCdtrAgt")
    )
    if any(instruction.code == "CHQB" for instruction in instructions):
        raise _Reject(R.AG03, "payment by cheque (InstrForCdtrAgt CHQB) is not supported")
    rate = nav.text(tx, "XchgRate")
    date = _date_or_reject(nav.text(tx, "IntrBkSttlmDt"), "IntrBkSttlmDt")
    debtor: Party | Agent | None
    creditor: Party | Agent | None
    if is_customer:
        debtor = _party(nav, nav.find(tx, "Dbtr"), R.RC06, "debtor")
        creditor = _party(nav, nav.find(tx, "Cdtr"), R.RC07, "creditor")
    else:
        debtor = _agent(nav, nav.find(tx, "Dbtr"), R.RC06, "debtor")
        creditor = _agent(nav, nav.find(tx, "Cdtr"), R.RC07, "creditor")
    assert debtor is not None and creditor is not None  # Mandatory in every schema version.
    instructing = _agent(nav, nav.find(tx, "InstgAgt"), R.RC05, "instructing agent")
    instructed = _agent(nav, nav.find(tx, "InstdAgt"), R.RC05, "instructed agent")
    return CreditTransfer(
        end_to_end_id=nav.text(tx, "PmtId/EndToEndId") or "",
        settlement_amount_minor=amount,
        settlement_currency=code,
        debtor=debtor,
        creditor=creditor,
        instruction_id=nav.text(tx, "PmtId/InstrId"),
        transaction_id=nav.text(tx, "PmtId/TxId"),
        uetr=nav.text(tx, "PmtId/UETR"),
        settlement_date=date if date is not None else group.settlement_date,
        settlement_priority=nav.text(tx, "SttlmPrty") or nav.text(tx, "PmtTpInf/InstrPrty"),
        instructed_amount_minor=instructed_amount,
        instructed_currency=instructed_code,
        exchange_rate=Decimal(rate) if rate is not None else None,
        charge_bearer=nav.text(tx, "ChrgBr"),
        instructing_agent=instructing if instructing is not None else group.instructing_agent,
        instructed_agent=instructed if instructed is not None else group.instructed_agent,
        intermediary_agents=_intermediaries(nav, tx),
        debtor_account=_account(nav, nav.find(tx, "DbtrAcct")),
        debtor_agent=_agent(nav, nav.find(tx, "DbtrAgt"), R.RC03, "debtor agent"),
        creditor_agent=_agent(nav, nav.find(tx, "CdtrAgt"), R.RC04, "creditor agent"),
        creditor_account=_account(nav, nav.find(tx, "CdtrAcct")),
        creditor_agent_instructions=instructions,
        purpose_code=nav.text(tx, "Purp/Cd"),
        purpose_proprietary=nav.text(tx, "Purp/Prtry"),
        remittance_lines=nav.texts(tx, "RmtInf/Ustrd"),
        underlying=_underlying(nav, nav.find(tx, "UndrlygCstmrCdtTrf")),
    )


def _underlying(nav: _Nav, element: _Node | None) -> UnderlyingCustomerTransfer | None:
    if element is None:
        return None
    amount, code = _optional_amount(nav, element, "InstdAmt", "underlying InstdAmt")
    debtor = _party(nav, nav.find(element, "Dbtr"), R.RC06, "underlying debtor")
    creditor = _party(nav, nav.find(element, "Cdtr"), R.RC07, "underlying creditor")
    debtor_agent = _agent(nav, nav.find(element, "DbtrAgt"), R.RC03, "underlying debtor agent")
    creditor_agent = _agent(nav, nav.find(element, "CdtrAgt"), R.RC04, "underlying creditor agent")
    assert debtor and creditor and debtor_agent and creditor_agent  # Mandatory in the schemas.
    return UnderlyingCustomerTransfer(
        debtor=debtor,
        debtor_agent=debtor_agent,
        creditor_agent=creditor_agent,
        creditor=creditor,
        debtor_account=_account(nav, nav.find(element, "DbtrAcct")),
        creditor_account=_account(nav, nav.find(element, "CdtrAcct")),
        intermediary_agents=_intermediaries(nav, element),
        remittance_lines=nav.texts(element, "RmtInf/Ustrd"),
        instructed_amount_minor=amount,
        instructed_currency=code,
    )


def _read_credit_transfers(
    nav: _Nav, definition: str, document: _Node, policy: ReaderPolicy
) -> tuple[_Group, list[CreditTransfer | TransactionRejection]]:
    is_customer = family(definition) == "pacs.008"
    body = nav.find(document, "FIToFICstmrCdtTrf" if is_customer else "FICdtTrf")
    transactions = nav.findall(body, "CdtTrfTxInf")
    group = _group(
        nav, nav.find(body, "GrpHdr"), transactions, policy, "IntrBkSttlmAmt", "TtlIntrBkSttlmAmt"
    )
    items: list[CreditTransfer | TransactionRejection] = []
    seen: dict[str, set[str]] = {"instruction id": set(), "transaction id": set(), "UETR": set()}
    for index, tx in enumerate(transactions):
        ids = {
            "instruction_id": nav.text(tx, "PmtId/InstrId"),
            "end_to_end_id": nav.text(tx, "PmtId/EndToEndId"),
            "transaction_id": nav.text(tx, "PmtId/TxId"),
            "uetr": nav.text(tx, "PmtId/UETR"),
        }
        try:
            if group.rejection is not None:
                raise _Reject(StatusReason(group.rejection.reason), group.rejection.text)
            _duplicates(
                seen,
                {
                    "instruction id": ids["instruction_id"],
                    "transaction id": ids["transaction_id"],
                    "UETR": ids["uetr"],
                },
            )
            items.append(_credit_transfer(nav, tx, group, policy, is_customer))
        except _Reject as reject:
            items.append(TransactionRejection(index, reject.reason, reject.text, **ids))
    return group, items


# ---------------------------------------------------------------------------------------------
# pacs.004.


def _payment_return(
    nav: _Nav, tx: _Node, group: _Group, top: _Node | None, policy: ReaderPolicy
) -> PaymentReturn:
    returned, code = _amount(
        nav.find_mandatory(tx, "RtrdIntrBkSttlmAmt"), "RtrdIntrBkSttlmAmt", policy
    )
    original_amount, original_code = _optional_amount(
        nav, tx, "OrgnlIntrBkSttlmAmt", "OrgnlIntrBkSttlmAmt"
    )
    instructed, instructed_code = _optional_amount(nav, tx, "RtrdInstdAmt", "RtrdInstdAmt")
    original = nav.find(tx, "OrgnlGrpInf")
    if original is None:
        original = top
    date = _date_or_reject(nav.text(tx, "IntrBkSttlmDt"), "IntrBkSttlmDt")
    instructing = _agent(nav, nav.find(tx, "InstgAgt"), R.RC05, "instructing agent")
    instructed_agent = _agent(nav, nav.find(tx, "InstdAgt"), R.RC05, "instructed agent")
    reasons = _reasons(nav, tx, "RtrRsnInf") or _reasons(nav, top, "RtrRsnInf")
    return PaymentReturn(
        returned_amount_minor=returned,
        returned_currency=code,
        return_id=nav.text(tx, "RtrId"),
        original_message_id=nav.text(original, "OrgnlMsgId"),
        original_definition=nav.text(original, "OrgnlMsgNmId"),
        original_created_at=_datetime_or_reject(
            nav.text(original, "OrgnlCreDtTm"), "OrgnlCreDtTm", R.DT01
        ),
        original_instruction_id=nav.text(tx, "OrgnlInstrId"),
        original_end_to_end_id=nav.text(tx, "OrgnlEndToEndId"),
        original_transaction_id=nav.text(tx, "OrgnlTxId"),
        original_uetr=nav.text(tx, "OrgnlUETR"),
        original_settlement_amount_minor=original_amount,
        original_settlement_currency=original_code,
        original_settlement_date=_date_or_reject(
            nav.text(tx, "OrgnlIntrBkSttlmDt"), "OrgnlIntrBkSttlmDt"
        ),
        settlement_date=date if date is not None else group.settlement_date,
        returned_instructed_amount_minor=instructed,
        returned_instructed_currency=instructed_code,
        charge_bearer=nav.text(tx, "ChrgBr"),
        instructing_agent=instructing if instructing is not None else group.instructing_agent,
        instructed_agent=instructed_agent
        if instructed_agent is not None
        else group.instructed_agent,
        chain=_return_chain(nav, nav.find(tx, "RtrChain")),
        reasons=reasons,
    )


def _return_chain(nav: _Nav, element: _Node | None) -> ReturnChain | None:
    if element is None:
        return None
    return ReturnChain(
        debtor=_party_or_agent(nav, nav.find(element, "Dbtr"), R.RC06, "debtor"),
        debtor_account=_account(nav, nav.find(element, "DbtrAcct")),
        debtor_agent=_agent(nav, nav.find(element, "DbtrAgt"), R.RC03, "debtor agent"),
        creditor_agent=_agent(nav, nav.find(element, "CdtrAgt"), R.RC04, "creditor agent"),
        creditor=_party_or_agent(nav, nav.find(element, "Cdtr"), R.RC07, "creditor"),
        creditor_account=_account(nav, nav.find(element, "CdtrAcct")),
    )


def _read_payment_returns(
    nav: _Nav, document: _Node, policy: ReaderPolicy
) -> tuple[_Group, list[PaymentReturn | TransactionRejection]]:
    body = nav.find(document, "PmtRtr")
    transactions = nav.findall(body, "TxInf")
    group = _group(
        nav,
        nav.find(body, "GrpHdr"),
        transactions,
        policy,
        "RtrdIntrBkSttlmAmt",
        "TtlRtrdIntrBkSttlmAmt",
    )
    top = nav.find(body, "OrgnlGrpInf")
    items: list[PaymentReturn | TransactionRejection] = []
    seen: dict[str, set[str]] = {"return id": set(), "transaction id": set(), "UETR": set()}
    for index, tx in enumerate(transactions):
        ids = {
            "instruction_id": nav.text(tx, "RtrId"),
            "end_to_end_id": nav.text(tx, "OrgnlEndToEndId"),
            "transaction_id": nav.text(tx, "OrgnlTxId"),
            "uetr": nav.text(tx, "OrgnlUETR"),
        }
        try:
            if group.rejection is not None:
                raise _Reject(StatusReason(group.rejection.reason), group.rejection.text)
            _duplicates(seen, {"return id": ids["instruction_id"]})
            items.append(_payment_return(nav, tx, group, top, policy))
        except _Reject as reject:
            items.append(TransactionRejection(index, reject.reason, reject.text, **ids))
    return group, items


# ---------------------------------------------------------------------------------------------
# pacs.002.


def _original_group_status(nav: _Nav, element: _Node) -> OriginalGroupStatus:
    count = nav.text(element, "OrgnlNbOfTxs")
    return OriginalGroupStatus(
        original_message_id=nav.text(element, "OrgnlMsgId") or "",
        original_definition=nav.text(element, "OrgnlMsgNmId") or "",
        original_created_at=_datetime_or_reject(
            nav.text(element, "OrgnlCreDtTm"), "OrgnlCreDtTm", R.DT01
        ),
        original_number_of_transactions=int(count) if count is not None else None,
        group_status=nav.text(element, "GrpSts"),
        reasons=_reasons(nav, element, "StsRsnInf"),
    )


def _transaction_status(nav: _Nav, element: _Node) -> TransactionStatus:
    effective = _date_or_datetime(nav, nav.find(element, "FctvIntrBkSttlmDt"))
    return TransactionStatus(
        status=nav.text(element, "TxSts"),
        reasons=_reasons(nav, element, "StsRsnInf"),
        status_id=nav.text(element, "StsId"),
        original_message_id=nav.text(element, "OrgnlGrpInf/OrgnlMsgId"),
        original_definition=nav.text(element, "OrgnlGrpInf/OrgnlMsgNmId"),
        original_created_at=_datetime_or_reject(
            nav.text(element, "OrgnlGrpInf/OrgnlCreDtTm"), "OrgnlCreDtTm", R.DT01
        ),
        original_instruction_id=nav.text(element, "OrgnlInstrId"),
        original_end_to_end_id=nav.text(element, "OrgnlEndToEndId"),
        original_transaction_id=nav.text(element, "OrgnlTxId"),
        original_uetr=nav.text(element, "OrgnlUETR"),
        accepted_at=_datetime_or_reject(nav.text(element, "AccptncDtTm"), "AccptncDtTm", R.DT01),
        effective_settlement_date=effective,
        clearing_system_reference=nav.text(element, "ClrSysRef"),
        instructing_agent=_agent(nav, nav.find(element, "InstgAgt"), None, "instructing agent"),
        instructed_agent=_agent(nav, nav.find(element, "InstdAgt"), None, "instructed agent"),
    )


def _read_status_report(
    nav: _Nav,
    definition: str,
    document: _Node,
    header: AppHeader | None,
    warnings: list[str],
) -> StatusReport:
    body = nav.find(document, "FIToFIPmtStsRpt")
    group = nav.find(body, "GrpHdr")
    return StatusReport(
        definition=definition,
        message_id=nav.text(group, "MsgId") or "",
        created_at=_created_at(nav, group),
        original_groups=tuple(
            _original_group_status(nav, element)
            for element in nav.findall(body, "OrgnlGrpInfAndSts")
        ),
        transactions=tuple(
            _transaction_status(nav, element) for element in nav.findall(body, "TxInfAndSts")
        ),
        instructing_agent=_agent(nav, nav.find(group, "InstgAgt"), None, "instructing agent"),
        instructed_agent=_agent(nav, nav.find(group, "InstdAgt"), None, "instructed agent"),
        app_header=header,
        warnings=tuple(warnings),
    )


# ---------------------------------------------------------------------------------------------
# camt.053 / camt.054.


def _balance(nav: _Nav, element: _Node) -> Balance:
    amount, code = _amount(nav.find_mandatory(element, "Amt"), "balance", None, zero_allowed=True)
    sign = -1 if nav.text(element, "CdtDbtInd") == "DBIT" else 1
    when = _date_or_datetime(nav, nav.find(element, "Dt"))
    assert when is not None  # Bal/Dt is mandatory.
    return Balance(
        type_code=nav.text(element, "Tp/CdOrPrtry/Cd"),
        amount_minor=sign * amount,
        currency=code,
        date=when,
        type_proprietary=nav.text(element, "Tp/CdOrPrtry/Prtry"),
    )


def _entry_detail(nav: _Nav, element: _Node) -> EntryDetail:
    amount, code = _optional_amount(nav, element, "Amt", "entry detail amount")
    return EntryDetail(
        message_id=nav.text(element, "Refs/MsgId"),
        account_servicer_reference=nav.text(element, "Refs/AcctSvcrRef"),
        instruction_id=nav.text(element, "Refs/InstrId"),
        end_to_end_id=nav.text(element, "Refs/EndToEndId"),
        uetr=nav.text(element, "Refs/UETR"),
        transaction_id=nav.text(element, "Refs/TxId"),
        clearing_system_reference=nav.text(element, "Refs/ClrSysRef"),
        amount_minor=amount,
        currency=code,
        credit_debit=nav.text(element, "CdtDbtInd"),
        remittance_lines=nav.texts(element, "RmtInf/Ustrd"),
    )


def _entry(nav: _Nav, element: _Node) -> Entry:
    amount, code = _amount(
        nav.find_mandatory(element, "Amt"), "entry amount", None, zero_allowed=True
    )
    reversal = nav.text(element, "RvslInd")
    return Entry(
        amount_minor=amount,
        currency=code,
        credit_debit=nav.text(element, "CdtDbtInd") or "",
        status=nav.text(element, "Sts/Cd"),
        status_proprietary=nav.text(element, "Sts/Prtry"),
        bank_transaction_code=BankTransactionCode(
            domain=nav.text(element, "BkTxCd/Domn/Cd"),
            family=nav.text(element, "BkTxCd/Domn/Fmly/Cd"),
            sub_family=nav.text(element, "BkTxCd/Domn/Fmly/SubFmlyCd"),
            proprietary_code=nav.text(element, "BkTxCd/Prtry/Cd"),
            proprietary_issuer=nav.text(element, "BkTxCd/Prtry/Issr"),
        ),
        booked_at=_date_or_datetime(nav, nav.find(element, "BookgDt")),
        value_at=_date_or_datetime(nav, nav.find(element, "ValDt")),
        entry_reference=nav.text(element, "NtryRef"),
        account_servicer_reference=nav.text(element, "AcctSvcrRef"),
        reversal=None if reversal is None else _is_true(reversal),
        details=tuple(
            _entry_detail(nav, detail) for detail in nav.findall(element, "NtryDtls/TxDtls")
        ),
        additional_info=nav.text(element, "AddtlNtryInf"),
    )


def _optional_int(text: str | None) -> int | None:
    # ``Number`` is xs:decimal with no fraction digits, so "1000.00" is a valid 1000.
    return None if text is None else int(Decimal(text))


def _account_report(nav: _Nav, element: _Node, is_statement: bool) -> AccountReport:
    pages = nav.find(element, "StmtPgntn" if is_statement else "NtfctnPgntn")
    last_page = nav.text(pages, "LastPgInd")
    account = nav.find(element, "Acct")
    return AccountReport(
        report_id=nav.text(element, "Id") or "",
        account=_account(nav, account) or Account(),
        account_currency=nav.text(account, "Ccy"),
        account_owner=_party(nav, nav.find(account, "Ownr"), None, "account owner"),
        account_servicer=_agent(nav, nav.find(account, "Svcr"), None, "account servicer"),
        created_at=_datetime_or_reject(nav.text(element, "CreDtTm"), "CreDtTm", R.DT01),
        from_time=_datetime_or_reject(nav.text(element, "FrToDt/FrDtTm"), "FrDtTm", R.DT01),
        to_time=_datetime_or_reject(nav.text(element, "FrToDt/ToDtTm"), "ToDtTm", R.DT01),
        page_number=_optional_int(nav.text(pages, "PgNb")),
        last_page=None if last_page is None else _is_true(last_page),
        electronic_sequence_number=_optional_int(nav.text(element, "ElctrncSeqNb")),
        legal_sequence_number=_optional_int(nav.text(element, "LglSeqNb")),
        balances=tuple(_balance(nav, balance) for balance in nav.findall(element, "Bal")),
        entries=tuple(_entry(nav, entry) for entry in nav.findall(element, "Ntry")),
        additional_info=nav.text(element, "AddtlStmtInf" if is_statement else "AddtlNtfctnInf"),
    )


def _read_cash_report(
    nav: _Nav,
    definition: str,
    document: _Node,
    header: AppHeader | None,
    warnings: list[str],
) -> CashReportMessage:
    is_statement = family(definition) == "camt.053"
    body = nav.find(document, "BkToCstmrStmt" if is_statement else "BkToCstmrDbtCdtNtfctn")
    group = nav.find(body, "GrpHdr")
    reports = nav.findall(body, "Stmt" if is_statement else "Ntfctn")
    try:
        mapped = tuple(_account_report(nav, report, is_statement) for report in reports)
    except (_Reject, ValueError) as error:
        reason = error.reason if isinstance(error, _Reject) else R.DT01
        raise InvalidContentError(str(error), reason=reason) from None
    return CashReportMessage(
        definition=definition,
        message_id=nav.text(group, "MsgId") or "",
        created_at=_created_at(nav, group),
        reports=mapped,
        app_header=header,
        warnings=tuple(warnings),
    )


# ---------------------------------------------------------------------------------------------
# Entry points.


def read_message(data: bytes, policy: ReaderPolicy = DEFAULT_POLICY) -> Message:
    """Read any supported ISO 20022 message; raise ``MessageRejectedError`` if impossible."""
    opened = open_message(data)
    definition = opened.definition
    warnings: list[str] = []
    header_node = _tree(opened.header) if opened.header is not None else None
    header = _app_header(header_node, opened.header_definition, definition, warnings)
    nav = _NAV
    document = _tree(opened.document)
    if definition in CREDIT_TRANSFER_DEFINITIONS:
        group, transfers = _read_credit_transfers(nav, definition, document, policy)
        return CreditTransferMessage(
            definition=definition,
            message_id=group.message_id,
            created_at=group.created_at,
            number_of_transactions=group.number_of_transactions,
            settlement_method=group.settlement_method,
            items=tuple(transfers),
            app_header=header,
            clearing_system=group.clearing_system,
            group_rejection=group.rejection,
            warnings=tuple(warnings),
        )
    if definition in PAYMENT_RETURN_DEFINITIONS:
        group, returns = _read_payment_returns(nav, document, policy)
        return PaymentReturnMessage(
            definition=definition,
            message_id=group.message_id,
            created_at=group.created_at,
            number_of_transactions=group.number_of_transactions,
            settlement_method=group.settlement_method,
            items=tuple(returns),
            app_header=header,
            clearing_system=group.clearing_system,
            group_rejection=group.rejection,
            warnings=tuple(warnings),
        )
    if definition in STATUS_REPORT_DEFINITIONS:
        try:
            return _read_status_report(nav, definition, document, header, warnings)
        except (_Reject, ValueError) as error:
            reason = error.reason if isinstance(error, _Reject) else R.DT01
            raise InvalidContentError(str(error), reason=reason) from None
    if definition in CASH_REPORT_DEFINITIONS:
        return _read_cash_report(nav, definition, document, header, warnings)
    raise UnsupportedMessageError(
        f"{definition} is schema-valid but not a message SCO Settle reads "
        "(pacs.008 .08/.12, pacs.009 .08/.11, pacs.004 .09/.13, pacs.002 .10/.14, "
        "camt.053/.054 .08/.12)"
    )


def _read_kind(data: bytes, kind: type, policy: ReaderPolicy) -> Message:
    message = read_message(data, policy)
    if not isinstance(message, kind):
        raise UnsupportedMessageError(f"{message.definition} is not a {kind.__name__}")
    return message


def read_credit_transfer(
    data: bytes, policy: ReaderPolicy = DEFAULT_POLICY
) -> CreditTransferMessage:
    """Read a pacs.008 or pacs.009; any other message is ``UnsupportedMessageError``."""
    message = _read_kind(data, CreditTransferMessage, policy)
    assert isinstance(message, CreditTransferMessage)
    return message


def read_payment_return(data: bytes, policy: ReaderPolicy = DEFAULT_POLICY) -> PaymentReturnMessage:
    """Read a pacs.004; any other message is ``UnsupportedMessageError``."""
    message = _read_kind(data, PaymentReturnMessage, policy)
    assert isinstance(message, PaymentReturnMessage)
    return message


def read_status_report(data: bytes) -> StatusReport:
    """Read a pacs.002; any other message is ``UnsupportedMessageError``."""
    message = _read_kind(data, StatusReport, DEFAULT_POLICY)
    assert isinstance(message, StatusReport)
    return message


def read_cash_report(data: bytes) -> CashReportMessage:
    """Read a camt.053 or camt.054; any other message is ``UnsupportedMessageError``."""
    message = _read_kind(data, CashReportMessage, DEFAULT_POLICY)
    assert isinstance(message, CashReportMessage)
    return message
