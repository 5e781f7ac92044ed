"""Currencies (ISO 4217) and amounts in minor units.

Invariants:
- An amount is an ``int`` count of the currency's minor units, never a float. Conversion from a
  decimal string happens only at the edges (``parse_major_amount``) and refuses excess precision
  rather than rounding it away.
- The currency table is the maintained ISO 4217 list from the ``iso4217`` package, not a hand list,
  plus the units of account this project defines (``UNITS_OF_ACCOUNT``), which no state issues.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from functools import cache

import iso4217

# Amounts and balance counters are stored as signed 64-bit integers by the embedded and SQL stores.
# A transfer may carry at most this many minor units, and no balance counter may grow past it
# (result codes ``overflows_*``). 9.2e18 minor units is ~9e16 IRR-rials' worth of cents: ample.
AMOUNT_MAX = 2**63 - 1


# Units of account: not money any state issues, but units in which the SCO clearing union
# (``payments/union.py``) records its members' claims. "XSC" is a private-use code: ISO 3166-1
# leaves "XA".."XZ" to its users, so ISO 4217 codes beginning with X that the maintenance agency
# has not assigned stay free for supranational and private units (as XDR, XSU and XTS are
# assigned ones). XSU would clash: it is ALBA's SUCRE, itself a clearing unit. Numeric 0: none
# assigned. Four minor digits (an assumption): the shipped unit is worth about CNY 1, so its
# smallest part is a hundredth of a fen and a conversion's rounding residue stays small (it is
# booked, never lost: ``payments/union_unit.py``).
UNITS_OF_ACCOUNT = {"XSC": (4, "SCO clearing unit (unit of account, not ISO 4217)")}


class UnknownCurrencyError(ValueError):
    """The code is not a current ISO 4217 currency code."""


@dataclass(frozen=True, slots=True)
class Currency:
    """An ISO 4217 currency: alphabetic code, numeric code and number of minor-unit digits."""

    code: str
    numeric: int
    minor_units: int
    name: str

    def __str__(self) -> str:
        return self.code


@cache
def _currency_table() -> dict[str, Currency]:
    table: dict[str, Currency] = {}
    for entry in iso4217.Currency:
        # Funds codes and precious metals (XAU, XDR, ...) have no minor units; they are not
        # settlement currencies here.
        if entry.exponent is None:
            continue
        table[entry.code] = Currency(
            code=entry.code,
            numeric=int(entry.number),
            minor_units=int(entry.exponent),
            name=entry.currency_name,
        )
    for code, (minor_units, name) in UNITS_OF_ACCOUNT.items():
        assert code not in table, code  # Never shadow an assigned ISO 4217 code.
        table[code] = Currency(code=code, numeric=0, minor_units=minor_units, name=name)
    return table


def currency(code: str) -> Currency:
    """Look up a currency by its alphabetic code; raise ``UnknownCurrencyError`` if it has none."""
    if not isinstance(code, str):
        raise UnknownCurrencyError(f"currency code must be a string, got {type(code).__name__}")
    found = _currency_table().get(code)
    if found is None:
        raise UnknownCurrencyError(f"unknown ISO 4217 currency code {code!r}")
    return found


def is_currency(code: object) -> bool:
    return isinstance(code, str) and code in _currency_table()


def all_currencies() -> list[Currency]:
    return sorted(_currency_table().values(), key=lambda c: c.code)


class AmountError(ValueError):
    """An amount is malformed, not positive, too precise for its currency or too large."""


def parse_major_amount(text: str | Decimal, currency_code: str) -> int:
    """Convert a decimal amount in major units ("1234.56") into minor units, exactly.

    Refuses more fractional digits than the currency has (ISO 20022 reason AM12 at the message
    edge) instead of rounding, because rounding money silently creates or destroys value.
    """
    minor_units = currency(currency_code).minor_units
    try:
        value = Decimal(text) if not isinstance(text, Decimal) else text
    except InvalidOperation as error:
        raise AmountError(f"amount {text!r} is not a decimal number") from error
    if not value.is_finite():
        raise AmountError(f"amount {text!r} is not finite")
    scaled = value.scaleb(minor_units)
    if scaled != scaled.to_integral_value():
        raise AmountError(
            f"amount {text} has more than {minor_units} decimal places allowed for {currency_code}"
        )
    minor = int(scaled)
    if minor <= 0:
        raise AmountError(f"amount {text} must be positive")
    if minor > AMOUNT_MAX:
        raise AmountError(f"amount {text} exceeds the maximum {AMOUNT_MAX} minor units")
    return minor


def format_minor_amount(minor: int, currency_code: str) -> str:
    """Render minor units as a plain decimal string in major units ("1234.56")."""
    assert isinstance(minor, int), minor
    minor_units = currency(currency_code).minor_units
    value = Decimal(minor).scaleb(-minor_units)
    return f"{value:.{minor_units}f}"


RATE_DIGITS = 11  # ISO 20022 ``BaseOneRate``: at most 11 digits, 10 of them fractional


def applied_rate(
    sent_minor: int, sent_currency: str, delivered_minor: int, delivered_currency: str
) -> Decimal:
    """The rate a payment was settled at: units of ``delivered_currency`` per unit of
    ``sent_currency`` (major units), ``delivered / sent``, rounded half-even to the 11
    significant digits an ISO 20022 exchange rate carries (with at most 10 after the point).
    The amounts are exact; the rate is what they imply, for reporting only."""
    if sent_minor <= 0 or delivered_minor < 0:
        raise AmountError(f"no rate for {sent_minor} sent and {delivered_minor} delivered")
    scale = currency(sent_currency).minor_units - currency(delivered_currency).minor_units
    ratio = Fraction(delivered_minor, sent_minor) * Fraction(10) ** scale
    if ratio == 0:
        return Decimal(0)
    whole_digits = max(len(str(int(ratio))), 1) if ratio >= 1 else 1
    places = min(max(RATE_DIGITS - whole_digits, 0), RATE_DIGITS - 1)
    quantum = Fraction(1, 10**places)
    units = ratio / quantum
    rounded = round(units)  # Fraction.__round__ rounds half to even
    rate = Decimal(rounded).scaleb(-places).normalize()
    return rate.quantize(Decimal(1)) if rate.as_tuple().exponent > 0 else rate  # type: ignore[operator]
