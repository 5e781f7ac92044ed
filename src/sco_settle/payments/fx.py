"""Foreign-exchange rates and exact conversion of minor-unit amounts.

Invariants:
- Rates are ``Decimal`` and amounts are ``int`` minor units; no float is ever accepted, because a
  binary float cannot represent most decimal rates and silently moves value.
- A rate is quoted as *quote-currency major units per one base-currency major unit*. ``bid`` is the
  price at which the liquidity provider buys the base currency, ``ask`` the price at which it sells
  it, and ``0 < bid <= ask``.
- Conversion is exact: the rate is turned into an integer fraction and the amount is multiplied in
  integers; the only rounding happens once, at the end, to whole minor units.
- Rounding always favours the liquidity provider (TigerBeetle's currency-exchange recipe: "round in
  favor of the liquidity account to deter arbitrage"). The customer *receives* the converted amount
  rounded down and *pays* it rounded up, and always at the side of the spread that is worse for the
  customer. A round trip therefore never creates money for the customer.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from sco_settle.domain.money import AMOUNT_MAX, currency
from sco_settle.payments.model import AmountType, Payment


class Rounding(enum.StrEnum):
    """Which way the customer's money moves, and therefore which way the result is rounded.

    ``CUSTOMER_RECEIVES``: the customer hands over ``amount_minor`` of ``from_currency`` and
    receives the result in ``to_currency``, rounded *down*.
    ``CUSTOMER_PAYS``: the customer wants ``amount_minor`` of ``from_currency`` delivered and pays
    the result in ``to_currency``, rounded *up*.
    """

    CUSTOMER_RECEIVES = "customer_receives"
    CUSTOMER_PAYS = "customer_pays"


class RateSide(enum.StrEnum):
    BID = "bid"
    ASK = "ask"


@dataclass(frozen=True, slots=True)
class Rate:
    """One provider's two-way quote for a currency pair at one moment.

    Constraints:
    - ``base`` and ``quote`` are distinct ISO 4217 codes with minor units.
    - ``bid`` and ``ask`` are finite ``Decimal`` with ``0 < bid <= ask``.
    - ``provider`` is not empty (a BIC, or the name of a swap line's pricing source).
    - ``as_of`` is timezone-aware, so that two rates can always be ordered.
    - The quote is firm from ``as_of`` until ``valid_until`` (inclusive; None: it never goes
      stale, for tests and hand-built tables). A quote outside its window is stale and never used
      to price a payment (``RateTable.valid_at``).
    """

    base: str
    quote: str
    bid: Decimal
    ask: Decimal
    provider: str
    as_of: datetime
    valid_until: datetime | None = None

    def __post_init__(self) -> None:
        currency(self.base)
        currency(self.quote)
        if self.base == self.quote:
            raise ValueError(f"rate base and quote must differ, got {self.base}/{self.quote}")
        for name in ("bid", "ask"):
            value = getattr(self, name)
            if not isinstance(value, Decimal):
                raise TypeError(f"rate {name} must be a Decimal, got {type(value).__name__}")
            if not value.is_finite() or value <= 0:
                raise ValueError(f"rate {name} must be finite and positive, got {value}")
        if self.bid > self.ask:
            raise ValueError(f"rate bid {self.bid} exceeds ask {self.ask} (crossed quote)")
        if not isinstance(self.provider, str) or not self.provider:
            raise ValueError("rate provider must be a non-empty string")
        if not isinstance(self.as_of, datetime) or self.as_of.tzinfo is None:
            raise ValueError("rate as_of must be a timezone-aware datetime")
        if self.valid_until is not None:
            if not isinstance(self.valid_until, datetime) or self.valid_until.tzinfo is None:
                raise ValueError("rate valid_until must be a timezone-aware datetime")
            if self.valid_until < self.as_of:
                raise ValueError(
                    f"rate valid_until {self.valid_until} is before as_of {self.as_of}"
                )

    def valid_at(self, moment: datetime) -> bool:
        """Whether the quote is firm at ``moment`` (not before it was given, not after expiry)."""
        return self.as_of <= moment and (self.valid_until is None or moment <= self.valid_until)

    @property
    def mid(self) -> Fraction:
        """The mid-market price, exactly: (bid + ask) / 2 as a fraction."""
        return (Fraction(self.bid) + Fraction(self.ask)) / 2

    def covers(self, from_currency: str, to_currency: str) -> bool:
        return {from_currency, to_currency} == {self.base, self.quote}


@dataclass(frozen=True, slots=True)
class Conversion:
    """The outcome of one conversion; ``converted_minor`` is already rounded.

    ``spread_cost_minor`` is in ``to_currency`` minor units: how much worse the customer did than at
    the mid-market price, including the rounding, itself rounded up so it is never understated.
    """

    amount_minor: int
    from_currency: str
    converted_minor: int
    to_currency: str
    rounding: Rounding
    side: RateSide
    rate_applied: Decimal
    spread_cost_minor: int
    rate: Rate


@dataclass(frozen=True, slots=True)
class Quote:
    """A rate oriented for one direction of conversion and one rounding rule.

    ``factor`` and ``mid_factor`` convert *minor units of from_currency* into *minor units of
    to_currency* exactly; they already include the difference in minor-unit digits.
    """

    rate: Rate
    from_currency: str
    to_currency: str
    rounding: Rounding
    side: RateSide
    factor: Fraction
    mid_factor: Fraction

    def convert(self, amount_minor: int) -> Conversion:
        _check_amount(amount_minor)
        exact = self.factor * amount_minor
        exact_mid = self.mid_factor * amount_minor
        if self.rounding is Rounding.CUSTOMER_RECEIVES:
            converted = _floor(exact)
            spread_cost = _ceil(exact_mid - converted)
        else:
            converted = _ceil(exact)
            spread_cost = _ceil(converted - exact_mid)
        assert spread_cost >= 0, (self, amount_minor)
        if converted > AMOUNT_MAX:
            raise ValueError(f"converted amount {converted} exceeds AMOUNT_MAX")
        return Conversion(
            amount_minor=amount_minor,
            from_currency=self.from_currency,
            converted_minor=converted,
            to_currency=self.to_currency,
            rounding=self.rounding,
            side=self.side,
            rate_applied=self.rate.bid if self.side is RateSide.BID else self.rate.ask,
            spread_cost_minor=spread_cost,
            rate=self.rate,
        )


def quote(rate: Rate, from_currency: str, to_currency: str, rounding: Rounding) -> Quote:
    """Orient ``rate`` for converting ``from_currency`` into ``to_currency`` under ``rounding``.

    The side is always the one worse for the customer. Selling base (receiving quote) is done at
    the bid; buying base is done at the ask. When the customer pays, the roles swap: delivering
    base to the customer costs the ask; delivering quote costs base at the bid.
    """
    if not rate.covers(from_currency, to_currency) or from_currency == to_currency:
        raise ValueError(
            f"rate {rate.base}/{rate.quote} cannot convert {from_currency}->{to_currency}"
        )
    rounding = Rounding(rounding)
    from_is_base = from_currency == rate.base
    receives = rounding is Rounding.CUSTOMER_RECEIVES
    # from base, customer receives quote: provider buys base at its bid.   factor = bid
    # from quote, customer receives base: provider sells base at its ask.  factor = 1/ask
    # from base, customer pays quote: provider sells base at its ask.      factor = ask
    # from quote, customer pays base: provider buys base at its bid.       factor = 1/bid
    side = RateSide.BID if from_is_base == receives else RateSide.ASK
    price = Fraction(rate.bid if side is RateSide.BID else rate.ask)
    major_factor = price if from_is_base else 1 / price
    mid_major = rate.mid if from_is_base else 1 / rate.mid
    scale = Fraction(10) ** (
        currency(to_currency).minor_units - currency(from_currency).minor_units
    )
    return Quote(
        rate=rate,
        from_currency=from_currency,
        to_currency=to_currency,
        rounding=rounding,
        side=side,
        factor=major_factor * scale,
        mid_factor=mid_major * scale,
    )


def convert(
    amount_minor: int,
    from_currency: str,
    to_currency: str,
    rate: Rate,
    rounding: Rounding = Rounding.CUSTOMER_RECEIVES,
) -> Conversion:
    """Convert ``amount_minor`` of ``from_currency`` into ``to_currency`` minor units, exactly.

    Args:
        amount_minor: a non-negative integer count of ``from_currency`` minor units.
        from_currency, to_currency: ISO 4217 codes; ``rate`` must quote this pair either way round.
        rate: the provider's quote.
        rounding: ``CUSTOMER_RECEIVES`` (result rounded down, the default) or ``CUSTOMER_PAYS``
            (result rounded up). See ``Rounding``.

    Returns:
        A ``Conversion`` with the rounded result and the spread cost against mid-market.

    Raises:
        ValueError / TypeError: the amount is not a non-negative int up to ``AMOUNT_MAX``, or the
            rate does not cover the pair. These are programmer errors at this layer.
    """
    return quote(rate, from_currency, to_currency, rounding).convert(amount_minor)


def _quote_order_key(found: Quote) -> tuple[Fraction, str, str, str]:
    # Best for the customer first: the largest factor when receiving, the smallest when paying.
    # Ties: provider, then the listed orientation. A table keeps one rate per (provider, base,
    # quote), so this key is unique and the order total.
    factor = -found.factor if found.rounding is Rounding.CUSTOMER_RECEIVES else found.factor
    return (factor, found.rate.provider, found.rate.base, found.rate.quote)


class RateTable:
    """Every provider's latest quote per listed pair, searchable in either direction.

    Only the newest quote per (provider, base, quote) is kept. A pair listed as CNY/KZT also serves
    KZT->CNY lookups (the inverse pair): the same bid and ask are used the other way round, so no
    rounded inverse rate is ever materialised.
    """

    __slots__ = ("_by_pair", "_firm_cache", "_rates")

    def __init__(self, rates: Iterable[Rate]) -> None:
        latest: dict[tuple[str, str, str], Rate] = {}
        for rate in rates:
            if not isinstance(rate, Rate):
                raise TypeError(f"RateTable takes Rate objects, got {type(rate).__name__}")
            key = (rate.provider, rate.base, rate.quote)
            kept = latest.get(key)
            if kept is None or rate.as_of > kept.as_of:
                latest[key] = rate
        self._rates: tuple[Rate, ...] = tuple(latest[key] for key in sorted(latest))
        self._firm_cache: tuple[tuple[Rate, ...], RateTable] | None = None
        self._by_pair: dict[tuple[str, str], list[Rate]] = {}
        for rate in self._rates:
            self._by_pair.setdefault((rate.base, rate.quote), []).append(rate)
            self._by_pair.setdefault((rate.quote, rate.base), []).append(rate)

    @classmethod
    def from_dicts(cls, rows: Iterable[Mapping[str, Any]]) -> RateTable:
        """Load rates from plain mappings (e.g. parsed JSON or YAML).

        Each row has ``base``, ``quote``, ``bid``, ``ask``, ``provider`` and ``as_of``. ``bid`` and
        ``ask`` are decimal strings, ints or ``Decimal``; floats are refused. ``as_of`` is a
        timezone-aware ``datetime`` or an ISO 8601 string with an offset.
        """
        return cls(_rate_from_dict(row) for row in rows)

    @property
    def rates(self) -> tuple[Rate, ...]:
        return self._rates

    def valid_at(self, moment: datetime) -> RateTable:
        """The table of the quotes firm at ``moment``: stale and future quotes are left out, so
        no payment is ever priced at an expired quote. The same table object is returned while
        the set of firm quotes stays the same (routing memoises per table)."""
        firm = tuple(rate for rate in self._rates if rate.valid_at(moment))
        if len(firm) == len(self._rates):
            return self
        cached = self._firm_cache
        if cached is not None and cached[0] == firm:
            return cached[1]
        table = RateTable(firm)
        self._firm_cache = (firm, table)
        return table

    def published(self, moment: datetime, valid_for: timedelta) -> RateTable:
        """Every quote republished at ``moment``, firm for ``valid_for``: the providers'
        standing quotes given again (a simulation or a deployment publishing its quote file)."""
        return RateTable(
            Rate(r.base, r.quote, r.bid, r.ask, r.provider, moment, moment + valid_for)
            for r in self._rates
        )

    def __len__(self) -> int:
        return len(self._rates)

    def quotes(
        self,
        from_currency: str,
        to_currency: str,
        rounding: Rounding = Rounding.CUSTOMER_RECEIVES,
        *,
        provider: str | None = None,
        as_of_min: datetime | None = None,
    ) -> list[Quote]:
        """All usable quotes for the direction, best for the customer first (ties: provider)."""
        found = []
        for rate in self._by_pair.get((from_currency, to_currency), ()):
            if provider is not None and rate.provider != provider:
                continue
            if as_of_min is not None and rate.as_of < as_of_min:
                continue
            found.append(quote(rate, from_currency, to_currency, rounding))
        found.sort(key=_quote_order_key)
        return found

    def best(
        self,
        from_currency: str,
        to_currency: str,
        rounding: Rounding = Rounding.CUSTOMER_RECEIVES,
        *,
        provider: str | None = None,
        as_of_min: datetime | None = None,
    ) -> Quote | None:
        """The quote that gives the customer the most (or costs the least); None if none exists."""
        found = self.quotes(
            from_currency, to_currency, rounding, provider=provider, as_of_min=as_of_min
        )
        return found[0] if found else None


def _rate_from_dict(row: Mapping[str, Any]) -> Rate:
    missing = {"base", "quote", "bid", "ask", "provider", "as_of"} - set(row)
    if missing:
        raise ValueError(f"rate row is missing {sorted(missing)}: {dict(row)!r}")
    as_of = row["as_of"]
    if isinstance(as_of, str):
        as_of = datetime.fromisoformat(as_of)
    valid_until = row.get("valid_until")
    if isinstance(valid_until, str):
        valid_until = datetime.fromisoformat(valid_until)
    return Rate(
        base=str(row["base"]),
        quote=str(row["quote"]),
        bid=_decimal(row["bid"], "bid"),
        ask=_decimal(row["ask"], "ask"),
        provider=str(row["provider"]),
        as_of=as_of,
        valid_until=valid_until,
    )


def _decimal(value: object, field: str) -> Decimal:
    if isinstance(value, float | bool):
        raise TypeError(f"rate {field} must be a decimal string, not {type(value).__name__}")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int | str):
        try:
            return Decimal(value)
        except InvalidOperation as error:
            raise ValueError(f"rate {field} {value!r} is not a decimal number") from error
    raise TypeError(f"rate {field} must be a decimal string, got {type(value).__name__}")


def _check_amount(amount_minor: int) -> None:
    if not isinstance(amount_minor, int) or isinstance(amount_minor, bool):
        raise TypeError(f"amount_minor must be an int, got {type(amount_minor).__name__}")
    if amount_minor < 0 or amount_minor > AMOUNT_MAX:
        raise ValueError(f"amount_minor {amount_minor} is outside 0 .. AMOUNT_MAX")


def _floor(value: Fraction) -> int:
    return value.numerator // value.denominator


def _ceil(value: Fraction) -> int:
    return -((-value.numerator) // value.denominator)


# How far a fixed received amount may stray from the debtor's instructed amount converted at the
# stated (or, absent that, the network's mid) rate: room for charges deducted on the way (ChrgBr
# SHAR / CRED) and for the move of a rate quoted earlier. An assumption of this network, not an
# ISO 20022 rule: ISO only says the amounts must agree with the rate.
AMOUNT_TOLERANCE = Fraction(5, 100)


def amounts_disagree(payment: Payment, rates: RateTable) -> str:
    """Why ``payment``'s fixed received amount contradicts the instructed amount and rate its
    message stated ("" when it does not, or when nothing was stated or there is no rate to
    compare with): the received amount must be within ``AMOUNT_TOLERANCE`` of the instructed
    amount converted at the message's rate, else at the network's best mid rate."""
    if payment.amount_type is not AmountType.RECEIVE or payment.instructed_minor <= 0:
        return ""
    source, target = payment.currency, payment.creditor_currency
    if source == target:
        factor: Fraction | None = Fraction(1)
        basis = "in one currency"
    elif payment.exchange_rate:
        scale = Fraction(10) ** (currency(target).minor_units - currency(source).minor_units)
        factor = Fraction(Decimal(payment.exchange_rate)) * scale
        basis = f"at the stated rate {payment.exchange_rate}"
    else:
        found = rates.best(source, target)
        factor = found.mid_factor if found is not None else None
        basis = "at the network's mid rate"
    if factor is None:
        return ""
    expected = payment.instructed_minor * factor
    if abs(payment.amount_minor - expected) <= expected * AMOUNT_TOLERANCE:
        return ""
    return (
        f"received amount {payment.amount_minor} {target} disagrees with the instructed"
        f" {payment.instructed_minor} {source} (minor units) {basis}: expected about"
        f" {_floor(expected)} {target}"
    )
