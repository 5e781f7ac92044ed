"""Calibration: trade figures per corridor, the national-currency share, and exact FX conversion.

Invariants:
- Money totals are converted with ``Fraction`` (never ``float``): a USD figure becomes an ``int``
  of minor units by one floor division, so the same calibration always gives the same integers.
- Every corridor has a source; uncertain, derived or assumed figures say so (``uncertain``).
- CNY is the hub: ``reference_data/sco_rates.yaml`` quotes CNY/XXX (units of XXX per 1 CNY);
  the mid is (bid + ask) / 2 of the MARKET quote. USD enters only through ``usd_cny``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from importlib import resources
from pathlib import Path

from ruamel.yaml import YAML

from sco_settle.domain.money import currency

MARKET = "MARKET"
USD_CENTS = 100
_BN = 10**9


class CalibrationError(ValueError):
    """The calibration file is malformed or refers to something the network lacks."""


@dataclass(frozen=True, slots=True)
class Corridor:
    """Goods trade between two states, paid in both directions through SCO Settle."""

    a: str
    b: str
    group: str
    trade_usd_bn: Fraction
    a_to_b_usd_bn: Fraction | None  # value paid from a to b (a's imports); None: split 50/50
    national_share: Fraction | None  # None: the calibration's default
    source: str
    uncertain: str

    @property
    def name(self) -> str:
        return f"{self.a}-{self.b}"

    def paid_usd_bn(self, payer: str) -> Fraction:
        """Yearly value paid by ``payer``'s banks to the other side."""
        assert payer in (self.a, self.b), payer
        a_to_b = self.a_to_b_usd_bn
        if a_to_b is None:
            a_to_b = self.trade_usd_bn / 2
        assert 0 <= a_to_b <= self.trade_usd_bn, self
        return a_to_b if payer == self.a else self.trade_usd_bn - a_to_b


@dataclass(frozen=True, slots=True)
class Peak:
    minute: int
    sd_minutes: int
    weight: Fraction


@dataclass(frozen=True, slots=True)
class Workload:
    default_scale: Fraction
    size_median_usd: int
    size_sigma: float  # a distribution parameter for numpy, not money
    size_max_usd: int
    urgent_share: Fraction
    same_currency_share: Fraction
    domestic_ratio: Fraction
    open_minute: int
    close_minute: int
    peaks: tuple[Peak, ...]
    lsm_interval_minutes: int
    dns_cycle_minutes: tuple[int, ...]
    queue_timeout_minutes: int
    opening_balance_share: Fraction

    def cycle_minutes(self, mode: str) -> frozenset[int]:
        """The minutes (from midnight) at whose end a settlement mode runs a cycle: the LSM
        every ``lsm_interval_minutes`` for RTGS, the scheduled netting cycles for DNS."""
        schedules = {
            "rtgs": range(
                self.open_minute + self.lsm_interval_minutes,
                self.close_minute + 1,
                self.lsm_interval_minutes,
            ),
            "dns": self.dns_cycle_minutes,
        }
        return frozenset(schedules[mode])


@dataclass(frozen=True, slots=True)
class RetailFlow:
    """One provider's retail payments in one direction: cardholders or wallet users of
    ``payer`` paying merchants of ``payee`` (an assumption, like every retail figure)."""

    provider: str  # a payment-service provider's id in the network file
    payer: str  # country
    payee: str  # country
    per_day: int  # payments per simulated day at scale 1


@dataclass(frozen=True, slots=True)
class RetailCalibration:
    """The payment-service providers' retail flows (``sim/retail.py``)."""

    size_median_usd: int
    size_sigma: float  # a distribution parameter for numpy, not money
    size_max_usd: int
    cycle_cutoff_minute: int  # the daily cycle's cut-off: its settlement payments go in then
    settlement_only_banks: frozenset[str]  # banks the trade workload leaves out
    flows: tuple[RetailFlow, ...]


@dataclass(frozen=True, slots=True)
class Calibration:
    business_days: int
    usd_cny: Fraction
    default_national_share: Fraction
    totals_usd_bn: dict[str, Fraction]
    corridors: tuple[Corridor, ...]
    workload: Workload
    retail: RetailCalibration | None = None  # None: no retail flows

    def national_share(self, corridor: Corridor, override: Fraction | None = None) -> Fraction:
        if override is not None:
            return override
        if corridor.national_share is not None:
            return corridor.national_share
        return self.default_national_share

    def daily_usd_cents(
        self, corridor: Corridor, payer: str, scale: Fraction, share: Fraction | None = None
    ) -> int:
        """The value one simulated day carries from ``payer``: yearly / days x share x scale."""
        yearly = corridor.paid_usd_bn(payer) * _BN * USD_CENTS
        daily = yearly * self.national_share(corridor, share) * scale / self.business_days
        return daily.numerator // daily.denominator


def _fraction(value: object, where: str) -> Fraction:
    if isinstance(value, bool | float):
        raise CalibrationError(f"{where}: {value!r} must be a quoted decimal string or an integer")
    try:
        return Fraction(str(value))
    except (ValueError, ZeroDivisionError) as error:
        raise CalibrationError(f"{where}: {value!r} is not a number") from error


def _sources(value: object) -> str:
    if isinstance(value, list):
        return "; ".join(str(item) for item in value)
    return str(value or "")


def load_calibration(path: str | Path | None = None) -> Calibration:
    """The shipped ``sim/calibration.yaml``, or a file of the same shape."""
    if path is None:
        text = resources.files("sco_settle.sim").joinpath("calibration.yaml").read_text()
    else:
        text = Path(path).read_text()
    document = YAML(typ="safe").load(text)
    if document.get("format") != 1:
        raise CalibrationError("calibration format must be 1")
    corridors = tuple(_corridor(entry, i) for i, entry in enumerate(document["corridors"]))
    names = [c.name for c in corridors]
    if len(set(names)) != len(names):
        raise CalibrationError(f"duplicate corridor in {names}")
    return Calibration(
        business_days=int(document["business_days_per_year"]),
        usd_cny=_fraction(document["usd_cny"]["value"], "usd_cny"),
        default_national_share=_fraction(
            document["default_national_share"]["value"], "default_national_share"
        ),
        totals_usd_bn={
            key: _fraction(entry["value"], f"totals.{key}")
            for key, entry in sorted(document["totals"].items())
        },
        corridors=corridors,
        workload=_workload(document["workload"]),
        retail=None if document.get("retail") is None else _retail(document["retail"]),
    )


def _corridor(entry: dict, index: int) -> Corridor:
    where = f"corridors[{index}]"
    a_to_b = entry.get("a_to_b_usd_bn")
    share = entry.get("national_share")
    corridor = Corridor(
        a=str(entry["a"]),
        b=str(entry["b"]),
        group=str(entry.get("group", "")),
        trade_usd_bn=_fraction(entry["trade_usd_bn"], f"{where}.trade_usd_bn"),
        a_to_b_usd_bn=None if a_to_b is None else _fraction(a_to_b, f"{where}.a_to_b_usd_bn"),
        national_share=None if share is None else _fraction(share, f"{where}.national_share"),
        source=_sources(entry.get("source")),
        uncertain=str(entry.get("uncertain") or ""),
    )
    if not corridor.source:
        raise CalibrationError(f"{where}: every figure needs a source")
    if corridor.a_to_b_usd_bn is not None and not (
        0 <= corridor.a_to_b_usd_bn <= corridor.trade_usd_bn
    ):
        raise CalibrationError(f"{where}: a_to_b_usd_bn must lie in 0 .. trade_usd_bn")
    if corridor.national_share is not None and not 0 <= corridor.national_share <= 1:
        raise CalibrationError(f"{where}: national_share must lie in 0 .. 1")
    return corridor


def _workload(entry: dict) -> Workload:
    size = entry["payment_size_usd"]
    hours = entry["business_hours"]
    workload = Workload(
        default_scale=_fraction(entry["default_scale"], "workload.default_scale"),
        size_median_usd=int(size["median"]),
        size_sigma=float(size["sigma"]),
        size_max_usd=int(size["max"]),
        urgent_share=_fraction(entry["urgent_share"], "workload.urgent_share"),
        same_currency_share=_fraction(entry["same_currency_share"], "same_currency_share"),
        domestic_ratio=_fraction(entry["domestic_ratio"], "workload.domestic_ratio"),
        open_minute=int(hours["open_minute"]),
        close_minute=int(hours["close_minute"]),
        peaks=tuple(
            Peak(int(p["minute"]), int(p["sd_minutes"]), _fraction(p["weight"], "peak weight"))
            for p in entry["peaks"]
        ),
        lsm_interval_minutes=int(entry["lsm_interval_minutes"]),
        dns_cycle_minutes=tuple(int(m) for m in entry["dns_cycle_minutes"]),
        queue_timeout_minutes=int(entry["queue_timeout_minutes"]),
        opening_balance_share=_fraction(
            entry["opening_balance_share"], "workload.opening_balance_share"
        ),
    )
    if not 0 <= workload.open_minute < workload.close_minute <= 24 * 60:
        raise CalibrationError("business hours must satisfy 0 <= open < close <= 1440")
    if not 0 < workload.opening_balance_share <= 1:
        raise CalibrationError("opening_balance_share must lie in 0 (excluded) .. 1")
    if sum(p.weight for p in workload.peaks) != 1:
        raise CalibrationError("intraday peak weights must sum to 1")
    return workload


def _retail(entry: dict) -> RetailCalibration:
    size = entry["payment_size_usd"]
    flows = tuple(
        RetailFlow(str(f["provider"]), str(f["payer"]), str(f["payee"]), int(f["per_day"]))
        for f in entry["flows"]
    )
    retail = RetailCalibration(
        size_median_usd=int(size["median"]),
        size_sigma=float(size["sigma"]),
        size_max_usd=int(size["max"]),
        cycle_cutoff_minute=int(entry["cycle_cutoff_minute"]),
        settlement_only_banks=frozenset(str(bic) for bic in entry.get("settlement_only_banks", ())),
        flows=flows,
    )
    if not 0 < retail.size_median_usd <= retail.size_max_usd:
        raise CalibrationError("retail.payment_size_usd: need 0 < median <= max")
    if not 0 <= retail.cycle_cutoff_minute < 24 * 60:
        raise CalibrationError("retail.cycle_cutoff_minute must lie in 0 .. 1439")
    for flow in flows:
        if flow.payer == flow.payee or flow.per_day < 0:
            raise CalibrationError(f"retail flow {flow}: two countries and per_day >= 0")
    keys = [(f.provider, f.payer, f.payee) for f in flows]
    if len(set(keys)) != len(keys):
        raise CalibrationError("retail.flows: a provider and direction is listed twice")
    return retail


class Rates:
    """Exact mid rates with CNY as the hub: USD -> any currency, any currency -> CNY."""

    def __init__(self, cny_per: dict[str, Fraction], usd_cny: Fraction) -> None:
        # cny_per[X] = units of X per 1 CNY (the CNY/XXX mid); cny_per["CNY"] = 1.
        self.cny_per = {"CNY": Fraction(1), **cny_per}
        self.usd_cny = usd_cny

    @classmethod
    def load(cls, usd_cny: Fraction, name_or_path: str | Path = "sco") -> Rates:
        if isinstance(name_or_path, str) and not name_or_path.endswith(".yaml"):
            text = (
                resources.files("sco_settle.reference_data")
                .joinpath(f"{name_or_path}_rates.yaml")
                .read_text()
            )
        else:
            text = Path(name_or_path).read_text()
        document = YAML(typ="safe").load(text)
        mids: dict[str, Fraction] = {}
        for row in document["rates"]:
            if row["base"] != "CNY" or row["provider"] != MARKET:
                continue
            mids[row["quote"]] = (Fraction(str(row["bid"])) + Fraction(str(row["ask"]))) / 2
        return cls(mids, usd_cny)

    def has(self, code: str) -> bool:
        return code in self.cny_per

    def usd_cents_to_minor(self, usd_cents: int, code: str) -> int:
        """``usd_cents`` US cents as minor units of ``code`` (floored, exact)."""
        assert isinstance(usd_cents, int), usd_cents
        value = (
            Fraction(usd_cents, USD_CENTS)
            * self.usd_cny
            * self.cny_per[code]
            * 10 ** currency(code).minor_units
        )
        return value.numerator // value.denominator

    def convert_minor(self, minor: int, source: str, target: str) -> int:
        """``minor`` of ``source`` as minor units of ``target`` at the mid (floored, exact)."""
        assert isinstance(minor, int), minor
        value = (
            Fraction(minor, 10 ** currency(source).minor_units)
            / self.cny_per[source]
            * self.cny_per[target]
            * 10 ** currency(target).minor_units
        )
        return value.numerator // value.denominator

    def to_cny_minor(self, minor: int, code: str) -> int:
        """``minor`` units of ``code`` as CNY fen (floored, exact): the report's common unit."""
        assert isinstance(minor, int), minor
        value = (
            Fraction(minor, 10 ** currency(code).minor_units)
            / self.cny_per[code]
            * 10 ** currency("CNY").minor_units
        )
        return value.numerator // value.denominator
