"""Payments: the business instruction, its life, and the ISO 20022 reasons for its outcomes.

A payment is what a bank asks for ("pay 5,000,000.00 KZT from Halyk's customer to ICBC Urumqi's
customer, who receives CNY"); the ledger sees only the transfers a payment turns into. Names follow
the glossary: a *transfer* moves one amount in one currency; a *payment* produces a linked chain of
transfers; *settlement* is the moment that chain is applied.

Life of a payment (each step is journalled with its time):

    received -> validated -> screened -> routed -> settled
                    |            |          |  \\-> queued -> settled | rejected (timeout)
                    \\-----------+----------+----> rejected
    settled -> returned (settled returns, new payments back, paid all of it back; a partial
                         return keeps it settled and counts ``amount_returned_minor``)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class PaymentStatus(enum.StrEnum):
    RECEIVED = "received"
    VALIDATED = "validated"
    SCREENED = "screened"
    ROUTED = "routed"
    QUEUED = "queued"
    SETTLED = "settled"
    REJECTED = "rejected"
    RETURNED = "returned"
    CANCELLED = "cancelled"  # by its debtor agent while it waited (ISO 20022 CANC)

    @property
    def final(self) -> bool:
        return self in (
            PaymentStatus.SETTLED,
            PaymentStatus.REJECTED,
            PaymentStatus.RETURNED,
            PaymentStatus.CANCELLED,
        )


class Priority(enum.StrEnum):
    URGENT = "urgent"
    NORMAL = "normal"


class AmountType(enum.StrEnum):
    """Which side of a payment's amount is fixed (Mojaloop's ``amountType``).

    ``SEND``: the debtor agent pays exactly ``amount_minor`` of ``currency``; the creditor agent
    receives what that converts to. ``RECEIVE``: the creditor agent receives exactly
    ``amount_minor`` of ``creditor_currency`` (a pacs.008's ``IntrBkSttlmAmt``: how a CNY
    invoice is paid); the debtor agent pays what that costs. Equal in one currency.
    """

    SEND = "send"
    RECEIVE = "receive"


class Reason(enum.StrEnum):
    """ISO 20022 ExternalStatusReason1Code values the pipeline answers with."""

    AM01 = "AM01"  # ZeroAmount
    AM02 = "AM02"  # NotAllowedAmount (over the maximum)
    AM03 = "AM03"  # NotAllowedCurrency (no settlement in that currency)
    AM04 = "AM04"  # InsufficientFunds
    AM09 = "AM09"  # WrongAmount
    DT01 = "DT01"  # InvalidDate (a settlement date or latest settlement time already past)
    AM11 = "AM11"  # InvalidTransactionCurrency
    AC01 = "AC01"  # IncorrectAccountNumber
    AC03 = "AC03"  # InvalidCreditorAccountNumber
    AC04 = "AC04"  # ClosedAccountNumber
    AC06 = "AC06"  # BlockedAccount
    AG01 = "AG01"  # TransactionForbidden
    AG03 = "AG03"  # TransactionNotSupported
    RC01 = "RC01"  # BankIdentifierIncorrect
    RC03 = "RC03"  # InvalidDebtorBankIdentifier
    RC04 = "RC04"  # InvalidCreditorBankIdentifier
    RR04 = "RR04"  # RegulatoryReason (screening)
    DUPL = "DUPL"  # DuplicatePayment
    FF01 = "FF01"  # InvalidFileFormat
    CURR = "CURR"  # IncorrectCurrency
    NARR = "NARR"  # Narrative (see the text)
    TM01 = "TM01"  # InvalidCutOffTime (queue timeout: not settled in time)
    CNOR = "CNOR"  # CreditorBankIsNotRegistered (no route to the creditor agent)
    DNOR = "DNOR"  # DebtorBankIsNotRegistered


REASON_TEXT: dict[Reason, str] = {
    Reason.AM01: "amount is zero",
    Reason.AM02: "amount exceeds the maximum allowed",
    Reason.AM03: "currency is not settled by the network",
    Reason.AM04: "insufficient funds",
    Reason.AM09: "wrong amount",
    Reason.DT01: "invalid date",
    Reason.AM11: "invalid transaction currency",
    Reason.AC01: "incorrect account number",
    Reason.AC03: "invalid creditor account number",
    Reason.AC04: "closed account",
    Reason.AC06: "blocked account",
    Reason.AG01: "transaction forbidden",
    Reason.AG03: "transaction type not supported",
    Reason.RC01: "bank identifier incorrect",
    Reason.RC03: "invalid debtor agent identifier",
    Reason.RC04: "invalid creditor agent identifier",
    Reason.RR04: "regulatory reason",
    Reason.DUPL: "duplicate payment",
    Reason.FF01: "invalid format",
    Reason.CURR: "incorrect currency",
    Reason.NARR: "see narrative",
    Reason.TM01: "not settled before the queue timeout",
    Reason.CNOR: "creditor agent not reachable in the network",
    Reason.DNOR: "debtor agent not registered in the network",
}


@dataclass(frozen=True, slots=True)
class Party:
    name: str
    account: str = ""  # IBAN or other identifier, as given by the instructing bank


@dataclass(frozen=True, slots=True)
class Payment:
    """A payment instruction. ``payment_id`` is the idempotency key (unique per sender)."""

    payment_id: str
    debtor_agent: str  # BIC
    creditor_agent: str  # BIC
    amount_minor: int  # the fixed amount: in ``currency`` (SEND) or ``creditor_currency`` (RECEIVE)
    currency: str  # the currency the debtor agent pays in
    creditor_currency: str  # the currency the creditor is to receive
    debtor: Party = field(default_factory=lambda: Party(""))
    creditor: Party = field(default_factory=lambda: Party(""))
    end_to_end_id: str = ""
    uetr: str = ""
    remittance_info: str = ""
    priority: Priority = Priority.NORMAL
    amount_type: AmountType = AmountType.SEND
    # RECEIVE only, as the message stated them (0 / "": not stated): what the debtor instructed
    # in ``currency`` (a pacs.008's ``InstdAmt``) and at what rate (``XchgRate``, a decimal
    # string, units of ``creditor_currency`` per unit of ``currency``). The engine refuses a
    # fixed amount that disagrees with them (AM09); they never change what settles.
    instructed_minor: int = 0
    exchange_rate: str = ""
    # A return (pacs.004) is a payment back: the id of the payment it returns ("" otherwise).
    returns: str = ""
    # Timed payment (ledger clock, ns; 0: none): not settled before ``settle_from`` (it waits in
    # the warehouse until then: a future value date) and rejected (TM01) if not settled before
    # ``settle_till`` (refused at once, DT01, when that has already passed: a past value date).
    settle_from: int = 0
    settle_till: int = 0
    # A firm FX quote the debtor agent took (``payments.fx_quotes``): the payment settles exactly
    # at its terms or not at all ("" : priced when it settles).
    fx_quote_id: str = ""

    @property
    def fixed_currency(self) -> str:
        """The currency ``amount_minor`` is in."""
        if self.amount_type is AmountType.RECEIVE:
            return self.creditor_currency
        return self.currency


@dataclass(frozen=True, slots=True)
class PaymentOutcome:
    """Where a payment stands, as the submitter is told."""

    payment_id: str
    status: PaymentStatus
    reason: Reason | None = None
    reason_text: str = ""
    amount_delivered_minor: int = 0  # in creditor_currency, once settled
    amount_sent_minor: int = 0  # in the payment's currency, debited from the debtor agent
    amount_returned_minor: int = 0  # in creditor_currency: what settled returns paid back
    route: tuple[str, ...] = ()  # nodes "BIC/CCY" the payment travelled through
    transfer_ids: tuple[int, ...] = ()
    settled_at: int = 0  # ledger timestamp (ns) of the settling chain's last transfer
    duplicate: bool = False  # this answer is a resubmission's: the first outcome, unchanged

    @property
    def settled_amounts(self) -> bool:
        """Whether the outcome states the amounts that moved (settled or returned)."""
        return self.status in (PaymentStatus.SETTLED, PaymentStatus.RETURNED)


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    """The answer to a request about an existing payment (return it, cancel it, change its
    priority): made (``payment`` is then the outcome of the payment concerned: for a return,
    the return payment's) or refused with an ISO 20022 reason (nothing changed, and a payment
    the caller may not act on is not shown: for the caller it does not exist)."""

    payment_id: str
    accepted: bool
    reason: Reason | None = None
    reason_text: str = ""
    payment: PaymentOutcome | None = None
    exists: bool = True  # False: no such payment (or none the caller may act on)


ReturnOutcome = RequestOutcome


class PaymentRejected(Exception):
    def __init__(self, reason: Reason, text: str = "") -> None:
        super().__init__(f"{reason.value}: {text or REASON_TEXT[reason]}")
        self.reason = reason
        self.text = text or REASON_TEXT[reason]
