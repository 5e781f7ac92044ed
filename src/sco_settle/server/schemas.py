"""The API's request and response shapes, for validation and for the OpenAPI document.

Money is always an integer number of minor units (``*_minor``, or ``amount`` in the ledger's
JSON-lines codec) with its ISO 4217 currency; ids of 128 bits are decimal strings. Responses
are rendered by the routes themselves (for speed); these models document them, and the tests
check every response against the OpenAPI document built from them.

Request integers are strict (``StrictInt``): a JSON integer, never ``true``, ``1000.0`` or
``"100"``, which lax validation would turn into 1, 1000 and 100.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt

from sco_settle.domain.results import CreateTransferResult
from sco_settle.ledger.jsonl import AMOUNT_FIELD, CODE_FIELD, DIGITS_MAX, ID_FIELD, TIMEOUT_FIELD
from sco_settle.ledger.state_machine import BATCH_EVENTS_MAX, REF_LENGTH_MAX
from sco_settle.payments.model import PaymentStatus, Priority
from sco_settle.payments.routing import EdgeKind, ExclusionReason, RouteStatus
from sco_settle.server.keys import KeyStatus, Role

Bic = Annotated[str, Field(pattern=r"^[A-Z0-9]{8}([A-Z0-9]{3})?$", examples=["BKCHCNBJ"])]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["CNY"])]
MinorAmount = Annotated[StrictInt, Field(ge=0, le=2**63 - 1)]
Cursor = str | None
TransferFlag = Literal["linked", "pending", "post_pending", "void_pending"]
_Decimal = Annotated[str, Field(pattern=rf"^[0-9]{{1,{DIGITS_MAX}}}$")]


# JSON-lines codec integer fields: an integer or a decimal string (``ledger/jsonl.py`` is the rule;
# these document it). Spelled out as type aliases, not built by a function, so type checkers see
# them as types (``int | str``).


def _codec_doc(description: str, limit: tuple[int, str]) -> Any:
    return Field(description=f"{description}: an integer or a decimal string, 0 .. {limit[1]}")


IdValue = Annotated[
    Annotated[StrictInt, Field(ge=0, le=ID_FIELD[0])] | _Decimal,
    _codec_doc("128-bit id", ID_FIELD),
]
AmountValue = Annotated[
    Annotated[StrictInt, Field(ge=0, le=AMOUNT_FIELD[0])] | _Decimal,
    _codec_doc("Minor units", AMOUNT_FIELD),
]
TimeoutValue = Annotated[
    Annotated[StrictInt, Field(ge=0, le=TIMEOUT_FIELD[0])] | _Decimal,
    _codec_doc("Seconds; only for pending transfers", TIMEOUT_FIELD),
]
CodeValue = Annotated[
    Annotated[StrictInt, Field(ge=0, le=CODE_FIELD[0])] | _Decimal,
    _codec_doc("User code", CODE_FIELD),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ValidationItem(_Model):
    loc: str
    message: str


class Problem(_Model):
    """RFC 9457 problem details."""

    type: str = Field(examples=["urn:sco-settle:problem:account_not_found"])
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable machine-readable code; see docs/api.md")
    request_id: str
    errors: list[ValidationItem] | None = None
    reason: str | None = Field(
        None,
        description="An ISO 20022 reason code (fx_quote_refused) or a refusal's own code"
        " (swap_line_refused: agreement_lapsed, exceeds_agreed_size, ...)",
    )
    reason_text: str | None = None


class Health(_Model):
    status: Literal["ok", "failed"]
    mode: str
    accounts: int
    last_timestamp: int
    queue_depth: int


class Participant(_Model):
    bic: Bic
    name: str
    kind: str
    country: str
    home_currency: Currency
    currencies: list[Currency]
    settles: list[Currency] = Field(description="Currencies this central bank issues and settles")


class ParticipantPage(_Model):
    items: list[Participant]
    next_cursor: Cursor


class Account(_Model):
    id: str
    ref: str = Field(description="The account's key, e.g. settlement:BKCHCNBJ:CNY")
    participant: Bic
    currency: Currency
    kind: str
    flags: list[str]
    credit_limit: int
    code: int
    timestamp: int
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int
    balance_posted_minor: int = Field(description="credits_posted - debits_posted")
    available_minor: int = Field(description="credits_posted - debits_posted - debits_pending")


class AccountPage(_Model):
    items: list[Account]
    next_cursor: Cursor


class Transfer(_Model):
    id: str
    debit_account: str
    credit_account: str
    amount: int
    flags: list[TransferFlag]
    pending_id: str
    timeout: int
    code: int
    ref: str
    timestamp: int
    currency: str


class TransferPage(_Model):
    items: list[Transfer]
    next_cursor: Cursor


class StatementEntry(_Model):
    transfer_id: str
    amount_minor: int
    credit_debit: Literal["CRDT", "DBIT"]
    booked_at: int = Field(description="Ledger timestamp, ns since the Unix epoch")
    counterparty_account: str
    code: int
    ref: str
    kind: Literal["payment", "swap_draw", "lsm", "netting", "return", "transfer"] = Field(
        description="What moved the money: a payment engine transfer's purpose, else transfer"
    )
    payment_ref: str | None = Field(
        description="The settled payment's reference (end-to-end id or payment id), where the"
        " transfer carries it"
    )


class Statement(_Model):
    account_id: str
    account_ref: str
    currency: Currency
    date: str
    opening_balance_minor: int = Field(description="The day's opening booked balance")
    closing_balance_minor: int = Field(description="The day's closing booked balance")
    page: int = Field(description="This page, from 1")
    last_page: bool
    entries_max: int = Field(description="Entries per page at most")
    entries_count: int = Field(description="The day's entries, on all pages")
    page_opening_balance_minor: int = Field(description="The balance before this page's entries")
    page_closing_balance_minor: int = Field(description="The balance after this page's entries")
    entries: list[StatementEntry]


class TransferIn(_Model):
    """One transfer, with the field names of the JSON-lines codec (``ledger/jsonl.py``)."""

    id: IdValue
    debit_account: IdValue = 0
    credit_account: IdValue = 0
    amount: AmountValue = 0
    flags: list[TransferFlag] = []
    pending_id: IdValue = 0
    timeout: TimeoutValue = 0
    code: CodeValue = 0
    ref: str = Field("", max_length=REF_LENGTH_MAX)


class TransferBatch(_Model):
    transfers: list[TransferIn] = Field(max_length=BATCH_EVENTS_MAX)


class TransferResult(_Model):
    index: int
    result: CreateTransferResult


class TransferBatchResults(_Model):
    results: list[TransferResult]


class Party(_Model):
    # Frozen, so the default instance of ``PaymentIn.debtor``/``creditor`` is shared instead of
    # deep-copied for every payment (pydantic copies unhashable defaults): validating a batch of
    # 1,000 payments took 26 ms of the event loop's time, 3 ms now.
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("", max_length=140)
    account: str = Field("", max_length=34, description="IBAN or other account identifier")


class PaymentIn(_Model):
    instruction_id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:+-]{0,63}$",
        description="Unique among the debtor agent's payments; the payment's id is"
        " <debtor_agent>:<instruction_id>, and resubmitting it returns the first outcome",
    )
    debtor_agent: Bic | None = Field(None, description="Default: the caller's participant")
    creditor_agent: Bic
    amount_minor: MinorAmount = Field(
        description="The fixed amount, in minor units: of currency (amount_type send) or of"
        " creditor_currency (amount_type receive)"
    )
    currency: Currency = Field(description="The currency the debtor agent pays in")
    creditor_currency: Currency | None = Field(None, description="Default: currency")
    settle_from: AwareDatetime | None = Field(
        None, description="Not settled before this time (a timed payment; waits until then)"
    )
    settle_till: AwareDatetime | None = Field(
        None, description="Rejected (TM01) if not settled by this time; DT01 if already past"
    )
    amount_type: Literal["send", "receive"] = Field(
        "send",
        description="send: the debtor agent pays exactly amount_minor; receive: the creditor"
        " agent receives exactly amount_minor, and the debtor agent pays what it costs",
    )
    debtor: Party = Party()
    creditor: Party = Party()
    end_to_end_id: str = Field("", max_length=35)
    uetr: str = Field("", max_length=36)
    remittance_info: str = Field("", max_length=140)
    priority: Priority = Priority.NORMAL
    fx_quote_id: str = Field(
        "",
        max_length=128,
        description="A firm FX quote the debtor agent took (POST /v1/fx-quotes): the payment"
        " settles exactly at its amounts and rates or is rejected (never queued); its"
        " creditor agent, currencies, amount type and fixed amount must be the quote's",
    )


class PaymentChange(_Model):
    priority: Priority = Field(
        description="The waiting payment's new priority; it keeps its place in arrival order"
    )


class PaymentReturnIn(_Model):
    return_id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:+-]{0,34}$",
        description="Unique among the returning agent's returns of this payment (a pacs.004's"
        " RtrId): resubmitting it answers its first outcome",
    )
    amount_minor: MinorAmount | None = Field(
        None,
        description="In the currency the caller received; default: all that is left to return",
    )
    reason: str = Field("NARR", pattern=r"^[A-Z0-9]{4}$", description="ISO 20022 return reason")


PAYMENT_BATCH_MAX = 1000


class PaymentBatchIn(_Model):
    payments: list[PaymentIn] = Field(
        min_length=1,
        max_length=PAYMENT_BATCH_MAX,
        description="Settled together where liquidity allows (one ledger commit); each payment"
        " keeps its own all-or-nothing chain and its own outcome",
    )


class PaymentOutcome(_Model):
    payment_id: str
    status: PaymentStatus
    reason: str | None = Field(description="ISO 20022 status reason code, e.g. AM04")
    reason_text: str
    amount_delivered_minor: int
    amount_sent_minor: int = Field(
        description="Debited from the debtor agent, in the payment's currency; 0: not known"
    )
    amount_returned_minor: int = Field(
        description="Paid back by settled returns, in the creditor currency (a return is a"
        " payment of its own, from the creditor agent back to the debtor agent)"
    )
    applied_rate: str | None = Field(
        None,
        description="Units of the creditor currency per unit of the payment's currency, as"
        " settled: only for a payment settled or returned across two currencies",
    )
    route: list[str]
    transfer_ids: list[str]
    settled_at: int
    duplicate: bool


class PaymentInstruction(BaseModel):
    debtor_agent: str
    creditor_agent: str
    amount_minor: int
    currency: str
    creditor_currency: str
    debtor: Party
    creditor: Party
    end_to_end_id: str
    uetr: str
    remittance_info: str
    priority: str
    amount_type: str = "send"
    instructed_minor: int = 0
    exchange_rate: str = ""


class PaymentEvent(_Model):
    status: str
    at: int
    detail: str


class PaymentSummary(_Model):
    payment_id: str
    status: PaymentStatus
    reason: str | None
    reason_text: str
    amount_delivered_minor: int
    amount_sent_minor: int = Field(
        description="Debited from the debtor agent, in the payment's currency; 0: not known"
    )
    amount_returned_minor: int = Field(
        description="Paid back by settled returns, in the creditor currency (a return is a"
        " payment of its own, from the creditor agent back to the debtor agent)"
    )
    applied_rate: str | None = Field(
        None,
        description="Units of the creditor currency per unit of the payment's currency, as"
        " settled: only for a payment settled or returned across two currencies",
    )
    route: list[str]
    transfer_ids: list[str]
    settled_at: int
    received_at: int
    instruction: PaymentInstruction


class PaymentDetail(PaymentSummary):
    events: list[PaymentEvent]


class PaymentPage(_Model):
    items: list[PaymentSummary]
    next_cursor: Cursor


class QuoteIn(_Model):
    debtor_agent: Bic | None = Field(None, description="Default: the caller's participant")
    creditor_agent: Bic
    amount_minor: Annotated[StrictInt, Field(ge=1, le=2**63 - 1)]
    currency: Currency
    creditor_currency: Currency | None = None
    routes_max: Annotated[StrictInt, Field(ge=1, le=5)] = 3


class Leg(_Model):
    source: str
    target: str
    kind: EdgeKind
    amount_minor: int
    converted_minor: int
    fee_minor: int
    rate_provider: str | None
    uses_credit: bool | None = Field(
        description="The leg draws on intraday credit; null on another participant's edge"
    )


class Route(_Model):
    nodes: list[str]
    legs: list[Leg]
    cost_minor: int
    fees_minor: int
    spread_minor: int
    hop_charges_minor: int
    hops: int
    amount_delivered_minor: int


class Exclusion(_Model):
    path: list[str]
    kind: EdgeKind
    reason: ExclusionReason
    amount_minor: int
    available_minor: int | None = Field(
        description="The edge's capacity if the caller may see it (its own edge; the network"
        " operator and auditors: every edge), else null"
    )
    currency: str


class Quote(_Model):
    status: RouteStatus
    cost_currency: str
    routes: list[Route]
    exclusions: list[Exclusion]
    exclusions_dropped: int
    exclusions_withheld: int = Field(
        description="Exclusions for lack of liquidity on other participants' edges: counted,"
        " not listed"
    )


class CycleIn(_Model):
    currency: Currency | None = Field(
        None,
        description="Only payments entirely in this currency; required for a currency"
        " operator, optional (all currencies) for the network operator",
    )


class Cycle(_Model):
    cycle_id: int
    kind: Literal["dns", "lsm", "union"]
    currencies: list[str] | None
    requested_by: str
    started_at: int
    finished_at: int
    settled: int
    deferred: int
    rejected: int
    gross_minor: dict[str, int]
    net_minor: dict[str, int]


class CyclePage(_Model):
    items: list[Cycle]
    next_cursor: Cursor


class Corridor(_Model):
    corridor: str
    debtor_country: str
    creditor_country: str
    currency: str
    creditor_currency: str
    payments: int
    settled_count: int
    queued_count: int
    rejected_count: int
    returned_count: int
    settled_value_minor: int
    delivered_value_minor: int


class CorridorPage(_Model):
    items: list[Corridor]
    next_cursor: Cursor


class KeyCreate(_Model):
    participant: Bic
    role: Role
    label: str = Field("", max_length=100)


class KeyRotate(_Model):
    grace_seconds: Annotated[StrictInt, Field(ge=0, le=30 * 24 * 3600)] = 24 * 3600


class ApiKey(_Model):
    key_id: str
    participant: str
    role: Role
    label: str
    status: KeyStatus
    created_at: int
    expires_at: int | None
    revoked_at: int | None
    rotated_from: str | None
    rotated_to: str | None


class IssuedKey(_Model):
    key: ApiKey
    api_key: str = Field(
        description="scos_<key id>_<secret>, shown once (empty in an idempotent replay)"
    )
    signing_secret: str = Field(
        description="The HMAC request-signing secret, shown once (empty in a replay)"
    )


class KeyPage(_Model):
    items: list[ApiKey]
    next_cursor: Cursor


class PaymentBatchOut(_Model):
    outcomes: list[PaymentOutcome] = Field(description="One outcome per payment, in order")


class FxQuoteIn(_Model):
    debtor_agent: Bic | None = Field(None, description="Default: the caller's participant")
    creditor_agent: Bic
    amount_minor: Annotated[StrictInt, Field(ge=1, le=2**63 - 1)] = Field(
        description="The fixed amount, in minor units: of currency (amount_type send) or of"
        " creditor_currency (amount_type receive)"
    )
    currency: Currency = Field(description="The currency the debtor agent pays in")
    creditor_currency: Currency
    amount_type: Literal["send", "receive"] = "send"
    charge_bearer: Literal["DEBT", "CRED", "SHAR"] = Field(
        "SHAR",
        description="ISO 20022 ChrgBr. DEBT: the creditor receives the fixed amount in full and"
        " the debtor pays every charge (amount_type must be receive); CRED: the debtor pays the"
        " fixed amount and charges come off what the creditor receives (amount_type must be"
        " send); SHAR: each side its own agent's charges",
    )
    validity_seconds: int = Field(60, ge=1, le=600, description="How long the quote is firm")
    reference: str = Field("", max_length=140, description="Carried on the settling transfers")


class FxQuoteCharge(_Model):
    agent: str
    amount_minor: int
    currency: str
    borne_by: Literal["debtor", "creditor"]


class FxQuoteConversion(_Model):
    provider: str
    from_currency: str
    to_currency: str
    amount_minor: int
    converted_minor: int
    rate: str = Field(description="Quote-currency units per base-currency unit, as quoted")
    side: Literal["bid", "ask"]
    rate_provider: str


class FxQuoteHold(_Model):
    owner: str
    currency: str
    amount_minor: int


class FxQuoteOut(_Model):
    quote_id: str
    status: Literal["open", "used", "expired"]
    debtor_agent: str
    creditor_agent: str
    currency: str
    creditor_currency: str
    amount_type: Literal["send", "receive"]
    charge_bearer: Literal["DEBT", "CRED", "SHAR"]
    send_minor: int
    receive_minor: int
    charges: list[FxQuoteCharge]
    conversions: list[FxQuoteConversion]
    route: list[str]
    holds: list[FxQuoteHold]
    created_at: str
    expires_at: str
