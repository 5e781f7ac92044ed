"""Plain values for the ISO 20022 messages SCO Settle reads and writes.

Invariants:
- Every model is a frozen, slotted dataclass: a read message cannot be altered by its consumers.
- Money is an ``int`` of minor units plus an ISO 4217 code (``*_amount_minor`` + ``*_currency``);
  ``Decimal`` exists only in the XML text. Statement balances are signed (credit positive).
- Dates and times are ``datetime.date`` / ``datetime.datetime`` exactly as sent (offset kept, naive
  if the sender gave none).
- Reading a message the writer produced from a model gives back an equal model (round trip), for
  every field below. ISO elements not listed here are not mapped (see docs/iso20022.md).

Vocabulary: ISO 20022 calls each payment in a message a "transaction" (``CdtTrfTxInf``); the names
here keep ISO's words (``transaction_id``, ``number_of_transactions``) so that integration engineers
can find them in the message definitions. They are not database transactions.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

# A message definition identifier: "pacs.008.001.08" (business area, number, variant, version).
MessageDefinition = str

PACS_008_08 = "pacs.008.001.08"
PACS_008_12 = "pacs.008.001.12"
PACS_009_08 = "pacs.009.001.08"
PACS_009_11 = "pacs.009.001.11"
PACS_004_09 = "pacs.004.001.09"
PACS_004_13 = "pacs.004.001.13"
PACS_002_10 = "pacs.002.001.10"
PACS_002_14 = "pacs.002.001.14"
CAMT_053_08 = "camt.053.001.08"
CAMT_053_12 = "camt.053.001.12"
CAMT_054_08 = "camt.054.001.08"
CAMT_054_12 = "camt.054.001.12"
HEAD_001_02 = "head.001.001.02"
HEAD_001_04 = "head.001.001.04"

CREDIT_TRANSFER_DEFINITIONS = frozenset({PACS_008_08, PACS_008_12, PACS_009_08, PACS_009_11})
PAYMENT_RETURN_DEFINITIONS = frozenset({PACS_004_09, PACS_004_13})
STATUS_REPORT_DEFINITIONS = frozenset({PACS_002_10, PACS_002_14})
CASH_REPORT_DEFINITIONS = frozenset({CAMT_053_08, CAMT_053_12, CAMT_054_08, CAMT_054_12})
APP_HEADER_DEFINITIONS = frozenset({HEAD_001_02, HEAD_001_04})
READABLE_DEFINITIONS = (
    CREDIT_TRANSFER_DEFINITIONS
    | PAYMENT_RETURN_DEFINITIONS
    | STATUS_REPORT_DEFINITIONS
    | CASH_REPORT_DEFINITIONS
)


def family(definition: MessageDefinition) -> str:
    """``pacs.008.001.08`` -> ``pacs.008``."""
    return definition[:8]


@dataclass(frozen=True, slots=True)
class PostalAddress:
    """The structured and unstructured address lines common to all versions (``PstlAdr``)."""

    street_name: str | None = None
    building_number: str | None = None
    building_name: str | None = None
    post_code: str | None = None
    town_name: str | None = None
    country_subdivision: str | None = None
    country: str | None = None
    address_lines: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Agent:
    """A financial institution (``BranchAndFinancialInstitutionIdentification``)."""

    bicfi: str | None = None
    clearing_system_member_id: str | None = None
    lei: str | None = None
    name: str | None = None
    postal_address: PostalAddress | None = None


@dataclass(frozen=True, slots=True)
class Party:
    """A customer or organisation (``PartyIdentification``): name, address, organisation ids."""

    name: str | None = None
    postal_address: PostalAddress | None = None
    any_bic: str | None = None
    lei: str | None = None


@dataclass(frozen=True, slots=True)
class Account:
    """A cash account identified by IBAN or by another identifier (``Othr/Id``)."""

    iban: str | None = None
    other_id: str | None = None

    @property
    def identifier(self) -> str | None:
        return self.iban if self.iban is not None else self.other_id


@dataclass(frozen=True, slots=True)
class AppHeader:
    """The business application header (head.001.001.02 or .04)."""

    version: MessageDefinition
    business_message_id: str
    message_definition_id: str
    created_at: dt.datetime
    from_bic: str | None = None
    to_bic: str | None = None
    business_service: str | None = None
    possible_duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message or a transaction is rejected: an ``ExternalStatusReason1Code`` and a text."""

    reason: str
    text: str


@dataclass(frozen=True, slots=True)
class TransactionRejection:
    """A transaction of an incoming message that cannot be accepted, with the ids to report it.

    For a credit transfer the ids are ``InstrId``/``EndToEndId``/``TxId``/``UETR``; for a payment
    return they are ``RtrId``/``OrgnlEndToEndId``/``OrgnlTxId``/``OrgnlUETR``.
    """

    index: int
    reason: str
    text: str
    instruction_id: str | None = None
    end_to_end_id: str | None = None
    transaction_id: str | None = None
    uetr: str | None = None


@dataclass(frozen=True, slots=True)
class CreditorAgentInstruction:
    """``InstrForCdtrAgt``: a code (HOLD, PHOB, TELB...) and/or free text for the creditor agent."""

    code: str | None = None
    information: str | None = None


@dataclass(frozen=True, slots=True)
class UnderlyingCustomerTransfer:
    """The customer credit transfer a pacs.009 COV covers (``UndrlygCstmrCdtTrf``)."""

    debtor: Party
    debtor_agent: Agent
    creditor_agent: Agent
    creditor: Party
    debtor_account: Account | None = None
    creditor_account: Account | None = None
    intermediary_agents: tuple[Agent, ...] = ()
    remittance_lines: tuple[str, ...] = ()
    instructed_amount_minor: int | None = None
    instructed_currency: str | None = None


@dataclass(frozen=True, slots=True)
class CreditTransfer:
    """One ``CdtTrfTxInf`` of a pacs.008 (customer) or pacs.009 (institution) credit transfer.

    In pacs.008 the debtor and creditor are ``Party``; in pacs.009 they are ``Agent``. Group-level
    settlement date and instructing/instructed agents are copied down when a transaction has none.
    """

    end_to_end_id: str
    settlement_amount_minor: int
    settlement_currency: str
    debtor: Party | Agent
    creditor: Party | Agent
    instruction_id: str | None = None
    transaction_id: str | None = None
    uetr: str | None = None
    settlement_date: dt.date | None = None
    # ``SttlmPrty`` (URGT, HIGH, NORM), else the transaction's ``PmtTpInf/InstrPrty`` (HIGH,
    # NORM): how urgently the instructing agent wants it settled. Written as ``SttlmPrty``.
    settlement_priority: str | None = None
    instructed_amount_minor: int | None = None
    instructed_currency: str | None = None
    exchange_rate: Decimal | None = None
    charge_bearer: str | None = None
    instructing_agent: Agent | None = None
    instructed_agent: Agent | None = None
    intermediary_agents: tuple[Agent, ...] = ()
    debtor_account: Account | None = None
    debtor_agent: Agent | None = None
    creditor_agent: Agent | None = None
    creditor_account: Account | None = None
    creditor_agent_instructions: tuple[CreditorAgentInstruction, ...] = ()
    purpose_code: str | None = None
    purpose_proprietary: str | None = None
    remittance_lines: tuple[str, ...] = ()
    underlying: UnderlyingCustomerTransfer | None = None


@dataclass(frozen=True, slots=True)
class CreditTransferMessage:
    """A pacs.008 or pacs.009 message: header values and one item per transaction, in order.

    ``items`` holds a ``CreditTransfer`` for each accepted transaction and a
    ``TransactionRejection`` for each rejected one. A group-level problem (e.g. settlement
    method COVE) sets ``group_rejection`` and rejects every transaction with the same reason.
    """

    definition: MessageDefinition
    message_id: str
    created_at: dt.datetime
    number_of_transactions: int
    settlement_method: str
    items: tuple[CreditTransfer | TransactionRejection, ...]
    app_header: AppHeader | None = None
    clearing_system: str | None = None
    group_rejection: Rejection | None = None
    warnings: tuple[str, ...] = ()

    @property
    def transfers(self) -> tuple[CreditTransfer, ...]:
        return tuple(item for item in self.items if isinstance(item, CreditTransfer))

    @property
    def rejections(self) -> tuple[TransactionRejection, ...]:
        return tuple(item for item in self.items if isinstance(item, TransactionRejection))


@dataclass(frozen=True, slots=True)
class ReasonInfo:
    """A status or return reason: an external code (or proprietary text) and narrative lines."""

    code: str | None = None
    proprietary: str | None = None
    additional_info: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ReturnChain:
    """``RtrChain``: the parties of the original payment, as the return travels back."""

    debtor: Party | Agent | None = None
    debtor_account: Account | None = None
    debtor_agent: Agent | None = None
    creditor_agent: Agent | None = None
    creditor: Party | Agent | None = None
    creditor_account: Account | None = None


@dataclass(frozen=True, slots=True)
class PaymentReturn:
    """One ``TxInf`` of a pacs.004 payment return.

    ``original_message_*`` come from the transaction's ``OrgnlGrpInf`` or, if absent, the
    message-level one.
    """

    returned_amount_minor: int
    returned_currency: str
    return_id: str | None = None
    original_message_id: str | None = None
    original_definition: str | None = None
    original_created_at: dt.datetime | None = None
    original_instruction_id: str | None = None
    original_end_to_end_id: str | None = None
    original_transaction_id: str | None = None
    original_uetr: str | None = None
    original_settlement_amount_minor: int | None = None
    original_settlement_currency: str | None = None
    original_settlement_date: dt.date | None = None
    settlement_date: dt.date | None = None
    returned_instructed_amount_minor: int | None = None
    returned_instructed_currency: str | None = None
    charge_bearer: str | None = None
    instructing_agent: Agent | None = None
    instructed_agent: Agent | None = None
    chain: ReturnChain | None = None
    reasons: tuple[ReasonInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class PaymentReturnMessage:
    """A pacs.004 message; ``items`` as in ``CreditTransferMessage``."""

    definition: MessageDefinition
    message_id: str
    created_at: dt.datetime
    number_of_transactions: int
    settlement_method: str
    items: tuple[PaymentReturn | TransactionRejection, ...]
    app_header: AppHeader | None = None
    clearing_system: str | None = None
    group_rejection: Rejection | None = None
    warnings: tuple[str, ...] = ()

    @property
    def returns(self) -> tuple[PaymentReturn, ...]:
        return tuple(item for item in self.items if isinstance(item, PaymentReturn))

    @property
    def rejections(self) -> tuple[TransactionRejection, ...]:
        return tuple(item for item in self.items if isinstance(item, TransactionRejection))


@dataclass(frozen=True, slots=True)
class OriginalGroupStatus:
    """``OrgnlGrpInfAndSts``: the status of a whole original message."""

    original_message_id: str
    original_definition: str
    original_created_at: dt.datetime | None = None
    original_number_of_transactions: int | None = None
    group_status: str | None = None
    reasons: tuple[ReasonInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class TransactionStatus:
    """``TxInfAndSts``: the status of one original transaction."""

    status: str | None = None
    reasons: tuple[ReasonInfo, ...] = ()
    status_id: str | None = None
    original_message_id: str | None = None
    original_definition: str | None = None
    original_created_at: dt.datetime | None = None
    original_instruction_id: str | None = None
    original_end_to_end_id: str | None = None
    original_transaction_id: str | None = None
    original_uetr: str | None = None
    accepted_at: dt.datetime | None = None
    effective_settlement_date: dt.date | dt.datetime | None = None
    clearing_system_reference: str | None = None
    instructing_agent: Agent | None = None
    instructed_agent: Agent | None = None
    # ``OrgnlTxRef``: of the original transaction, only the amounts SCO Settle reports once it
    # settled: ``IntrBkSttlmAmt`` (delivered to the creditor agent) and ``Amt/InstdAmt`` (debited
    # from the debtor agent). Written, not yet read back (the reader skips ``OrgnlTxRef``).
    original_settlement_amount_minor: int | None = None
    original_settlement_currency: str | None = None
    original_instructed_amount_minor: int | None = None
    original_instructed_currency: str | None = None


@dataclass(frozen=True, slots=True)
class StatusReport:
    """A pacs.002 FI-to-FI payment status report."""

    definition: MessageDefinition
    message_id: str
    created_at: dt.datetime
    original_groups: tuple[OriginalGroupStatus, ...] = ()
    transactions: tuple[TransactionStatus, ...] = ()
    instructing_agent: Agent | None = None
    instructed_agent: Agent | None = None
    app_header: AppHeader | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BankTransactionCode:
    """``BkTxCd``: ISO domain/family/sub-family codes and/or a proprietary code."""

    domain: str | None = None
    family: str | None = None
    sub_family: str | None = None
    proprietary_code: str | None = None
    proprietary_issuer: str | None = None


@dataclass(frozen=True, slots=True)
class EntryDetail:
    """``NtryDtls/TxDtls``: references and amount of one transaction booked in an entry."""

    message_id: str | None = None
    account_servicer_reference: str | None = None
    instruction_id: str | None = None
    end_to_end_id: str | None = None
    uetr: str | None = None
    transaction_id: str | None = None
    clearing_system_reference: str | None = None
    amount_minor: int | None = None
    currency: str | None = None
    credit_debit: str | None = None
    remittance_lines: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Entry:
    """``Ntry``: one booking (or pending/information entry) on the account.

    ``amount_minor`` is not negative; ``credit_debit`` ("CRDT"/"DBIT") gives the direction.
    ``booked_at`` / ``value_at`` are a ``date`` or a ``datetime`` as the sender chose.
    """

    amount_minor: int
    currency: str
    credit_debit: str
    status: str | None = "BOOK"
    status_proprietary: str | None = None
    bank_transaction_code: BankTransactionCode = field(default_factory=BankTransactionCode)
    booked_at: dt.date | dt.datetime | None = None
    value_at: dt.date | dt.datetime | None = None
    entry_reference: str | None = None
    account_servicer_reference: str | None = None
    reversal: bool | None = None
    details: tuple[EntryDetail, ...] = ()
    additional_info: str | None = None


@dataclass(frozen=True, slots=True)
class Balance:
    """``Bal``: a balance of a type (OPBD, CLBD, ITBD...), signed: credit > 0 > debit."""

    type_code: str | None
    amount_minor: int
    currency: str
    date: dt.date | dt.datetime
    type_proprietary: str | None = None


@dataclass(frozen=True, slots=True)
class AccountReport:
    """One ``Stmt`` (camt.053) or ``Ntfctn`` (camt.054) for one account."""

    report_id: str
    account: Account
    account_currency: str | None = None
    account_owner: Party | None = None
    account_servicer: Agent | None = None
    created_at: dt.datetime | None = None
    from_time: dt.datetime | None = None
    to_time: dt.datetime | None = None
    page_number: int | None = None
    last_page: bool | None = None
    electronic_sequence_number: int | None = None
    legal_sequence_number: int | None = None
    balances: tuple[Balance, ...] = ()
    entries: tuple[Entry, ...] = ()
    additional_info: str | None = None


@dataclass(frozen=True, slots=True)
class CashReportMessage:
    """A camt.053 bank-to-customer statement or camt.054 debit/credit notification."""

    definition: MessageDefinition
    message_id: str
    created_at: dt.datetime
    reports: tuple[AccountReport, ...]
    app_header: AppHeader | None = None
    warnings: tuple[str, ...] = ()

    @property
    def is_statement(self) -> bool:
        return family(self.definition) == "camt.053"


Message = CreditTransferMessage | PaymentReturnMessage | StatusReport | CashReportMessage
