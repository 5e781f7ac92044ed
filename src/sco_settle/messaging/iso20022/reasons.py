"""ISO 20022 status and reason codes used by SCO Settle.

Reason codes come from the external code list ``ExternalStatusReason1Code`` (iso20022.org external
code sets); each member below documents the official name and definition, and why we use it. The
list is not the whole ISO list: only what this system emits. Incoming messages may carry any code,
so models hold codes as plain strings.
"""

from __future__ import annotations

import enum


class StatusReason(enum.StrEnum):
    """Reasons SCO Settle gives when it rejects a message or a transaction."""

    # Whole-message format problems.
    FF01 = "FF01"  # InvalidFileFormat: "File Format incomplete or invalid".
    FF02 = "FF02"  # SyntaxError: "Syntax error reason is provided as narrative information in the
    # additional reason information." Used for XSD violations, with the first error as narrative.

    # Amounts and currencies.
    AM01 = "AM01"  # ZeroAmount: "Specified message amount is equal to zero".
    AM02 = "AM02"  # NotAllowedAmount: "Specific transaction/message amount is greater than allowed
    # maximum". Used above domain.money.AMOUNT_MAX (2**63-1 minor units).
    AM03 = "AM03"  # NotAllowedCurrency: "Specified message amount is an non processable currency
    # outside of existing agreement". A real ISO 4217 currency the network does not settle.
    AM11 = "AM11"  # InvalidTransactionCurrency: "Transaction currency is invalid or missing".
    # A code that is not a current ISO 4217 currency with minor units (e.g. "XYZ", "XAU").
    AM12 = "AM12"  # InvalidAmount: "Amount is invalid or missing". Other unusable amounts.
    CH20 = "CH20"  # DecimalPointsNotCompatibleWithCurrency: "Number of decimal points not
    # compatible with the currency". More fraction digits than ISO 4217 allows (JPY 1.5): the more
    # precise code than AM12, so status-report readers know exactly what to fix.
    AM16 = "AM16"  # InvalidGroupControlSum: "Control Sum at the Group level is invalid".
    # GrpHdr/CtrlSum or TtlIntrBkSttlmAmt differs from the sum of the transactions.
    AM19 = "AM19"  # InvalidNumberOfTransactionsAtGroupLevel: "Number of transactions at the Group
    # level is invalid or missing". GrpHdr/NbOfTxs differs from the transactions present.

    # Unsupported features.
    AG03 = "AG03"  # TransactionNotSupported: "Transaction type not supported/authorized on this
    # account". Settlement method COVE or reimbursement agents (the network settles only on its
    # own books: CLRG, INDA, INGA), a cheque (InstrForCdtrAgt CHQB).

    # Identifiers.
    RC03 = "RC03"  # InvalidDebtorBankIdentifier: "Debtor bank identifier is invalid or missing".
    RC04 = (
        "RC04"  # InvalidCreditorBankIdentifier: "Creditor bank identifier is invalid or missing".
    )
    RC05 = "RC05"  # InvalidBICIdentifier: "BIC identifier is invalid or missing" (other agents).
    RC06 = "RC06"  # InvalidDebtorBICIdentifier: "Debtor BIC identifier is invalid or missing".
    RC07 = "RC07"  # InvalidCreditorBICIdentifier: "Creditor BIC identifier is invalid or missing".
    RC11 = "RC11"  # InvalidIntermediaryAgent: "Intermediary Agent is invalid or missing".
    DU05 = "DU05"  # DuplicateInstructionID: "Instruction ID is not unique." (within the message).
    RF01 = "RF01"  # NotUniqueTransactionReference: "Transaction reference is not unique within the
    # message." A repeated UETR or transaction id.

    # Dates.
    DT01 = "DT01"  # InvalidDate: "Invalid date (eg, wrong or missing settlement date)".
    DT02 = "DT02"  # InvalidCreationDate: "Invalid creation date and time in Group Header".


class StatusCode(enum.StrEnum):
    """``ExternalPaymentTransactionStatus1Code`` / ``ExternalPaymentGroupStatus1Code`` values."""

    RCVD = "RCVD"  # Received.
    ACTC = "ACTC"  # AcceptedTechnicalValidation.
    ACCP = "ACCP"  # AcceptedCustomerProfile.
    ACSP = "ACSP"  # AcceptedSettlementInProcess.
    ACSC = "ACSC"  # AcceptedSettlementCompleted.
    ACCC = "ACCC"  # AcceptedCreditSettlementCompleted.
    ACWC = "ACWC"  # AcceptedWithChange.
    PDNG = "PDNG"  # Pending.
    PART = "PART"  # PartiallyAccepted (group status only).
    RJCT = "RJCT"  # Rejected.
    BLCK = "BLCK"  # Blocked.
    CANC = "CANC"  # Cancelled.


class SettlementMethod(enum.StrEnum):
    """``SettlementMethod1Code``."""

    INDA = "INDA"  # On the books of the instructed agent.
    INGA = "INGA"  # On the books of the instructing agent.
    COVE = "COVE"  # Through a cover payment (a separate pacs.009 COV via correspondents).
    CLRG = "CLRG"  # Through a clearing system.


SETTLEMENT_METHODS_SUPPORTED = frozenset(
    {SettlementMethod.CLRG, SettlementMethod.INDA, SettlementMethod.INGA}
)
