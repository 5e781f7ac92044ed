"""Account keys: the stable name of each account of a settlement network.

A key says whose account it is, in which currency, and what it is for. Its text form is persisted:
``network.account_id_for_key`` hashes it into the ledger account id, and the ledger keeps it as the
account's ``ref``. The text forms are therefore fixed (one per kind):

| kind | text | owner (the account's participant) | counterparty |
|---|---|---|---|
| settlement | ``settlement:<bic>:<ccy>`` | the participant, at ccy's central bank | none |
| issuance | ``issuance:<bic>:<ccy>`` | the central bank issuing ccy | none |
| clearing | ``clearing:<bic>:<ccy>`` | the central bank (the engine's LSM and DNS chains) | none |
| liquidity | ``liquidity:<bic>:<ccy>`` | a liquidity provider | none |
| fee | ``fee:<bic>:<ccy>`` | the participant collecting fees | none |
| vostro | ``vostro:<servicer>:<owner>:<ccy>`` | the correspondent whose money it is | servicer |
| swap-line | ``swap-line:<drawer>:<provider>:<ccy>`` | the drawing central bank | provider |

Note the order of the two BICs: a vostro key names the servicer (the bank on whose books the
account is kept) first, a swap-line key names the owner (the drawer) first.

Guarantees:
- ``AccountKey.parse(str(key)) == key`` for every key; ``str(AccountKey.parse(text)) == text`` for
  every text that parses.
- A key's BICs are upper-case ISO 9362 shapes (8 or 11 characters) and its currency three
  upper-case letters, so no part can contain the ``:`` separator. (Whether the BIC or currency
  exists is checked where the network is loaded, not here.)
- A key has a counterparty exactly when its kind is vostro or swap-line.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

# ISO 9362 shape: party prefix (4), country (2 letters), location (2), optional branch (3).
_BIC_SHAPE = re.compile(r"[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}(?:[A-Z0-9]{3})?")
_CURRENCY_SHAPE = re.compile(r"[A-Z]{3}")
_SEPARATOR = ":"


class AccountKeyError(ValueError):
    """The text is not an account key, or a key's parts are malformed."""


class AccountKeyKind(enum.StrEnum):
    """The kinds of account key; each value is the key's text prefix.

    Not ``AccountKind``: the ledger's kind of a clearing account is ``suspense``, and a network
    key is always one of these.
    """

    SETTLEMENT = "settlement"
    ISSUANCE = "issuance"
    CLEARING = "clearing"
    LIQUIDITY = "liquidity"
    FEE = "fee"
    VOSTRO = "vostro"
    SWAP_LINE = "swap-line"
    # An FX provider's income in one currency: the spread and rounding of its conversions.
    FX_INCOME = "fx-income"
    # A central bank's interest income on the swap-line tranches it provided, in its currency.
    SWAP_INTEREST = "swap-interest"

    @property
    def has_counterparty(self) -> bool:
        return self in _WITH_COUNTERPARTY


_WITH_COUNTERPARTY = frozenset({AccountKeyKind.VOSTRO, AccountKeyKind.SWAP_LINE})


@dataclass(frozen=True, slots=True, repr=False)
class AccountKey:
    """One network account's name. Build it with the named constructors (``settlement``,
    ``vostro``, ``swap_line``, ...) or ``parse``; ``str(key)`` is the persisted text form."""

    kind: AccountKeyKind
    owner: str  # The BIC of the account's participant (``Account.participant``).
    currency: str
    counterparty: str | None = None  # Vostro: the servicer. Swap line: the provider.

    def __post_init__(self) -> None:
        if not isinstance(self.kind, AccountKeyKind):
            raise AccountKeyError(f"account key kind must be an AccountKeyKind, got {self.kind!r}")
        _check_bic(self.kind, "owner", self.owner)
        if not isinstance(self.currency, str) or not _CURRENCY_SHAPE.fullmatch(self.currency):
            raise AccountKeyError(
                f"{self.kind} key: currency {self.currency!r} is not three upper-case letters"
            )
        if self.kind.has_counterparty:
            _check_bic(self.kind, "counterparty", self.counterparty)
        elif self.counterparty is not None:
            raise AccountKeyError(f"{self.kind} key has no counterparty, got {self.counterparty!r}")

    # Named constructors, one per kind; the arguments are in the order of the text form.

    @classmethod
    def settlement(cls, bic: str, currency: str) -> AccountKey:
        """``bic``'s account in ``currency`` at that currency's central bank."""
        return cls(AccountKeyKind.SETTLEMENT, bic, currency)

    @classmethod
    def issuance(cls, central_bank: str, currency: str) -> AccountKey:
        """The central bank's issuance account: the source of its currency in the network."""
        return cls(AccountKeyKind.ISSUANCE, central_bank, currency)

    @classmethod
    def clearing(cls, central_bank: str, currency: str) -> AccountKey:
        """The central bank's clearing account, through which LSM and DNS chains settle."""
        return cls(AccountKeyKind.CLEARING, central_bank, currency)

    @classmethod
    def liquidity(cls, bic: str, currency: str) -> AccountKey:
        return cls(AccountKeyKind.LIQUIDITY, bic, currency)

    @classmethod
    def fee(cls, bic: str, currency: str) -> AccountKey:
        return cls(AccountKeyKind.FEE, bic, currency)

    @classmethod
    def fx_income(cls, provider: str, currency: str) -> AccountKey:
        """Where ``provider``'s spread and rounding in ``currency`` are booked."""
        return cls(AccountKeyKind.FX_INCOME, provider, currency)

    @classmethod
    def swap_interest(cls, central_bank: str, currency: str) -> AccountKey:
        """Where ``central_bank`` receives interest on tranches drawn in ``currency``."""
        return cls(AccountKeyKind.SWAP_INTEREST, central_bank, currency)

    @classmethod
    def vostro(cls, servicer: str, owner: str, currency: str) -> AccountKey:
        """``owner``'s money in ``currency`` on ``servicer``'s books ("yours with us")."""
        return cls(AccountKeyKind.VOSTRO, owner, currency, servicer)

    @classmethod
    def swap_line(cls, drawer: str, provider: str, currency: str) -> AccountKey:
        """What ``drawer`` has drawn of ``provider``'s ``currency`` on their swap line."""
        return cls(AccountKeyKind.SWAP_LINE, drawer, currency, provider)

    @classmethod
    def parse(cls, text: str) -> AccountKey:
        """The key whose text form is ``text``; ``AccountKeyError`` if it is not one."""
        if not isinstance(text, str):
            raise AccountKeyError(f"an account key is text, got {type(text).__name__}")
        prefix, _, rest = text.partition(_SEPARATOR)
        try:
            kind = AccountKeyKind(prefix)
        except ValueError:
            kinds = ", ".join(k.value for k in AccountKeyKind)
            raise AccountKeyError(
                f"account key {text[:100]!r}: unknown kind {prefix[:20]!r} (one of: {kinds})"
            ) from None
        parts = rest.split(_SEPARATOR)
        expected = 3 if kind.has_counterparty else 2
        if len(parts) != expected:
            raise AccountKeyError(
                f"account key {text[:100]!r}: a {kind} key has {expected + 1} parts separated"
                f" by {_SEPARATOR!r}, not {len(parts) + 1}"
            )
        try:
            if kind is AccountKeyKind.VOSTRO:
                return cls.vostro(*parts)
            if kind is AccountKeyKind.SWAP_LINE:
                return cls.swap_line(*parts)
            return cls(kind, *parts)
        except AccountKeyError as error:
            raise AccountKeyError(f"account key {text[:100]!r}: {error}") from None

    def __str__(self) -> str:
        if self.kind is AccountKeyKind.VOSTRO:
            return f"vostro:{self.counterparty}:{self.owner}:{self.currency}"
        if self.kind is AccountKeyKind.SWAP_LINE:
            return f"swap-line:{self.owner}:{self.counterparty}:{self.currency}"
        return f"{self.kind.value}:{self.owner}:{self.currency}"

    def __repr__(self) -> str:
        return f"AccountKey.parse({str(self)!r})"


def _check_bic(kind: AccountKeyKind, role: str, value: object) -> None:
    if not isinstance(value, str) or not _BIC_SHAPE.fullmatch(value):
        raise AccountKeyError(f"{kind} key: {role} {value!r} is not an upper-case BIC")
