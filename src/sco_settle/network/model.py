"""The network file's data model: countries, participants, accounts, links and swap lines.

A ``Network`` is the validated content of one network file (see docs/reference/network.md). It
mirrors the file: amounts are kept as the exact decimal major units written there, and converted to
integer minor units only when ledger accounts and opening transfers are derived from it.

Invariants (checked by ``Network``'s validator; a ``Network`` that exists satisfies them all):
- Every BIC is a valid ISO 9362 code, unique in the network, and its country letters (positions
  5-6) equal the participant's country. A synthetic code (no real BIC known) uses the ISO 9362
  test form (second character of the location code is ``0``), so it can never be a live BIC.
- Every participant, link and swap line refers only to countries and participants in the file.
- Each currency used by an account has exactly one central bank (its settlement agent) here.
- Every amount is exact in its currency's minor units and fits in ``AMOUNT_MAX``.
- Every account key is unique, so every derived account id is unique.
- Every fact marked ``uncertain`` carries a ``note`` saying what is uncertain.
- Every payment-service provider's settlement bank is a participant holding an account in the
  currency it settles, and every currency a provider operates in has one.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import re
from collections.abc import Iterator, Mapping
from decimal import Decimal, InvalidOperation
from functools import cached_property
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    model_validator,
)

from sco_settle.domain.account import Account, AccountFlags, AccountKind
from sco_settle.domain.account_key import AccountKey, AccountKeyKind
from sco_settle.domain.ids import ID_MAX
from sco_settle.domain.money import AMOUNT_MAX, currency
from sco_settle.domain.participants import (
    Country,
    Participant,
    ParticipantKind,
    ScoStatus,
    bic_country,
    parse_bic,
    parse_country,
)
from sco_settle.domain.transfer import Transfer

FORMAT_VERSION = 1

# Ledger ``code`` of every account and opening transfer derived from a network file.
NETWORK_ACCOUNT_CODE = 1
OPENING_TRANSFER_CODE = 1
OPENING_TRANSFER_REF = "opening balance"

# Kinds a participant may open explicitly under ``accounts:``. Issuance, vostro and swap-line
# accounts are derived from the participant's kind, the links and the swap lines instead.
OPENABLE_ACCOUNT_KINDS = frozenset({AccountKind.SETTLEMENT, AccountKind.LIQUIDITY, AccountKind.FEE})

NETWORK_PARTICIPANT_KINDS = frozenset(
    {
        ParticipantKind.CENTRAL_BANK,
        ParticipantKind.COMMERCIAL_BANK,
        ParticipantKind.PAYMENT_PROVIDER,
    }
)

# A location path into the network document, as pydantic reports it: ("participants", 3, "bic").
Loc = tuple[str | int, ...]
# A problem found across entries: where it is, and a message that names the entry.
Problem = tuple[Loc, str]


def account_id_for_key(key: AccountKey | str) -> int:
    """A deterministic 128-bit account (or transfer) id for a stable textual key.

    The id is the big-endian BLAKE2b-128 digest of the UTF-8 key (of an ``AccountKey``'s text
    form). The two reserved ids (0 and 2**128-1) are skipped by rehashing with a counter suffix;
    the chance of ever needing that is 2**-127, but the ledger must never see a reserved id.
    """
    text = str(key) if isinstance(key, AccountKey) else key
    assert isinstance(text, str) and text, key
    candidate = text
    for attempt in range(1, 16):
        digest = hashlib.blake2b(candidate.encode("utf-8"), digest_size=16).digest()
        number = int.from_bytes(digest, "big")
        if 0 < number < ID_MAX:
            return number
        candidate = f"{text}#{attempt}"
    raise AssertionError(f"no usable id for key {text!r}")  # pragma: no cover


# Account keys (``domain.account_key``): the stable text from which each account's id and ``ref``
# are made. An opening transfer's id is made from its account's key the same way.


def opening_transfer_key(account_key: AccountKey) -> str:
    return f"opening:{account_key}"


# Field types. Each rejects the wrong YAML type outright instead of coercing it.


def _bic(value: object) -> str:
    return parse_bic(value)


def _country_code(value: object) -> str:
    return parse_country(value)


def _currency_code(value: object) -> str:
    return currency(value).code  # type: ignore[arg-type]


def _major_amount(value: object) -> Decimal:
    """An amount in major units, written as an integer or a decimal string; never a float."""
    if isinstance(value, bool | float):
        raise ValueError(
            f"amount {value!r} must be an integer or a quoted decimal string, not a "
            f"{type(value).__name__} (floats cannot hold money exactly)"
        )
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"amount {value!r} is not a decimal number") from None
        if not number.is_finite():
            raise ValueError(f"amount {value!r} is not finite")
        return number
    if isinstance(value, Decimal) and value.is_finite():
        return value
    raise ValueError(f"amount must be an integer or a decimal string, got {type(value).__name__}")


def _non_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError(f"amount {value} must not be negative")
    return value


def _positive(value: Decimal) -> Decimal:
    if value <= 0:
        raise ValueError(f"amount {value} must be positive")
    return value


_PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def _full_date(value: object) -> dt.date:
    """A calendar date: a YAML date or an ISO ``YYYY-MM-DD`` string (never a number)."""
    if isinstance(value, dt.datetime):
        raise ValueError(f"expected a date, got a date and time {value!r}")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"expected a date of the form YYYY-MM-DD, got {value!r}")


def _partial_date(value: object) -> str:
    """A date known to the year, month or day: ``2012``, ``2011-12`` or ``2014-10-13``."""
    if isinstance(value, dt.datetime):
        raise ValueError(f"expected a date, got a date and time {value!r}")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a date (YYYY, YYYY-MM or YYYY-MM-DD), got {value!r}")
    match = _PARTIAL_DATE.match(value.strip())
    if match is None:
        raise ValueError(f"{value!r} is not a date of the form YYYY, YYYY-MM or YYYY-MM-DD")
    year, month, day = (int(part) if part else 1 for part in match.groups())
    try:
        dt.date(year, month, day)
    except ValueError as error:
        raise ValueError(f"{value!r} is not a valid date: {error}") from None
    return match.group(0)


def _currency_pair(value: object) -> str:
    """``"CNY/KZT"``: two distinct ISO 4217 codes."""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Z]{3}/[A-Z]{3}", value):
        raise ValueError(f"a currency pair is written BASE/QUOTE, e.g. CNY/KZT, got {value!r}")
    base, quote = value[:3], value[4:]
    currency(base)
    currency(quote)
    if base == quote:
        raise ValueError(f"currency pair {value!r} names one currency twice")
    return value


def _first_day(partial: str | dt.date) -> dt.date:
    """A partial date (``2015``, ``2015-05`` or a full date) as its first day."""
    if isinstance(partial, dt.date):
        return partial
    parts = [int(part) for part in str(partial).split("-")]
    return dt.date(parts[0], parts[1] if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else 1)


def _format_version(value: object) -> int:
    if value != FORMAT_VERSION or isinstance(value, bool):
        raise ValueError(f"unsupported format {value!r}: this loader reads format {FORMAT_VERSION}")
    return FORMAT_VERSION


def _network_kind(value: ParticipantKind) -> ParticipantKind:
    if value not in NETWORK_PARTICIPANT_KINDS:
        allowed = ", ".join(sorted(NETWORK_PARTICIPANT_KINDS))
        raise ValueError(f"participant kind {value.value!r} is not allowed here (use {allowed})")
    return value


def _openable_kind(value: AccountKind) -> AccountKind:
    if value not in OPENABLE_ACCOUNT_KINDS:
        allowed = ", ".join(sorted(OPENABLE_ACCOUNT_KINDS))
        raise ValueError(
            f"account kind {value.value!r} cannot be opened explicitly (use {allowed}; issuance, "
            "vostro and swap-line accounts are derived)"
        )
    return value


Bic = Annotated[str, BeforeValidator(_bic)]
CountryCode = Annotated[str, BeforeValidator(_country_code)]
CurrencyCode = Annotated[str, BeforeValidator(_currency_code)]
MajorAmount = Annotated[Decimal, BeforeValidator(_major_amount)]
PositiveMajorAmount = Annotated[MajorAmount, AfterValidator(_positive)]
NonNegativeMajorAmount = Annotated[MajorAmount, AfterValidator(_non_negative)]
PartialDate = Annotated[str, BeforeValidator(_partial_date)]
FullDate = Annotated[dt.date, BeforeValidator(_full_date)]
Text = Annotated[StrictStr, Field(min_length=1)]
# A key of the network's ``sources`` table (which gives the URL or citation of each).
SourceKey = Annotated[StrictStr, Field(pattern=r"^[a-z0-9][a-z0-9_]{1,63}$")]


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def minor_units_of(amount: Decimal, currency_code: str) -> int:
    """Exact conversion of major units to minor units; raises ``ValueError`` if inexact."""
    scaled = amount.scaleb(currency(currency_code).minor_units)
    if scaled != scaled.to_integral_value():
        digits = currency(currency_code).minor_units
        raise ValueError(
            f"amount {amount} has more than {digits} decimal places allowed for {currency_code}"
        )
    minor = int(scaled)
    if minor > AMOUNT_MAX:
        raise ValueError(f"amount {amount} {currency_code} exceeds {AMOUNT_MAX} minor units")
    return minor


class StatusPeriod(_Entry):
    """An SCO status a state held before its current one, and since when (year is enough)."""

    status: ScoStatus
    since: PartialDate | None = None
    uncertain: StrictBool = False
    note: Text | None = None


class CountryEntry(_Entry):
    code: CountryCode
    name: Text
    sco_status: ScoStatus
    sco_status_since: FullDate | None = None
    currency: CurrencyCode
    previous_statuses: tuple[StatusPeriod, ...] = ()
    uncertain: StrictBool = False
    note: Text | None = None
    sources: tuple[SourceKey, ...] = ()

    def to_domain(self) -> Country:
        return Country(
            alpha_2=self.code,
            name=self.name,
            sco_status=self.sco_status,
            sco_status_since=self.sco_status_since,
            currency=self.currency,
        )


class AccountEntry(_Entry):
    """An account a participant opens; a settlement account in its home currency is implied."""

    kind: Annotated[AccountKind, AfterValidator(_openable_kind)] = AccountKind.SETTLEMENT
    currency: CurrencyCode
    # Major units; a simulation assumption, funded from the currency's issuance account.
    opening_balance: PositiveMajorAmount | None = None


class ParticipantEntry(_Entry):
    bic: Bic
    name: Text
    kind: Annotated[ParticipantKind, AfterValidator(_network_kind)]
    country: CountryCode
    # Currencies this participant may hold accounts in (and book vostros in). Default: home only.
    currencies: tuple[CurrencyCode, ...] | None = None
    accounts: tuple[AccountEntry, ...] = ()
    # Banks whose payments this participant agrees to carry as their correspondent: it forwards
    # them from its own accounts (settlement or nostros). Nobody else's payment may transit it,
    # except through its published FX quotes (``fx_providers``). See ``payments/routing.py``.
    correspondent_for: tuple[Bic, ...] = ()
    # True when no real BIC is known and ``bic`` is an SCO Settle identifier in ISO 9362 test form.
    synthetic_bic: StrictBool = False
    uncertain: StrictBool = False
    note: Text | None = None
    sources: tuple[SourceKey, ...] = ()

    def to_domain(self) -> Participant:
        return Participant(bic=self.bic, name=self.name, kind=self.kind, country=self.country)


class CorrespondentLink(_Entry):
    """``holder`` keeps a vostro account for ``owner`` in ``currency`` ("yours with us")."""

    holder: Bic
    owner: Bic
    currency: CurrencyCode
    credit_limit: NonNegativeMajorAmount = Decimal(0)
    opening_balance: PositiveMajorAmount | None = None
    uncertain: StrictBool = False
    note: Text | None = None
    sources: tuple[SourceKey, ...] = ()

    @property
    def key(self) -> AccountKey:
        return AccountKey.vostro(self.holder, self.owner, self.currency)


class SwapLine(_Entry):
    """A bilateral central-bank currency swap line; each side may draw the other's currency."""

    central_banks: tuple[Bic, Bic]
    # Agreed size in major units of each central bank's currency; null where no source gives it.
    size: dict[CurrencyCode, PositiveMajorAmount | None]
    signed: PartialDate | None = None
    renewed: tuple[PartialDate, ...] = ()
    tenor_years: Annotated[StrictInt, Field(gt=0, le=100)]
    status: Text
    # The latest date a source shows the line in use or in force (a drawing, an official
    # statement), when that is later than its last signing found.
    in_use_evidence: PartialDate | None = None
    uncertain: StrictBool = False
    note: Text | None = None
    sources: tuple[SourceKey, ...] = ()

    @property
    def expiry(self) -> dt.date:
        """The last signing found plus the tenor: when the agreement ends unless renewed."""
        signed = _first_day(self.last_signed)
        try:
            return signed.replace(year=signed.year + self.tenor_years)
        except ValueError:  # 29 February
            return signed.replace(year=signed.year + self.tenor_years, day=28)

    def status_on(self, day: dt.date) -> AgreementStatus:
        """In force until its expiry; after it, presumed renewed when a source shows it in use
        after that date (the renewal itself was not found), else lapsed."""
        expiry = self.expiry
        if day <= expiry:
            return AgreementStatus.IN_FORCE
        if self.in_use_evidence is not None and _first_day(self.in_use_evidence) > expiry:
            return AgreementStatus.PRESUMED_RENEWED
        return AgreementStatus.LAPSED

    @property
    def last_signed(self) -> str:
        """The latest signing or renewal found (partial dates of one year sort correctly)."""
        dates = [*([self.signed] if self.signed else []), *self.renewed]
        assert dates, self
        return max(dates)

    def size_minor(self, currency_code: str) -> int | None:
        amount = self.size[currency_code]
        return None if amount is None else minor_units_of(amount, currency_code)


class AgreementStatus(enum.StrEnum):
    IN_FORCE = "in_force"
    PRESUMED_RENEWED = "presumed_renewed"  # in use after its computed expiry; renewal not found
    LAPSED = "lapsed"


class SwapLinePolicy(_Entry):
    """The deployment's rules for drawing on swap lines (one place; governance data)."""

    # Draw on agreements past their computed expiry that a source shows in use afterwards.
    draw_presumed_renewed: StrictBool = False
    # Draw on agreements past their expiry with no later evidence of use.
    draw_lapsed: StrictBool = False
    # A central bank's facility funded by a line converts only for trade between the line's two
    # states; True lets it serve its banks' payments to any state.
    facility_third_country: StrictBool = False

    def drawable(self, status: AgreementStatus) -> bool:
        if status is AgreementStatus.IN_FORCE:
            return True
        if status is AgreementStatus.PRESUMED_RENEWED:
            return self.draw_presumed_renewed
        return self.draw_lapsed


class FxProviderRole(enum.StrEnum):
    MARKET_MAKER = "market_maker"  # a commercial bank dealing from its own liquidity
    CLEARING_BANK = "clearing_bank"  # a designated offshore clearing bank for a currency


class FxProviderEntry(_Entry):
    """A participant that publishes quotes and converts other banks' payments (its consent).

    It converts between the two currencies of each pair at its own quotes (``provider`` = its
    BIC in the rate file), paying out of its own accounts in the currency it delivers, up to
    ``dealing_limit`` per conversion. ``clients``: the countries whose banks it deals for (the
    payment's debtor or creditor agent is there); None: any bank. Central banks' facilities are
    not listed here: they follow from the swap lines (``Network.swap_line_policy``).
    """

    bic: Bic
    role: FxProviderRole
    pairs: tuple[Annotated[str, BeforeValidator(_currency_pair)], ...]
    clients: tuple[CountryCode, ...] | None = None
    # Major units of the currency delivered; absent: no limit besides its liquidity.
    dealing_limit: dict[CurrencyCode, PositiveMajorAmount] = Field(default_factory=dict)
    # A flat charge per conversion, in major units of the currency it receives (a commission,
    # deducted from the amount converted: ISO 20022's charges, ``ChrgBr``); absent: none.
    charge: dict[CurrencyCode, NonNegativeMajorAmount] = Field(default_factory=dict)
    uncertain: StrictBool = False
    note: Text | None = None
    sources: tuple[SourceKey, ...] = ()

    @property
    def currency_pairs(self) -> tuple[tuple[str, str], ...]:
        return tuple((pair[:3], pair[4:]) for pair in self.pairs)

    def dealing_limit_minor(self, currency_code: str) -> int | None:
        amount = self.dealing_limit.get(currency_code)
        return None if amount is None else minor_units_of(amount, currency_code)

    def charge_minor(self, currency_code: str) -> int:
        amount = self.charge.get(currency_code)
        return 0 if amount is None else minor_units_of(amount, currency_code)


class PspChannel(enum.StrEnum):
    CARD = "card"  # a card scheme: issuers' cardholders pay at acquirers' merchants
    WALLET = "wallet"  # a mobile wallet or QR network


class PspOperationStatus(enum.StrEnum):
    """How far a payment-service provider's business in one country has got."""

    ACTIVE = "active"  # cards issued or accepted, or wallets accepted: payments flow
    PLANNED = "planned"  # announced (cards to be issued, a launch), not known to be operating
    NEGOTIATING = "negotiating"  # talks reported, nothing signed
    MOU = "mou"  # a memorandum of understanding signed; not operating yet
    EXITED = "exited"  # it operated there and stopped (``until``)


# A payment-service provider's identifier in the network file (it has no BIC of its own here).
PspId = Annotated[StrictStr, Field(pattern=r"^[a-z][a-z0-9_]{1,31}$")]


class PspOperation(_Entry):
    """A provider's business in one country, with its status and dates (year is enough)."""

    country: CountryCode
    status: PspOperationStatus
    since: PartialDate | None = None
    until: PartialDate | None = None  # when it stopped (EXITED), or when a status ended
    # Institutions the sources name for it there (issuers, acquirers, a national switch).
    partners: tuple[Text, ...] = ()
    uncertain: StrictBool = False
    note: Text | None = None
    sources: tuple[SourceKey, ...] = ()

    def operating_on(self, day: dt.date) -> bool:
        """Payments flowed on ``day``: active or (before its exit) exited, started (or no start
        known) and not ended."""
        if self.status not in (PspOperationStatus.ACTIVE, PspOperationStatus.EXITED):
            return False
        started = self.since is None or _first_day(self.since) <= day
        return started and (self.until is None or day < _first_day(self.until))


class PspSettlementBank(_Entry):
    """A bank through whose account at the central bank a provider settles one currency."""

    currency: CurrencyCode
    bic: Bic
    uncertain: StrictBool = False
    note: Text | None = None
    sources: tuple[SourceKey, ...] = ()


class PaymentServiceProvider(_Entry):
    """A card scheme or wallet operator whose retail payments settle through banks' accounts.

    It holds no account in the network: its net obligations settle as interbank payments between
    its settlement banks. For each currency, the first bank listed is its principal settlement
    bank (cross-border settlement goes through it; the others settle with it domestically).
    """

    id: PspId
    name: Text
    operator: Text  # the company that runs it
    country: CountryCode  # home country
    channel: PspChannel
    operations: tuple[PspOperation, ...] = ()
    settlement_banks: tuple[PspSettlementBank, ...] = ()
    uncertain: StrictBool = False
    note: Text | None = None
    sources: tuple[SourceKey, ...] = ()

    def banks_for(self, currency_code: str) -> tuple[str, ...]:
        """The settlement banks in ``currency_code``, principal first (empty if none)."""
        return tuple(bank.bic for bank in self.settlement_banks if bank.currency == currency_code)

    def principal_bank(self, currency_code: str) -> str:
        banks = self.banks_for(currency_code)
        if not banks:
            raise KeyError(f"payment-service provider {self.id!r} settles no {currency_code}")
        return banks[0]

    def operating_in(self, country: str, day: dt.date) -> bool:
        return any(op.country == country and op.operating_on(day) for op in self.operations)


class NetworkProblems(ValueError):
    """Cross-reference problems found in a network, each with its location in the document."""

    def __init__(self, problems: list[Problem]) -> None:
        assert problems
        super().__init__("; ".join(message for _, message in problems))
        self.problems = problems


class Network(_Entry):
    """A validated network: reference data, and the ledger accounts and transfers it implies."""

    format: Annotated[int, BeforeValidator(_format_version)] = FORMAT_VERSION
    name: Text
    description: Text | None = None
    countries: tuple[CountryEntry, ...]
    participants: tuple[ParticipantEntry, ...]
    correspondent_links: tuple[CorrespondentLink, ...] = ()
    swap_lines: tuple[SwapLine, ...] = ()
    swap_line_policy: SwapLinePolicy = SwapLinePolicy()
    fx_providers: tuple[FxProviderEntry, ...] = ()
    payment_service_providers: tuple[PaymentServiceProvider, ...] = ()
    # Source key -> where the fact comes from (a URL, or a dataset and its version).
    sources: dict[SourceKey, Text] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Network:
        problems = list(_network_problems(self))
        if problems:
            raise NetworkProblems(problems)
        return self

    # Lookups.

    @cached_property
    def participants_by_bic(self) -> Mapping[str, ParticipantEntry]:
        return MappingProxyType({p.bic: p for p in self.participants})

    @cached_property
    def countries_by_code(self) -> Mapping[str, CountryEntry]:
        return MappingProxyType({c.code: c for c in self.countries})

    @cached_property
    def settlement_agents(self) -> Mapping[str, str]:
        """Currency code -> BIC of the central bank that issues and settles it."""
        return MappingProxyType(_settlement_agents(self))

    def participant(self, bic: str) -> ParticipantEntry:
        found = self.participants_by_bic.get(bic)
        if found is None:
            raise KeyError(f"no participant with BIC {bic!r} in network {self.name!r}")
        return found

    def country(self, code: str) -> CountryEntry:
        found = self.countries_by_code.get(code)
        if found is None:
            raise KeyError(f"no country {code!r} in network {self.name!r}")
        return found

    def country_of(self, bic: str) -> CountryEntry:
        return self.country(self.participant(bic).country)

    def currency_settlement_agent(self, currency_code: str) -> str:
        """The BIC of the central bank that issues ``currency_code`` and settles it."""
        found = self.settlement_agents.get(currency_code)
        if found is None:
            raise KeyError(f"no central bank issues {currency_code!r} in network {self.name!r}")
        return found

    def home_currency(self, bic: str) -> str:
        return self.country_of(bic).currency

    def allowed_currencies(self, bic: str) -> tuple[str, ...]:
        entry = self.participant(bic)
        return entry.currencies or (self.home_currency(bic),)

    # Ledger view.

    @cached_property
    def accounts_by_key(self) -> Mapping[AccountKey, Account]:
        derived = list(_derive_accounts(self))
        accounts = dict(derived)
        # The validator proved keys unique; ids are hashes of keys, so they must be unique too.
        assert len(accounts) == len(derived), "duplicate account keys"
        assert len({account.id for _, account in derived}) == len(derived), "account id collision"
        return MappingProxyType(accounts)

    def ledger_accounts(self) -> list[Account]:
        """Every account the network implies, in file order; ids are derived from the keys."""
        return list(self.accounts_by_key.values())

    def opening_balances(self) -> list[tuple[AccountKey, int]]:
        """(account key, amount in minor units) for every funded account, in file order."""
        return list(_opening_balances(self))

    def opening_transfers(self) -> list[Transfer]:
        """Transfers from each currency's issuance account that fund the opening balances."""
        transfers = []
        for key, amount in self.opening_balances():
            credit = self.accounts_by_key[key]
            agent = self.currency_settlement_agent(credit.currency)
            debit = self.accounts_by_key[AccountKey.issuance(agent, credit.currency)]
            assert debit.currency == credit.currency, (debit, credit)
            transfers.append(
                Transfer(
                    id=account_id_for_key(opening_transfer_key(key)),
                    debit_account=debit.id,
                    credit_account=credit.id,
                    amount=amount,
                    code=OPENING_TRANSFER_CODE,
                    ref=OPENING_TRANSFER_REF,
                )
            )
        return transfers


def _settlement_agents(network: Network) -> dict[str, str]:
    countries = {c.code: c for c in network.countries}
    agents: dict[str, str] = {}
    for entry in network.participants:
        if entry.kind is ParticipantKind.CENTRAL_BANK and entry.country in countries:
            agents.setdefault(countries[entry.country].currency, entry.bic)
    return agents


# Account derivation. The validator has already proven that keys are unique and every reference
# resolves, so these functions assert instead of reporting.


def _derive_accounts(network: Network) -> Iterator[tuple[AccountKey, Account]]:
    constrained = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
    for entry in network.participants:
        home = network.home_currency(entry.bic)
        if entry.kind is ParticipantKind.CENTRAL_BANK:
            # The issuance account is unconstrained: it goes negative by exactly the amount of the
            # currency in circulation inside the network.
            yield _account(AccountKey.issuance(entry.bic, home), AccountKind.ISSUANCE, 0)
        settlement = AccountKey.settlement(entry.bic, home)
        yield _account(settlement, AccountKind.SETTLEMENT, constrained)
        for opened in entry.accounts:
            key = _opened_key(entry.bic, opened)
            if key != settlement:
                yield _account(key, opened.kind, constrained)
    for link in network.correspondent_links:
        limit = minor_units_of(link.credit_limit, link.currency)
        yield _account(link.key, AccountKind.VOSTRO, constrained, limit)
    derived = {key for entry in network.participants for key in _participant_keys(network, entry)}
    for line in network.swap_lines:
        for key, account in _swap_line_accounts(network, line):
            if key not in derived:
                derived.add(key)
                yield key, account
    for key in _fx_income_keys(network):
        if key not in derived:
            derived.add(key)
            yield _account(key, AccountKind.FX_INCOME, constrained)


def _participant_keys(network: Network, entry: ParticipantEntry) -> Iterator[AccountKey]:
    yield AccountKey.settlement(entry.bic, network.home_currency(entry.bic))
    for opened in entry.accounts:
        yield _opened_key(entry.bic, opened)


def _swap_line_accounts(network: Network, line: SwapLine) -> Iterator[tuple[AccountKey, Account]]:
    """Per side: what it has drawn of the other's currency (the limit is the agreed size, 0 where
    it is unknown), its account in the other's currency at the other central bank (where drawn
    tranches and counter-values are held: its FX facility's liquidity), and the provider's
    interest income, paid in the drawer's currency."""
    constrained = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
    first, second = line.central_banks
    for drawer, provider in ((second, first), (first, second)):
        drawn = network.home_currency(provider)
        limit = line.size_minor(drawn) or 0
        key = AccountKey.swap_line(drawer, provider, drawn)
        yield _account(key, AccountKind.SWAP_LINE, constrained, limit)
        yield _account(AccountKey.settlement(drawer, drawn), AccountKind.SETTLEMENT, constrained)
        # Interest is paid in the drawer's currency (``payments/swap_lines.py``).
        interest = AccountKey.swap_interest(provider, network.home_currency(drawer))
        yield _account(interest, AccountKind.SWAP_INTEREST, constrained)


def _fx_income_keys(network: Network) -> Iterator[AccountKey]:
    """An FX income account per currency each provider (or central-bank facility) deals."""
    for provider in network.fx_providers:
        for pair in provider.currency_pairs:
            for code in pair:
                yield AccountKey.fx_income(provider.bic, code)
    for line in network.swap_lines:
        for bic in line.central_banks:
            for other in line.central_banks:
                yield AccountKey.fx_income(bic, network.home_currency(other))


def _account(
    key: AccountKey, kind: AccountKind, flags: int, limit: int = 0
) -> tuple[AccountKey, Account]:
    """``key`` and the ledger account it names: its owner's, in its currency."""
    assert limit >= 0, (key, limit)
    return key, Account(
        id=account_id_for_key(key),
        participant=key.owner,
        currency=key.currency,
        kind=kind.value,
        flags=flags,
        credit_limit=limit,
        code=NETWORK_ACCOUNT_CODE,
        ref=str(key),
    )


def _opened_key(bic: str, opened: AccountEntry) -> AccountKey:
    # Openable kinds (settlement, liquidity, fee) are key kinds of the same name.
    return AccountKey(AccountKeyKind(opened.kind.value), bic, opened.currency)


def _opening_balances(network: Network) -> Iterator[tuple[AccountKey, int]]:
    for entry in network.participants:
        for opened in entry.accounts:
            if opened.opening_balance is not None:
                minor = minor_units_of(opened.opening_balance, opened.currency)
                yield _opened_key(entry.bic, opened), minor
    for link in network.correspondent_links:
        if link.opening_balance is not None:
            yield link.key, minor_units_of(link.opening_balance, link.currency)


# Validation across entries. Each check yields (location, message); the loader maps locations to
# line numbers, so one run reports every problem in the file.


def loc_text(loc: tuple[object, ...]) -> str:
    """A location inside an entry as text: ``accounts[0].opening_balance``.

    pydantic's own tags (``[key]``, ``function-after[...]``) are not locations and are left out.
    """
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif isinstance(part, str) and "[" not in part:
            text += f".{part}" if text else part
    return text


def participant_label(bic: object) -> str:
    return f"participant {bic!r}"


def link_label(holder: object, owner: object, currency_code: object) -> str:
    return f"correspondent link {holder} -> {owner} ({currency_code})"


def swap_line_label(central_banks: object) -> str:
    if isinstance(central_banks, list | tuple) and len(central_banks) == 2:
        return f"swap line {central_banks[0]}/{central_banks[1]}"
    return "swap line"


def entry_label(section: str, index: int, entry: object) -> str:
    """How messages name an entry: by its BIC or code where it has one, else by position.

    Works on validated entries and on the raw mappings read from YAML, so that messages from
    pydantic (raw input) and from the cross-checks (entries) name things the same way.
    """

    def field(name: str) -> object:
        if isinstance(entry, Mapping):
            return entry.get(name)
        return getattr(entry, name, None)

    if section == "countries" and isinstance(field("code"), str):
        return f"country {field('code')!r}"
    if section == "participants" and isinstance(field("bic"), str):
        return participant_label(field("bic"))
    if section == "correspondent_links" and isinstance(field("holder"), str):
        return link_label(field("holder"), field("owner"), field("currency"))
    if section == "swap_lines" and field("central_banks") is not None:
        return swap_line_label(field("central_banks"))
    if section == "payment_service_providers" and isinstance(field("id"), str):
        return psp_label(field("id"))
    return f"{section}[{index}]"


def _network_problems(network: Network) -> Iterator[Problem]:
    yield from _country_problems(network)
    yield from _participant_problems(network)
    yield from _account_problems(network)
    yield from _link_problems(network)
    yield from _swap_line_problems(network)
    yield from _fx_provider_problems(network)
    yield from _correspondent_for_problems(network)
    yield from _uncertain_problems(network)
    yield from _issuance_total_problems(network)
    yield from _source_problems(network)
    yield from _psp_problems(network)


def _source_problems(network: Network) -> Iterator[Problem]:
    """Every source an entry cites is in the ``sources`` table."""
    sections: tuple[tuple[str, tuple[Any, ...]], ...] = (
        ("countries", network.countries),
        ("participants", network.participants),
        ("correspondent_links", network.correspondent_links),
        ("swap_lines", network.swap_lines),
        ("fx_providers", network.fx_providers),
    )
    for section, entries in sections:
        for index, entry in enumerate(entries):
            for key in entry.sources:
                if key not in network.sources:
                    yield (section, index, "sources"), f"source {key!r} is not in sources"


def _country_problems(network: Network) -> Iterator[Problem]:
    seen: set[str] = set()
    for index, country in enumerate(network.countries):
        label = f"country {country.code!r}"
        if country.code in seen:
            yield ("countries", index, "code"), f"{label}: duplicate country"
        seen.add(country.code)
        if country.sco_status is not ScoStatus.NONE and country.sco_status_since is None:
            yield ("countries", index), f"{label}: sco_status_since is required"


def _participant_problems(network: Network) -> Iterator[Problem]:
    countries = {c.code: c for c in network.countries}
    seen: set[str] = set()
    central_banks: dict[str, str] = {}  # currency -> BIC
    for index, entry in enumerate(network.participants):
        loc: Loc = ("participants", index)
        label = participant_label(entry.bic)
        if entry.bic in seen:
            yield (*loc, "bic"), f"{label}: duplicate BIC"
        seen.add(entry.bic)
        if bic_country(entry.bic) != entry.country:
            message = (
                f"{label}: BIC country {bic_country(entry.bic)!r} does not match "
                f"country {entry.country!r}"
            )
            yield (*loc, "bic"), message
        yield from _synthetic_bic_problems(entry, loc)
        country = countries.get(entry.country)
        if country is None:
            yield (*loc, "country"), f"{label}: country {entry.country!r} is not in countries"
            continue
        home = country.currency
        if entry.currencies is not None and home not in entry.currencies:
            message = f"{label}: currencies must include the home currency {home}"
            yield (*loc, "currencies"), message
        if entry.currencies is not None and len(set(entry.currencies)) != len(entry.currencies):
            yield (*loc, "currencies"), f"{label}: currencies lists a currency twice"
        if entry.kind is ParticipantKind.CENTRAL_BANK:
            other = central_banks.setdefault(home, entry.bic)
            if other != entry.bic:
                yield (*loc, "kind"), f"{label}: {other} is already the central bank for {home}"


def _synthetic_bic_problems(entry: ParticipantEntry, loc: Loc) -> Iterator[Problem]:
    # ISO 9362: a "0" as the second character of the location code marks a test-and-training BIC,
    # which is never a live SWIFT address. Synthetic codes must use that form, and codes in that
    # form must be declared synthetic, so that no invented code can pass for a real one.
    label = participant_label(entry.bic)
    test_form = entry.bic[7] == "0"
    if entry.synthetic_bic and not test_form:
        message = f"{label}: a synthetic BIC must use the ISO 9362 test form (8th character '0')"
        yield (*loc, "bic"), message
    if test_form and not entry.synthetic_bic:
        message = f"{label}: {entry.bic} is an ISO 9362 test BIC; mark it synthetic_bic: true"
        yield (*loc, "bic"), message
    if entry.synthetic_bic and not entry.uncertain:
        yield (*loc, "synthetic_bic"), f"{label}: a synthetic BIC must be marked uncertain: true"


def _account_problems(network: Network) -> Iterator[Problem]:
    countries = {c.code: c for c in network.countries}
    agents = _settlement_agents(network)
    keys: set[AccountKey] = set()
    for index, entry in enumerate(network.participants):
        if entry.country not in countries:
            continue  # Reported by _participant_problems.
        home = countries[entry.country].currency
        allowed = entry.currencies or (home,)
        label = participant_label(entry.bic)
        if home not in agents:
            message = f"{label}: no central bank in the network issues its home currency {home}"
            yield ("participants", index, "country"), message
        for number, opened in enumerate(entry.accounts):
            loc: Loc = ("participants", index, "accounts", number)
            key = _opened_key(entry.bic, opened)
            if key in keys:
                yield loc, f"{label}: duplicate account {key}"
            keys.add(key)
            if opened.currency not in allowed:
                message = (
                    f"{label}: account currency {opened.currency} is not one of the "
                    f"participant's currencies ({', '.join(allowed)})"
                )
                yield (*loc, "currency"), message
            elif opened.currency not in agents:
                message = f"{label}: no central bank in the network issues {opened.currency}"
                yield (*loc, "currency"), message
            balance = opened.opening_balance
            yield from _amount_problems(loc, "opening_balance", label, balance, opened.currency)


def _link_problems(network: Network) -> Iterator[Problem]:
    by_bic = {p.bic: p for p in network.participants}
    agents = _settlement_agents(network)
    home_currencies = {c.code: c.currency for c in network.countries}
    seen: set[AccountKey] = set()
    for index, link in enumerate(network.correspondent_links):
        loc: Loc = ("correspondent_links", index)
        label = link_label(link.holder, link.owner, link.currency)
        for role, bic in (("holder", link.holder), ("owner", link.owner)):
            if bic not in by_bic:
                yield (*loc, role), f"{label}: unknown participant {bic!r}"
        if link.holder == link.owner:
            yield (*loc, "owner"), f"{label}: holder and owner must be different"
        if link.key in seen:
            yield loc, f"{label}: duplicate correspondent link"
        seen.add(link.key)
        holder = by_bic.get(link.holder)
        if holder is not None and holder.country in home_currencies:
            allowed = holder.currencies or (home_currencies[holder.country],)
            if link.currency not in allowed:
                message = (
                    f"{label}: the holder does not deal in {link.currency} "
                    f"(its currencies: {', '.join(allowed)})"
                )
                yield (*loc, "currency"), message
        if link.currency not in agents:
            message = f"{label}: no central bank in the network issues {link.currency}"
            yield (*loc, "currency"), message
        yield from _amount_problems(loc, "credit_limit", label, link.credit_limit, link.currency)
        balance = link.opening_balance
        yield from _amount_problems(loc, "opening_balance", label, balance, link.currency)


def _swap_line_problems(network: Network) -> Iterator[Problem]:
    by_bic = {p.bic: p for p in network.participants}
    home_currencies = {c.code: c.currency for c in network.countries}
    seen: set[frozenset[str]] = set()
    for index, line in enumerate(network.swap_lines):
        loc: Loc = ("swap_lines", index)
        label = swap_line_label(line.central_banks)
        pair = frozenset(line.central_banks)
        if len(pair) != 2:
            yield (*loc, "central_banks"), f"{label}: the two central banks must be different"
            continue
        if pair in seen:
            yield (*loc, "central_banks"), f"{label}: duplicate swap line"
        seen.add(pair)
        currencies: list[str] = []
        for number, bic in enumerate(line.central_banks):
            entry = by_bic.get(bic)
            if entry is None:
                yield (*loc, "central_banks", number), f"{label}: unknown participant {bic!r}"
            elif entry.kind is not ParticipantKind.CENTRAL_BANK:
                yield (*loc, "central_banks", number), f"{label}: {bic} is not a central bank"
            elif entry.country in home_currencies:
                currencies.append(home_currencies[entry.country])
        if len(currencies) == 2 and set(line.size) != set(currencies):
            message = (
                f"{label}: size must give exactly the currencies {' and '.join(currencies)}, "
                f"got {', '.join(line.size) or 'none'}"
            )
            yield (*loc, "size"), message
            continue
        if all(amount is None for amount in line.size.values()):
            yield (*loc, "size"), f"{label}: at least one size must be known"
        for code, amount in line.size.items():
            yield from _amount_problems((*loc, "size"), code, label, amount, code)
        if line.signed is None and not line.renewed:
            yield loc, f"{label}: give signed or renewed (a date is required)"


def currencies_held(network: Network, bic: str) -> frozenset[str]:
    """The currencies ``bic`` holds money in: its settlement and opened accounts, and nostros."""
    entry = network.participant(bic)
    held = {key.currency for key in _participant_keys(network, entry)}
    held.update(link.currency for link in network.correspondent_links if link.owner == bic)
    return frozenset(held)


def _fx_provider_problems(network: Network) -> Iterator[Problem]:
    countries = {c.code for c in network.countries}
    seen: set[str] = set()
    for index, provider in enumerate(network.fx_providers):
        loc: Loc = ("fx_providers", index)
        label = f"FX provider {provider.bic}"
        if provider.bic not in network.participants_by_bic:
            yield (*loc, "bic"), f"{label}: unknown participant"
            continue
        if provider.bic in seen:
            yield (*loc, "bic"), f"{label}: listed twice"
        seen.add(provider.bic)
        held = currencies_held(network, provider.bic)
        dealt: set[str] = set()
        for number, (base, quote) in enumerate(provider.currency_pairs):
            dealt.update((base, quote))
            for code in (base, quote):
                if code not in held:
                    message = f"{label}: deals {base}/{quote} but holds no {code} account"
                    yield (*loc, "pairs", number), message
        for code in provider.clients or ():
            if code not in countries:
                yield (*loc, "clients"), f"{label}: unknown client country {code!r}"
        for code, amount in provider.dealing_limit.items():
            if code not in dealt:
                yield (*loc, "dealing_limit", code), f"{label}: it does not deal {code}"
            yield from _amount_problems((*loc, "dealing_limit"), code, label, amount, code)


def _correspondent_for_problems(network: Network) -> Iterator[Problem]:
    for index, entry in enumerate(network.participants):
        for number, bic in enumerate(entry.correspondent_for):
            if bic not in network.participants_by_bic or bic == entry.bic:
                message = f"{participant_label(entry.bic)}: correspondent_for names {bic!r}"
                yield ("participants", index, "correspondent_for", number), message


def _amount_problems(
    loc: Loc, field: str, label: str, amount: Decimal | None, currency_code: str
) -> Iterator[Problem]:
    if amount is None:
        return
    try:
        minor_units_of(amount, currency_code)
    except ValueError as error:
        yield (*loc, field), f"{label}: {loc_text((*loc[2:], field))}: {error}"


def _uncertain_problems(network: Network) -> Iterator[Problem]:
    sections: list[tuple[str, tuple[Any, ...]]] = [
        ("countries", network.countries),
        ("participants", network.participants),
        ("correspondent_links", network.correspondent_links),
        ("swap_lines", network.swap_lines),
        ("fx_providers", network.fx_providers),
    ]
    for section, entries in sections:
        for index, entry in enumerate(entries):
            if entry.uncertain and entry.note is None:
                label = entry_label(section, index, entry)
                message = f"{label}: an uncertain fact needs a note saying what is uncertain"
                yield (section, index, "uncertain"), message


def _issuance_total_problems(network: Network) -> Iterator[Problem]:
    # Every opening balance in a currency is debited from one issuance account, whose debit counter
    # must stay within AMOUNT_MAX like any other; report the entry that would push it past.
    funded: list[tuple[Loc, str, Decimal | None, str]] = []
    for index, entry in enumerate(network.participants):
        label = participant_label(entry.bic)
        for number, opened in enumerate(entry.accounts):
            loc: Loc = ("participants", index, "accounts", number, "opening_balance")
            funded.append((loc, label, opened.opening_balance, opened.currency))
    for index, link in enumerate(network.correspondent_links):
        loc = ("correspondent_links", index, "opening_balance")
        label = link_label(link.holder, link.owner, link.currency)
        funded.append((loc, label, link.opening_balance, link.currency))
    totals: dict[str, int] = {}
    for loc, label, amount, currency_code in funded:
        if amount is None:
            continue
        try:
            minor = minor_units_of(amount, currency_code)
        except ValueError:
            continue  # Reported by _amount_problems.
        totals[currency_code] = totals.get(currency_code, 0) + minor
        if totals[currency_code] - minor <= AMOUNT_MAX < totals[currency_code]:
            message = (
                f"{label}: opening balances in {currency_code} add up to more than "
                f"{AMOUNT_MAX} minor units, the most one issuance account can record"
            )
            yield loc, message


def psp_label(psp_id: object) -> str:
    return f"payment-service provider {psp_id!r}"


def _psp_problems(network: Network) -> Iterator[Problem]:
    """Payment-service providers: unique ids, known countries, dates in order, settlement banks
    that exist and hold the currency, a settlement bank for every currency they operate in, and
    (like every entry) a note on each uncertain fact and only sources in the table."""
    seen: set[str] = set()
    for index, psp in enumerate(network.payment_service_providers):
        loc: Loc = ("payment_service_providers", index)
        label = psp_label(psp.id)
        if psp.id in seen:
            yield (*loc, "id"), f"{label}: duplicate id"
        seen.add(psp.id)
        home = network.countries_by_code.get(psp.country)
        if home is None:
            yield (*loc, "country"), f"{label}: country {psp.country!r} is not in countries"
        elif _operates(psp) and not psp.banks_for(home.currency):
            message = f"{label}: it operates but has no settlement bank in {home.currency}"
            yield (*loc, "settlement_banks"), message
        yield from _psp_operation_problems(network, psp, loc)
        yield from _psp_bank_problems(network, psp, loc)
        yield from _fact_problems(network, loc, label, psp)


def _operates(psp: PaymentServiceProvider) -> bool:
    return any(operation.status is PspOperationStatus.ACTIVE for operation in psp.operations)


def _psp_operation_problems(
    network: Network, psp: PaymentServiceProvider, loc: Loc
) -> Iterator[Problem]:
    label = psp_label(psp.id)
    for number, operation in enumerate(psp.operations):
        where: Loc = (*loc, "operations", number)
        country = network.countries_by_code.get(operation.country)
        if country is None:
            yield (*where, "country"), f"{label}: country {operation.country!r} is not in countries"
            continue
        since, until = operation.since, operation.until
        if since is not None and until is not None and _first_day(until) < _first_day(since):
            yield (*where, "until"), f"{label}: in {country.code}, until {until} is before {since}"
        if operation.status is PspOperationStatus.EXITED and until is None:
            yield (*where, "until"), f"{label}: an exit from {country.code} needs its date (until)"
        active = operation.status is PspOperationStatus.ACTIVE and until is None
        if active and not psp.banks_for(country.currency):
            message = (
                f"{label}: it operates in {country.code} but has no settlement bank in "
                f"{country.currency}"
            )
            yield (*where, "status"), message
        yield from _fact_problems(network, where, label, operation)


def _psp_bank_problems(
    network: Network, psp: PaymentServiceProvider, loc: Loc
) -> Iterator[Problem]:
    label = psp_label(psp.id)
    seen: set[tuple[str, str]] = set()
    for number, bank in enumerate(psp.settlement_banks):
        where: Loc = (*loc, "settlement_banks", number)
        if (bank.currency, bank.bic) in seen:
            yield where, f"{label}: settlement bank {bank.bic} ({bank.currency}) listed twice"
        seen.add((bank.currency, bank.bic))
        if bank.bic not in network.participants_by_bic:
            yield (*where, "bic"), f"{label}: settlement bank {bank.bic!r} is not a participant"
        elif bank.currency not in currencies_held(network, bank.bic):
            message = f"{label}: settlement bank {bank.bic} holds no {bank.currency} account"
            yield (*where, "currency"), message
        yield from _fact_problems(network, where, label, bank)


def _fact_problems(
    network: Network,
    loc: Loc,
    label: str,
    entry: PaymentServiceProvider | PspOperation | PspSettlementBank,
) -> Iterator[Problem]:
    """An uncertain fact says what is uncertain; every source it cites is in the table."""
    if entry.uncertain and entry.note is None:
        message = f"{label}: an uncertain fact needs a note saying what is uncertain"
        yield (*loc, "uncertain"), message
    for key in entry.sources:
        if key not in network.sources:
            yield (*loc, "sources"), f"{label}: source {key!r} is not in sources"
