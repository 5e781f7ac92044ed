"""An FX shock for stress scenarios: every quote of one currency moves by the same percentage.

A shock of +20 % on RUB means that one unit of any other currency costs 20 % more roubles, at
every provider's bid and ask alike (a depreciation of the rouble; a negative percentage is an
appreciation). A quote RUB/XXX (XXX per rouble) is divided by 1.2, a quote XXX/RUB multiplied by
it. Quotes not involving the currency are unchanged, so cross rates through it move and the
others do not.

Exact and deterministic: ``Decimal`` arithmetic in a local context of 28 significant digits (a
division by 1.2 does not terminate), never ``float``.
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass, replace
from decimal import Decimal

from sco_settle.payments.fx import Rate, RateTable

_PRECISION = 28


@dataclass(frozen=True, slots=True)
class FxShock:
    """``currency`` loses ``percent`` % against every other currency (gains if negative)."""

    currency: str
    percent: Decimal

    def __post_init__(self) -> None:
        if not isinstance(self.percent, Decimal) or not self.percent.is_finite():
            raise TypeError(f"an FX shock's percent must be a finite Decimal: {self.percent!r}")
        if self.percent <= -100:
            raise ValueError(f"an FX shock of {self.percent} % would make the currency free")

    @property
    def factor(self) -> Decimal:
        """Units of the shocked currency per unit of another, after / before."""
        return 1 + self.percent / 100


def shocked(table: RateTable, shock: FxShock) -> RateTable:
    """``table`` with every quote of ``shock.currency`` moved; the others as they were."""
    return RateTable(_shocked_rate(rate, shock) for rate in table.rates)


def _shocked_rate(rate: Rate, shock: FxShock) -> Rate:
    with decimal.localcontext(prec=_PRECISION):
        if rate.quote == shock.currency:  # shocked-currency units per base unit
            return replace(rate, bid=+(rate.bid * shock.factor), ask=+(rate.ask * shock.factor))
        if rate.base == shock.currency:  # other-currency units per shocked unit
            return replace(rate, bid=+(rate.bid / shock.factor), ask=+(rate.ask / shock.factor))
    return rate
