"""The SCO clearing union's governance parameters (``reference_data/union.yaml``), validated.

One place: members, partners, the unit of account (its basket and rate source), swing limits,
interest and cycle times are data in that file; this module only loads and checks them, and
``payments.union`` only reads them. Every figure in the shipped file is labelled there as an
assumption or with its source.

Invariants (checked by ``UnionConfig``'s validator; a ``UnionConfig`` that exists satisfies
them all):
- The unit's code is a unit of account the domain defines (``domain.money.UNITS_OF_ACCOUNT``),
  never a national currency, so union positions never mix with money in the ledger.
- The basket names distinct ISO 4217 currencies, each with a positive amount, and its weights
  sum to 100 %. Amounts and rates are ``Decimal``; a float is refused.
- Members and partners are distinct BICs; a swing limit is exact in the unit's minor units.
- Cycle minutes are distinct, sorted, within one day.
Whether each member is the central bank of its currency in a given network is checked against
that network when the union is built (``payments.union.UnionBook``).
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, model_validator
from ruamel.yaml import YAML

from sco_settle.domain.money import UNITS_OF_ACCOUNT, currency
from sco_settle.network.model import (
    Bic,
    CurrencyCode,
    MajorAmount,
    NonNegativeMajorAmount,
    PositiveMajorAmount,
    Text,
    minor_units_of,
)

MINUTES_PER_DAY = 1440


def _unit_code(value: str) -> str:
    if value not in UNITS_OF_ACCOUNT:
        raise ValueError(
            f"unit {value!r} is not a unit of account the domain defines"
            f" ({sorted(UNITS_OF_ACCOUNT)}): national money cannot be the union's ledger unit"
        )
    return value


UnitCode = Annotated[str, AfterValidator(_unit_code)]


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BasketItem(_Entry):
    """``amount`` major units of ``currency`` are in one unit; ``weight_percent`` is the share
    they were chosen to have at the reference rates (stated, checked by the tests)."""

    currency: CurrencyCode
    amount: PositiveMajorAmount
    weight_percent: PositiveMajorAmount


class RateSource(_Entry):
    """The basket is priced at the mid of ``provider``'s quotes, each against ``pivot``."""

    provider: Text
    pivot: CurrencyCode


class UnitSpec(_Entry):
    code: UnitCode
    basket: tuple[BasketItem, ...] = Field(min_length=1)
    rate_source: RateSource

    @model_validator(mode="after")
    def _check(self) -> UnitSpec:
        codes = [item.currency for item in self.basket]
        if len(set(codes)) != len(codes):
            raise ValueError(f"the basket names a currency twice: {codes}")
        total = sum((item.weight_percent for item in self.basket), Decimal(0))
        if total != 100:
            raise ValueError(f"the basket's weights sum to {total} %, not 100 %")
        return self

    @property
    def amounts(self) -> dict[str, Fraction]:
        """Major units of each basket currency in one unit, exactly."""
        return {item.currency: Fraction(item.amount) for item in self.basket}


class MemberEntry(_Entry):
    """A member (or partner) central bank and its swing limit in the unit (major units)."""

    central_bank: Bic
    swing_limit: NonNegativeMajorAmount
    basis: Text | None = None  # why this limit (its sources), for the reader


class InterestTerms(_Entry):
    rate_percent_per_year: Annotated[MajorAmount, AfterValidator(lambda v: _at_least_zero(v))]
    day_count: Literal["ACT/360"] = "ACT/360"

    @property
    def daily_rate(self) -> Fraction:
        """The rate for one day of union credit (ACT/360)."""
        return Fraction(self.rate_percent_per_year) / 100 / 360


def _at_least_zero(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError(f"rate {value} must not be negative")
    return value


class CycleTimes(_Entry):
    minutes: tuple[StrictInt, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> CycleTimes:
        if list(self.minutes) != sorted(set(self.minutes)):
            raise ValueError(f"cycle minutes must be distinct and sorted: {self.minutes}")
        if not all(0 < minute <= MINUTES_PER_DAY for minute in self.minutes):
            raise ValueError(f"cycle minutes must lie in 1..{MINUTES_PER_DAY}: {self.minutes}")
        return self


class UnionConfig(_Entry):
    format: Literal[1] = 1
    name: Text
    agent: Bic
    unit: UnitSpec
    members: tuple[MemberEntry, ...] = Field(min_length=2)
    partners: tuple[MemberEntry, ...] = ()
    interest: InterestTerms
    cycles: CycleTimes

    @model_validator(mode="after")
    def _check(self) -> UnionConfig:
        banks = [entry.central_bank for entry in self.participants]
        if len(set(banks)) != len(banks):
            raise ValueError(f"a central bank is listed twice among members and partners: {banks}")
        if self.agent in banks:
            raise ValueError(f"the agent {self.agent} cannot also be a member")
        for entry in self.participants:
            minor_units_of(entry.swing_limit, self.unit.code)  # exact in the unit, or raises
        currency(self.unit.code)
        return self

    @property
    def participants(self) -> tuple[MemberEntry, ...]:
        """Members, then the partners admitted by configuration: who clears in the union."""
        return (*self.members, *self.partners)

    def swing_limits_minor(self) -> dict[str, int]:
        """Each participant's swing limit in minor units of the unit, by central bank BIC."""
        code = self.unit.code
        return {e.central_bank: minor_units_of(e.swing_limit, code) for e in self.participants}


def load_union(name_or_path: str | Path = "union") -> UnionConfig:
    """``"union"``: the shipped ``reference_data/union.yaml``; otherwise a YAML file's path."""
    if isinstance(name_or_path, str) and "/" not in name_or_path and "." not in name_or_path:
        resource = resources.files("sco_settle.reference_data").joinpath(f"{name_or_path}.yaml")
        text = resource.read_text(encoding="utf-8")
    else:
        text = Path(name_or_path).read_text(encoding="utf-8")
    return parse_union(text)


def parse_union(text: str) -> UnionConfig:
    """Validate the text of a union file; ``pydantic.ValidationError`` names every problem."""
    return UnionConfig.model_validate(YAML(typ="safe").load(text))
