"""Stress scenarios of a comparison: what each one changes in a run, on the same workload.

- ``bank-cut-off:BIC``: the bank is suspended; every route touching it is refused
  (``Scenario.suspended``).
- ``corridor-cut:XX-YY``: every route between the two states is refused
  (``Scenario.corridor_cuts``).
- ``swapline-frozen:XX-YY``: the two central banks' facilities funded by their swap line sell
  nothing (``Scenario.exhausted_swap_lines``); tranches are still drawn, never used.
- ``fx-shock:CCY[:PERCENT]``: every quote of CCY moves by PERCENT (default 20): one unit of any
  other currency costs that much more CCY (``sim.fx_shock``). Payment amounts, instructed in
  the payer's currency, do not move.
- ``cb-default:BIC``: a member central bank cannot settle its net position. In ``union`` its
  swing limit is 0; in ``dns`` its state's commercial banks have a net debit cap of 0 in its
  currency. RTGS has no net position to settle, so this scenario does not apply to it.

The older ``bank-failure:``, ``swapline-exhausted:`` spellings of ``sim.run.parse_scenario`` are
accepted too. A spec that names something the network (or the union) lacks is a
``ScenarioError``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation

from sco_settle.domain.money import currency
from sco_settle.domain.participants import BicError, ParticipantKind, parse_bic
from sco_settle.network import Network
from sco_settle.payments.modes import Mode
from sco_settle.payments.network_view import Scenario
from sco_settle.payments.union_config import UnionConfig
from sco_settle.sim.fx_shock import FxShock
from sco_settle.sim.run import ScenarioError, SimOptions, parse_scenario

FX_SHOCK_PERCENT_DEFAULT = Decimal(20)
# The comparison's default stresses (``sco-settle simulate --compare``): a large Kazakh bank,
# the China-Kazakhstan corridor, the largest swap line (China-Russia), the rouble, and the
# National Bank of Kazakhstan. Choices of this simulation, not a forecast of any of them.
DEFAULT_STRESSES = (
    "bank-cut-off:HSBKKZKX",
    "corridor-cut:CN-KZ",
    "swapline-frozen:CN-RU",
    "fx-shock:RUB:20",
    "cb-default:NBRKKZKX",
)
# This module's names -> ``parse_scenario``'s, and back.
_ALIASES = {"bank-cut-off": "bank-failure", "swapline-frozen": "swapline-exhausted"}
_OLD_NAMES = {old: new for new, old in _ALIASES.items()}


class StressKind(enum.StrEnum):
    BANK_CUT_OFF = "bank-cut-off"
    CORRIDOR_CUT = "corridor-cut"
    SWAPLINE_FROZEN = "swapline-frozen"
    FX_SHOCK = "fx-shock"
    CB_DEFAULT = "cb-default"


@dataclass(frozen=True, slots=True)
class Stress:
    """One parsed stress scenario (see the module docstring)."""

    spec: str
    kind: StressKind
    scenario: Scenario = field(default_factory=Scenario)
    fx_shock: FxShock | None = None
    central_bank: str = ""  # CB_DEFAULT: the member central bank that cannot settle

    def applies_to(self, mode: Mode) -> bool:
        return self.kind is not StressKind.CB_DEFAULT or mode is not Mode.RTGS

    def apply(self, options: SimOptions, network: Network, union: UnionConfig) -> SimOptions:
        """``options`` (a baseline run) under this stress."""
        assert self.applies_to(options.mode), (self.spec, options.mode)
        stressed = replace(
            options, scenario=self.scenario, scenario_specs=(self.spec,), fx_shock=self.fx_shock
        )
        if self.kind is not StressKind.CB_DEFAULT:
            return stressed
        if options.mode is Mode.UNION:
            return replace(stressed, union=without_swing_limit(union, self.central_bank))
        home = network.home_currency(self.central_bank)
        country = network.participant(self.central_bank).country
        caps = {
            (entry.bic, home): 0
            for entry in network.participants
            if entry.country == country and entry.kind is ParticipantKind.COMMERCIAL_BANK
        }
        return replace(stressed, net_debit_caps=caps)


def without_swing_limit(union: UnionConfig, central_bank: str) -> UnionConfig:
    """``union`` with ``central_bank``'s swing limit set to zero."""
    members = tuple(
        entry.model_copy(update={"swing_limit": Decimal(0)})
        if entry.central_bank == central_bank
        else entry
        for entry in union.members
    )
    return union.model_copy(update={"members": members})


def parse_stress(spec: str, network: Network, union: UnionConfig) -> Stress:
    """One spec of the module docstring's table, checked against ``network`` and ``union``."""
    kind_text, _, argument = spec.partition(":")
    kind_text = _OLD_NAMES.get(kind_text, kind_text)
    try:
        kind = StressKind(kind_text)
    except ValueError:
        expected = ", ".join(f"{k.value}:..." for k in StressKind)
        raise ScenarioError(f"{spec}: expected one of {expected}") from None
    if kind is StressKind.FX_SHOCK:
        return Stress(spec, kind, fx_shock=_fx_shock(spec, argument, network))
    if kind is StressKind.CB_DEFAULT:
        return Stress(spec, kind, central_bank=_member(spec, argument, network, union))
    translated = f"{_ALIASES.get(kind.value, kind.value)}:{argument}"
    try:
        scenario = parse_scenario((translated,), network)
    except ScenarioError as error:  # Name the spec as the user wrote it.
        raise ScenarioError(f"{spec}: {str(error).partition(': ')[2]}") from error
    return Stress(spec, kind, scenario=scenario)


def _fx_shock(spec: str, argument: str, network: Network) -> FxShock:
    code, _, percent_text = argument.upper().partition(":")
    try:
        currency(code)
        percent = Decimal(percent_text) if percent_text else FX_SHOCK_PERCENT_DEFAULT
    except (ValueError, InvalidOperation) as error:
        raise ScenarioError(f"{spec}: expected fx-shock:CCY or fx-shock:CCY:PERCENT") from error
    if code not in network.settlement_agents:
        raise ScenarioError(f"{spec}: {code} is not a currency of {network.name}")
    if not percent.is_finite() or percent <= -100:
        raise ScenarioError(f"{spec}: the percentage must be a number above -100")
    return FxShock(code, percent)


def _member(spec: str, argument: str, network: Network, union: UnionConfig) -> str:
    try:
        bic = parse_bic(argument)
    except BicError as error:
        raise ScenarioError(f"{spec}: {error}") from error
    if bic not in network.settlement_agents.values():
        raise ScenarioError(f"{spec}: {bic} is not a central bank of {network.name}")
    if bic not in {entry.central_bank for entry in union.members}:
        raise ScenarioError(f"{spec}: {bic} is not a member of the clearing union")
    return bic
