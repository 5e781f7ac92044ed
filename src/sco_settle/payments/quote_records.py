"""Firm FX quotes as records: the terms a quote fixed (``FxQuote``) and where they are kept
(``FxQuoteStore``). Part of the payment records port (``tests/test_architecture.py``): storage
adapters keep quotes with the payment records, so this module imports only ``payments.model``.
The rules a quote follows are ``payments.fx_quotes``'s.
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

from sco_settle.payments.model import AmountType


class ChargeBearer(enum.StrEnum):
    """ISO 20022 ``ChargeBearerType1Code`` (``ChrgBr``)."""

    DEBT = "DEBT"  # borne by the debtor
    CRED = "CRED"  # borne by the creditor
    SHAR = "SHAR"  # shared: each side its own agent's


@dataclass(frozen=True)
class Charge:
    """A charge an intermediary deducts on the route, and which side bears it."""

    agent: str  # BIC
    amount_minor: int
    currency: str
    borne_by: str  # "debtor" or "creditor"


@dataclass(frozen=True)
class QuotedConversion:
    """One conversion of the quoted route: who converts, at which side of its quote."""

    provider: str  # BIC of the FX provider (or central bank facility)
    from_currency: str
    to_currency: str
    amount_minor: int  # in from_currency
    converted_minor: int  # in to_currency
    rate: str  # the applied rate as a decimal string (quote currency per base currency)
    side: str  # "bid" or "ask"
    rate_provider: str  # whose published quote (a BIC, or a central bank facility's source)
    valid_until_ns: int  # when that published quote goes stale


@dataclass(frozen=True)
class Booking:
    """A transfer of the quoted chain, without its id (the paying payment gives it one)."""

    debit_account: int
    credit_account: int
    amount_minor: int
    code: int


@dataclass(frozen=True)
class Hold:
    """A quote's hold on one account: a pending transfer to the currency's clearing account."""

    transfer_id: int
    account_id: int
    clearing_id: int
    amount_minor: int
    currency: str
    owner: str  # BIC of the account's holder


@dataclass(frozen=True)
class FxQuote:
    """A firm quote (see the module's guarantees). Amounts in minor units; times ledger ns."""

    quote_id: str
    debtor_agent: str
    creditor_agent: str
    currency: str  # what the debtor agent pays in
    creditor_currency: str
    amount_type: AmountType  # which amount is fixed
    charge_bearer: ChargeBearer
    send_minor: int  # debited from the debtor agent, in ``currency``
    receive_minor: int  # credited to the creditor agent, in ``creditor_currency``
    charges: tuple[Charge, ...]
    conversions: tuple[QuotedConversion, ...]
    route: tuple[str, ...]  # nodes "BIC/CCY"
    bookings: tuple[Booking, ...]
    holds: tuple[Hold, ...]
    created_ns: int
    expires_ns: int
    ref: str = ""

    @property
    def fixed_minor(self) -> int:
        return self.send_minor if self.amount_type is AmountType.SEND else self.receive_minor

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FxQuote:
        data: dict[str, Any] = json.loads(text)
        return cls(
            **{
                **data,
                "amount_type": AmountType(data["amount_type"]),
                "charge_bearer": ChargeBearer(data["charge_bearer"]),
                "charges": tuple(Charge(**item) for item in data["charges"]),
                "conversions": tuple(QuotedConversion(**item) for item in data["conversions"]),
                "route": tuple(data["route"]),
                "bookings": tuple(Booking(**item) for item in data["bookings"]),
                "holds": tuple(Hold(**item) for item in data["holds"]),
            }
        )


@runtime_checkable
class FxQuoteStore(Protocol):
    """Where firm quotes are kept: durably before a quote is answered (its holds are placed
    after it is saved, so a quote without holds is one that can never be used)."""

    def save_quote(self, quote: FxQuote) -> None: ...

    def get_quote(self, quote_id: str) -> FxQuote | None: ...


class MemoryFxQuotes:
    """``FxQuoteStore`` in a dictionary (tests, the simulator, an engine without durable
    records)."""

    def __init__(self) -> None:
        self._quotes: dict[str, FxQuote] = {}

    def save_quote(self, quote: FxQuote) -> None:
        assert quote.quote_id not in self._quotes, quote.quote_id  # Quote ids are never reused.
        self._quotes[quote.quote_id] = quote

    def get_quote(self, quote_id: str) -> FxQuote | None:
        return self._quotes.get(quote_id)
