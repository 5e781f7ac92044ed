"""Accounts: who holds money in which currency, under which balance constraint.

Guarantees (kept by ``sco_settle.ledger``; see docs/reference/account.md):
- An account's id, participant, currency, kind, flags, credit limit and code never change.
- Balances are four counters, each >= 0 and <= AMOUNT_MAX: debits_pending, debits_posted,
  credits_pending, credits_posted. Only transfers change them.
- With ``DEBITS_MUST_NOT_EXCEED_CREDITS``:
  debits_pending + debits_posted <= credits_posted + credit_limit, after every transfer.
- With ``CREDITS_MUST_NOT_EXCEED_DEBITS``:
  credits_pending + credits_posted <= debits_posted + credit_limit, after every transfer.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import NamedTuple


class AccountFlags(enum.IntFlag):
    NONE = 0
    # This account's creation succeeds or fails together with the next one in the batch.
    LINKED = 1 << 0
    # The usual flag for an asset held by a participant (a settlement account): it cannot be
    # overdrawn beyond its credit limit.
    DEBITS_MUST_NOT_EXCEED_CREDITS = 1 << 1
    # The mirror constraint, for liability-style accounts (a swap line's drawn amount).
    CREDITS_MUST_NOT_EXCEED_DEBITS = 1 << 2
    # Keep a balance snapshot after every transfer, for ``balance_history`` reads.
    HISTORY = 1 << 3


ACCOUNT_FLAG_NAMES: dict[str, AccountFlags] = {
    "linked": AccountFlags.LINKED,
    "debits_must_not_exceed_credits": AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
    "credits_must_not_exceed_debits": AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS,
    "history": AccountFlags.HISTORY,
}


class AccountKind(enum.StrEnum):
    """What the account is for; the ledger treats all kinds alike, routing and reports do not."""

    SETTLEMENT = "settlement"  # a participant's account at its currency's settlement agent
    NOSTRO = "nostro"  # "ours with you": our money held at a correspondent
    VOSTRO = "vostro"  # "yours with us": a correspondent's money we hold
    SWAP_LINE = "swap-line"  # a central bank's drawn position on a bilateral swap line
    FX_POSITION = "fx-position"  # a liquidity provider's position in one currency of a pair
    FX_INCOME = "fx-income"  # an FX provider's spread and rounding in one currency
    SWAP_INTEREST = "swap-interest"  # a central bank's interest income on swap-line tranches
    CUSTOMER = "customer"  # an end customer's account at a bank
    LIQUIDITY = "liquidity"  # a liquidity provider's pool
    ISSUANCE = "issuance"  # a central bank's issuance: the source of its currency in the network
    FEE = "fee"
    SUSPENSE = "suspense"


class Account(NamedTuple):
    """An account as the client creates it; ``timestamp`` is assigned by the ledger."""

    id: int
    participant: str
    currency: str
    kind: str
    flags: int = 0
    credit_limit: int = 0
    code: int = 0
    ref: str = ""
    timestamp: int = 0


class AccountBalance(NamedTuple):
    account_id: int
    timestamp: int
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int


def flag_names(flags: int, names: Mapping[str, int]) -> list[str]:
    return [name for name, bit in names.items() if flags & bit]
