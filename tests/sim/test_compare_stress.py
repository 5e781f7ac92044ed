"""Stress scenarios of the comparison: parsing, what each changes, the FX shock's arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from sco_settle.network import load_network
from sco_settle.payments.fx import Rate, RateTable
from sco_settle.payments.modes import Mode
from sco_settle.payments.union_config import load_union
from sco_settle.sim.fx_shock import FxShock, shocked
from sco_settle.sim.run import ScenarioError, SimOptions
from sco_settle.sim.stress import DEFAULT_STRESSES, StressKind, parse_stress

NETWORK = load_network("sco")
UNION = load_union()
AT = datetime(2026, 1, 5, tzinfo=UTC)


def test_every_default_stress_parses_and_applies_to_the_modes_it_concerns():
    kinds = [parse_stress(spec, NETWORK, UNION).kind for spec in DEFAULT_STRESSES]
    assert kinds == list(StressKind)
    default = parse_stress("cb-default:NBRKKZKX", NETWORK, UNION)
    assert [m for m in Mode if default.applies_to(m)] == [Mode.DNS, Mode.UNION]


def test_a_central_bank_default_caps_its_banks_in_dns_and_zeroes_its_swing_limit_in_union():
    stress = parse_stress("cb-default:NBRKKZKX", NETWORK, UNION)
    dns = stress.apply(SimOptions(mode=Mode.DNS), NETWORK, UNION)
    assert dns.net_debit_caps and set(dns.net_debit_caps.values()) == {0}
    assert {code for _, code in dns.net_debit_caps} == {"KZT"}
    assert {NETWORK.participant(bic).country for bic, _ in dns.net_debit_caps} == {"KZ"}
    union = stress.apply(SimOptions(mode=Mode.UNION), NETWORK, UNION)
    assert union.union is not None
    limits = union.union.swing_limits_minor()
    assert limits["NBRKKZKX"] == 0
    assert limits["PBOCCNBJ"] == UNION.swing_limits_minor()["PBOCCNBJ"] > 0


def test_old_scenario_names_are_accepted_and_set_the_engine_scenario():
    cut = parse_stress("bank-failure:HSBKKZKX", NETWORK, UNION)
    assert cut.kind is StressKind.BANK_CUT_OFF and cut.scenario.suspended == {"HSBKKZKX"}
    frozen = parse_stress("swapline-frozen:RU-CN", NETWORK, UNION)
    assert frozen.scenario.exhausted_swap_lines == {("CN", "RU")}


@pytest.mark.parametrize(
    "spec",
    [
        "unknown:1",
        "fx-shock:ABC",
        "fx-shock:RUB:-100",
        "fx-shock:RUB:x",
        "cb-default:HSBKKZKX",
        "corridor-cut:CN",
        "bank-cut-off:NOTABIC1",
    ],
)
def test_a_malformed_or_unknown_stress_is_refused_plainly(spec):
    with pytest.raises(ScenarioError, match=spec.split(":")[0]):
        parse_stress(spec, NETWORK, UNION)


def test_an_fx_shock_moves_every_quote_of_one_currency_and_no_other():
    table = RateTable(
        [
            Rate("CNY", "RUB", Decimal("11.0"), Decimal("11.2"), "MARKET", AT),
            Rate("RUB", "INR", Decimal("1.08"), Decimal("1.10"), "MARKET", AT),
            Rate("CNY", "KZT", Decimal("70"), Decimal("71"), "MARKET", AT),
        ]
    )
    after = {(r.base, r.quote): r for r in shocked(table, FxShock("RUB", Decimal(20))).rates}
    assert (after["CNY", "RUB"].bid, after["CNY", "RUB"].ask) == (Decimal("13.2"), Decimal("13.44"))
    assert after["RUB", "INR"].bid == Decimal("0.9")  # 1.08 / 1.2, exact
    assert after["RUB", "INR"].ask == Decimal("1.10") / Decimal("1.2")
    unshocked = next(r for r in table.rates if r.quote == "KZT")
    assert after["CNY", "KZT"] == unshocked
