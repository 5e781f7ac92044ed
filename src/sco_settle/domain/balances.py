"""Balances: an account's four counters with its credit limit and flags, and what follows from them.

The ledger keeps four counters per account (``debits_pending``, ``debits_posted``,
``credits_pending``, ``credits_posted``); the rules built on them are derived here, once:

- ``posted_minor``: credits_posted - debits_posted, the booked balance.
- ``available_minor``: posted minus the debits reserved by pending transfers; what the account
  can still pay out of its own money. (Pending credits are not counted: they may be voided.)
- ``headroom_minor``: available plus the credit limit; what may still be debited before
  ``DEBITS_MUST_NOT_EXCEED_CREDITS`` refuses (``exceeds_credits``). Negative when the account is
  already past it, which the ledger never lets a constrained account be.
- ``drawn_minor``: the debit balance, posted and reserved, never below 0; for a swap line, how
  much of the agreed size (its credit limit) is drawn.

Guarantees: the four counters are ints in 0 .. AMOUNT_MAX, the credit limit too; a ``Balances``
never changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sco_settle.domain.account import Account, AccountFlags
from sco_settle.domain.money import AMOUNT_MAX

# (debits_pending, debits_posted, credits_pending, credits_posted): the order of the ledger's
# ``balance_tuple()``, ``StoredAccount.balance()`` and the JSON-lines export.
Counters = tuple[int, int, int, int]


class BalanceCounters(Protocol):
    """Anything that carries an account's counters, limit and flags (the ledger's
    ``AccountState``, for one)."""

    @property
    def debits_pending(self) -> int: ...
    @property
    def debits_posted(self) -> int: ...
    @property
    def credits_pending(self) -> int: ...
    @property
    def credits_posted(self) -> int: ...
    @property
    def credit_limit(self) -> int: ...
    @property
    def flags(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Balances:
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0
    credit_limit: int = 0
    flags: AccountFlags = AccountFlags.NONE

    def __post_init__(self) -> None:
        for name in (
            "debits_pending",
            "debits_posted",
            "credits_pending",
            "credits_posted",
            "credit_limit",
        ):
            value = getattr(self, name)
            assert type(value) is int and 0 <= value <= AMOUNT_MAX, (name, value)
        assert isinstance(self.flags, AccountFlags), self.flags

    @classmethod
    def of(cls, state: BalanceCounters) -> Balances:
        """The balances of a live account (``AccountState`` or alike)."""
        return cls(
            state.debits_pending,
            state.debits_posted,
            state.credits_pending,
            state.credits_posted,
            state.credit_limit,
            AccountFlags(state.flags),
        )

    @classmethod
    def of_account(cls, account: Account, counters: Counters) -> Balances:
        """``account``'s balances from its four counters (``Counters`` order)."""
        debits_pending, debits_posted, credits_pending, credits_posted = counters
        return cls(
            debits_pending,
            debits_posted,
            credits_pending,
            credits_posted,
            account.credit_limit,
            AccountFlags(account.flags),
        )

    @property
    def counters(self) -> Counters:
        return (self.debits_pending, self.debits_posted, self.credits_pending, self.credits_posted)

    @property
    def posted_minor(self) -> int:
        return self.credits_posted - self.debits_posted

    @property
    def available_minor(self) -> int:
        return self.credits_posted - self.debits_posted - self.debits_pending

    @property
    def headroom_minor(self) -> int:
        return self.available_minor + self.credit_limit

    @property
    def drawn_minor(self) -> int:
        return max(-self.available_minor, 0)

    # Flags by name.

    @property
    def debits_must_not_exceed_credits(self) -> bool:
        return bool(self.flags & AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)

    @property
    def credits_must_not_exceed_debits(self) -> bool:
        return bool(self.flags & AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)

    @property
    def history(self) -> bool:
        return bool(self.flags & AccountFlags.HISTORY)
