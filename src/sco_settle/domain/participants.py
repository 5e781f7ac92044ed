"""Participants (identified by BIC, ISO 9362) and countries (ISO 3166-1 alpha-2) with SCO status."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from functools import lru_cache

import pycountry
from schwifty import BIC
from schwifty.exceptions import SchwiftyException


class BicError(ValueError):
    """A BIC is malformed (ISO 9362: 8 or 11 characters, letters/digits in the right places)."""


def parse_bic(value: object) -> str:
    """Validate a BIC and return it in canonical upper-case form (8 or 11 characters).

    Structure and country code are checked by ``schwifty``; the bank directory is not consulted,
    because many SCO-state banks are missing from public registries.
    """
    if not isinstance(value, str):
        raise BicError(f"BIC must be a string, got {type(value).__name__}")
    return _parse_bic_text(value)


@lru_cache(maxsize=65_536)
def _parse_bic_text(value: str) -> str:
    # Pure and hot (routing graphs, account creation): cached. Failures are not cached.
    try:
        bic = BIC(value.strip(), allow_invalid=False)
    except SchwiftyException as error:
        raise BicError(f"invalid BIC {value!r}: {error}") from error
    return str(bic.compact)


def bic_country(bic: str) -> str:
    """The ISO 3166 alpha-2 country encoded in positions 5-6 of a BIC."""
    return bic[4:6]


class CountryError(ValueError):
    """Not an ISO 3166-1 alpha-2 code."""


def parse_country(value: object) -> str:
    if (
        not isinstance(value, str)
        or len(value) != 2
        or pycountry.countries.get(alpha_2=value) is None
    ):
        raise CountryError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")
    return value


def country_name(alpha_2: str) -> str:
    found = pycountry.countries.get(alpha_2=alpha_2)
    if found is None:
        raise CountryError(f"{alpha_2!r} is not an ISO 3166-1 alpha-2 country code")
    return found.name


class ScoStatus(enum.StrEnum):
    """A state's standing in the Shanghai Cooperation Organisation.

    The Tianjin declaration (1 Sep 2025) merged "observer" and "dialogue partner" into a single
    "partner" status; the older values remain so that history before that date can be expressed.
    """

    MEMBER = "member"
    OBSERVER = "observer"
    DIALOGUE_PARTNER = "dialogue_partner"
    PARTNER = "partner"
    NONE = "none"

    @property
    def tier(self) -> str:
        """Reporting tier: members, partners (observers and dialogue partners count as partners)."""
        if self is ScoStatus.MEMBER:
            return "member"
        if self is ScoStatus.NONE:
            return "non-sco"
        return "partner"


@dataclass(frozen=True, slots=True)
class Country:
    alpha_2: str
    name: str
    sco_status: ScoStatus
    sco_status_since: dt.date | None
    currency: str


class ParticipantKind(enum.StrEnum):
    CENTRAL_BANK = "central_bank"
    COMMERCIAL_BANK = "commercial_bank"
    PAYMENT_PROVIDER = "payment_provider"
    OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class Participant:
    bic: str
    name: str
    kind: ParticipantKind
    country: str
