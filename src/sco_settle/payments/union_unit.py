"""The clearing union's unit of account: its price in each currency, and exact conversions.

The unit is a basket of fixed amounts of currencies (``UnitSpec``; a one-currency unit is a
basket of one). Its price comes from the rate table the network already uses: the mid of the
configured provider's quote of each currency against a pivot, crossed through the pivot.

Conversion of one payment through the unit (pure, exact in ``Fraction``, no float):
- ``sent`` minor units of the payer's currency are worth ``sent * p_from`` unit minor units
  (``p_c``: unit minor units per minor unit of ``c``, ``UnitPrices.per_minor``);
- the payee gets ``delivered``: a fixed sent amount delivers ``floor(sent * p_from / p_to)``, a
  fixed received amount costs ``ceil(delivered * p_to / p_from)``;
- the payer's central bank is charged ``debit = floor(sent * p_from)`` and the payee's credited
  ``credit = floor(delivered * p_to)``; since ``sent * p_from >= delivered * p_to`` by either
  rounding, ``residue = debit - credit >= 0``, and it is booked to the union's rounding account.
Invariants: ``debit == credit + residue`` and ``residue >= 0`` (``InvariantViolation``
otherwise); the union takes no spread, so the residue is rounding alone: below one unit minor
unit plus the value of one minor unit of the payee's currency.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction

from sco_settle.domain.money import currency
from sco_settle.ledger import InvariantViolation
from sco_settle.payments.fx import RateTable
from sco_settle.payments.union_config import UnitSpec


class UnitNotPriced(ValueError):
    """A basket currency has no quote of the rate source: the unit has no price now."""


@dataclass(frozen=True, slots=True)
class UnitPrices:
    """``per_minor[c]``: unit minor units worth one minor unit of ``c``, exactly, at mid."""

    unit: str
    per_minor: Mapping[str, Fraction]

    def priced(self, code: str) -> bool:
        return code in self.per_minor

    def value_minor(self, amount_minor: int, code: str) -> Fraction:
        """The exact value of ``amount_minor`` of ``code`` in unit minor units."""
        return amount_minor * self.per_minor[code]


def unit_prices(spec: UnitSpec, rates: RateTable, currencies: Iterable[str]) -> UnitPrices:
    """The unit's prices in ``currencies`` (and every basket currency), at the mid of
    ``spec.rate_source.provider``'s quotes against its pivot. A currency with no such quote is
    left out (it cannot clear in the union now); a basket currency with none raises
    ``UnitNotPriced``."""
    pivot = spec.rate_source.pivot
    pivot_per_minor: dict[str, Fraction] = {}  # pivot minor units per minor unit of each
    for code in sorted({*currencies, *spec.amounts}):
        factor = _mid_factor(rates, code, pivot, spec.rate_source.provider)
        if factor is not None:
            pivot_per_minor[code] = factor
    unit_in_pivot = Fraction(0)  # pivot minor units in one unit
    for code, amount in spec.amounts.items():
        if code not in pivot_per_minor:
            raise UnitNotPriced(f"no {spec.rate_source.provider} quote of {code}/{pivot}")
        unit_in_pivot += amount * 10 ** currency(code).minor_units * pivot_per_minor[code]
    scale = 10 ** currency(spec.code).minor_units
    return UnitPrices(
        spec.code,
        {code: factor * scale / unit_in_pivot for code, factor in pivot_per_minor.items()},
    )


def _mid_factor(rates: RateTable, code: str, pivot: str, provider: str) -> Fraction | None:
    if code == pivot:
        return Fraction(1)
    found = rates.best(code, pivot, provider=provider)
    return found.mid_factor if found is not None else None


@dataclass(frozen=True, slots=True)
class UnionConversion:
    """One payment through the unit: what the payer's bank pays, what the payee's bank gets, and
    the unit amounts charged to the payer's central bank and credited to the payee's."""

    sent_minor: int
    delivered_minor: int
    debit_unit_minor: int
    credit_unit_minor: int

    @property
    def residue_unit_minor(self) -> int:
        return self.debit_unit_minor - self.credit_unit_minor


def convert_sent(prices: UnitPrices, sent_minor: int, source: str, target: str) -> UnionConversion:
    """A fixed sent amount: the payee gets what it is worth, rounded down."""
    exact = prices.value_minor(sent_minor, source) / prices.per_minor[target]
    return _conversion(prices, sent_minor, _floor(exact), source, target)


def convert_delivered(
    prices: UnitPrices, delivered_minor: int, source: str, target: str
) -> UnionConversion:
    """A fixed received amount: the payer pays what it is worth, rounded up."""
    exact = prices.value_minor(delivered_minor, target) / prices.per_minor[source]
    return _conversion(prices, -_floor(-exact), delivered_minor, source, target)


def _conversion(
    prices: UnitPrices, sent: int, delivered: int, source: str, target: str
) -> UnionConversion:
    debit = _floor(prices.value_minor(sent, source))
    credit = _floor(prices.value_minor(delivered, target))
    if credit > debit or min(sent, delivered, credit) < 0:
        raise InvariantViolation(
            f"union conversion {sent} {source} -> {delivered} {target} books {debit} against"
            f" {credit} {prices.unit}: a negative residue would create value"
        )
    return UnionConversion(sent, delivered, debit, credit)


def interest_minor(position_minor: int, daily_rate: Fraction, days: int = 1) -> int:
    """Interest in unit minor units on a debit ``position_minor`` (< 0) for ``days`` at
    ``daily_rate`` (ACT/360), rounded up so the union is never short; 0 for a credit."""
    if position_minor >= 0:
        return 0
    return -_floor(position_minor * daily_rate * days)


def unit_to_currency_up(prices: UnitPrices, unit_minor: int, code: str) -> int:
    """The least amount of ``code`` (minor units) worth at least ``unit_minor`` of the unit."""
    return -_floor(-Fraction(unit_minor) / prices.per_minor[code])


def _floor(value: Fraction) -> int:
    return value.numerator // value.denominator
