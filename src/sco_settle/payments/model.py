"""Payments: the business instruction, its life, and the ISO 20022 reasons for its outcomes.

A payment is what a bank asks for ("pay 5,000,000.00 KZT from Halyk's customer to ICBC Urumqi's
customer, who receives CNY"); the ledger sees only the transfers a payment turns into. Names follow
the glossary: a *transfer* moves one amount in one currency; a *payment* produces a linked chain of
transfers; *settlement* is the moment that chain is applied.

Life of a payment (each step is journalled with its time):

    received -> validated -> screened -> routed -> settled
                    |            |          |  \\-> queued -> settled | rejected (timeout)
                    \\-----------+----------+----> rejected
    settled -> returned (a pacs.004 return moves the money back)
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

    @property
    def final(self) -> bool:
        return self in (PaymentStatus.SETTLED, PaymentStatus.REJECTED, PaymentStatus.RETURNED)


class Priority(enum.StrEnum):
    URGENT = "urgent"
    NORMAL = "normal"


class Reason(enum.StrEnum):
    """ISO 20022 ExternalStatusReason1Code values the pipeline answers with."""

    AM01 = "AM01"  # ZeroAmount
    AM02 = "AM02"  # NotAllowedAmount (over the maximum)
    AM03 = "AM03"  # NotAllowedCurrency (no settlement in that currency)
    AM04 = "AM04"  # InsufficientFunds
    AM09 = "AM09"  # WrongAmount
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
    amount_minor: int  # instructed amount, in minor units of ``currency``
    currency: str
    creditor_currency: str  # the currency the creditor is to receive
    debtor: Party = field(default_factory=lambda: Party(""))
    creditor: Party = field(default_factory=lambda: Party(""))
    end_to_end_id: str = ""
    uetr: str = ""
    remittance_info: str = ""
    priority: Priority = Priority.NORMAL


@dataclass(frozen=True, slots=True)
class PaymentOutcome:
    """Where a payment stands, as the submitter is told."""

    payment_id: str
    status: PaymentStatus
    reason: Reason | None = None
    reason_text: str = ""
    amount_delivered_minor: int = 0  # in creditor_currency, once settled
    route: tuple[str, ...] = ()  # nodes "BIC/CCY" the payment travelled through
    transfer_ids: tuple[int, ...] = ()
    settled_at: int = 0  # ledger timestamp (ns) of the settling chain's last transfer
    duplicate: bool = False  # this answer is a resubmission's: the first outcome, unchanged


@dataclass(frozen=True, slots=True)
class ReturnOutcome:
    """The answer to a return request: made (``payment`` is then the returned payment) or
    refused with an ISO 20022 reason (the payment, if any, is untouched and not shown: for
    anyone but its creditor agent it does not exist)."""

    payment_id: str
    accepted: bool
    reason: Reason | None = None
    reason_text: str = ""
    payment: PaymentOutcome | None = None


class PaymentRejected(Exception):
    def __init__(self, reason: Reason, text: str = "") -> None:
        super().__init__(f"{reason.value}: {text or REASON_TEXT[reason]}")
        self.reason = reason
        self.text = text or REASON_TEXT[reason]
