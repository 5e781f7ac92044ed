"""The simulator's fast paths change how fast results come, never the results.

- Routing: a graph rebuilt with ``RoutingGraph.build(reuse=...)`` (shared compiled structure and
  memo tables, only changed inputs compiled) answers every query exactly as a graph compiled
  afresh, on random networks whose capacities all move (and falls back to a fresh compile when
  the links change).
- ``NetworkView(incremental=True)`` builds, at every ledger state, the same graph as the
  reference view.
- DNS checks a held payment on one route, not three: the same refusals.
- A whole simulation per settlement mode, with and without the fast paths
  (``SimOptions.fast_paths``): the same final outcome of every payment, the same settled order,
  cycles, end-of-day queues and ledger verdict, and byte-identical report tables.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sco_settle.ledger import Ledger
from sco_settle.network import load_network
from sco_settle.network.install import install_network
from sco_settle.payments.engine import EngineSettings, PaymentEngine
from sco_settle.payments.fx import RateTable
from sco_settle.payments.model import Payment, PaymentRejected, PaymentStatus
from sco_settle.payments.modes import Mode
from sco_settle.payments.network_view import NetworkView, load_rates
from sco_settle.payments.routing import (
    CorrespondentAccount,
    FxPoint,
    RouteResult,
    RoutingGraph,
    SettlementAccount,
    SwapLine,
    find_routes,
)
from sco_settle.sim.calibration import Calibration, Rates, load_calibration
from sco_settle.sim.report import build_report, write_tables
from sco_settle.sim.run import SimOptions, SimResult, run_simulation
from sco_settle.sim.workload import generate_day
from sco_settle.storage import MemoryStore
from sco_settle.storage.payment_records_memory import MemoryPaymentRecords
from tests.payments.payments_strategies import routing_networks, routing_queries

CAPACITIES = [0, 1, 399, 400, 2000, 10**6]


def _moved(item: object, draw: st.DrawFn) -> object:
    """``item`` with new capacities (balance, limits, inventory, drawn): links unchanged."""
    if isinstance(item, SettlementAccount | CorrespondentAccount):
        limit = draw(st.sampled_from([0, 300, 500]))
        balance = draw(st.sampled_from([-limit, *CAPACITIES]))
        return dataclasses.replace(item, balance_minor=balance, credit_limit_minor=limit)
    if isinstance(item, FxPoint):
        return dataclasses.replace(item, available_minor=draw(st.sampled_from(CAPACITIES)))
    assert isinstance(item, SwapLine)
    return dataclasses.replace(item, drawn_minor=draw(st.sampled_from([0, item.limit_minor])))


def _parts(network: dict) -> dict[str, list[object]]:
    return {key: list(value) for key, value in network.items() if key != "rates"}


def _answer(result: RouteResult) -> tuple[object, ...]:
    return (result.status, result.routes, result.exclusions, result.exclusions_dropped)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(routing_networks(), st.data())
def test_a_reused_graph_answers_as_a_fresh_one(network: dict, data: st.DataObject) -> None:
    parts = _parts(network)
    rates = RateTable(list(network["rates"]))
    first = RoutingGraph.build(**parts)  # type: ignore[arg-type]
    if not first.nodes:
        return
    queries = [data.draw(routing_queries(first.nodes)) for _ in range(3)]
    for query in queries:  # Fill the memo tables that the rebuilt graph will share.
        find_routes(first, *query, rates, k=3)
    for _ in range(2):  # Move every capacity, twice: a reused graph is reused again.
        moving = {key: [_moved(item, data.draw) for item in items] for key, items in parts.items()}
        keep = data.draw(st.booleans())  # Sometimes half the inputs stay the very same values.
        if keep:
            moving = {key: [*parts[key][::2], *moving[key][1::2]] for key in parts}
        reused = RoutingGraph.build(**moving, reuse=first)  # type: ignore[arg-type]
        fresh = RoutingGraph.build(**moving)  # type: ignore[arg-type]
        assert reused.edges == fresh.edges
        for query in queries:
            for k in (1, 3):
                assert _answer(find_routes(reused, *query, rates, k=k)) == _answer(
                    find_routes(fresh, *query, rates, k=k)
                )
        first, parts = reused, moving


def test_other_links_are_compiled_afresh() -> None:
    one = SettlementAccount("HSBKKZKX", "NBRKKZKX", "KZT", 100)
    two = SettlementAccount("KICBKG22", "NBKRKG22", "KGS", 100)
    graph = RoutingGraph.build(settlement_accounts=[one])
    grown = RoutingGraph.build(settlement_accounts=[one, two], reuse=graph)
    assert len(grown.nodes) == 4 and grown._compiled.keys() == {id(one), id(two)}
    with pytest.raises(ValueError, match="duplicate link"):  # Reuse never hides a bad input.
        RoutingGraph.build(settlement_accounts=[one, one], reuse=graph)
    charged = dataclasses.replace(one, fee_minor=5)  # A fee is structure: compiled afresh.
    rebuilt = RoutingGraph.build(settlement_accounts=[charged], reuse=graph)
    assert rebuilt._contexts is not graph._contexts
    again = dataclasses.replace(one)  # Equal, another object: the very same graph.
    assert RoutingGraph.build(settlement_accounts=[again], reuse=graph) is graph
    moved = dataclasses.replace(one, balance_minor=7)
    shared = RoutingGraph.build(settlement_accounts=[moved], reuse=graph)
    assert shared._contexts is graph._contexts and shared.edges[0].balance_minor == 7


def test_an_incremental_view_builds_the_reference_graph() -> None:
    """Graphs of both views agree at every state of a ledger that payments move."""
    network = load_network("sco")
    clock = [1_800_000_000 * 10**9]
    ledger = Ledger(MemoryStore(), clock=lambda: clock[0])
    install_network(ledger, network)
    fast = NetworkView(network, load_rates())
    reference = NetworkView(network, load_rates(), incremental=False)
    engine = PaymentEngine(ledger, fast, MemoryPaymentRecords(), EngineSettings())
    calibration = load_calibration()
    rates = Rates.load(calibration.usd_cny)
    # At least 120 payments whatever the workload's granularity (scale 1 makes thousands).
    day = generate_day(calibration, network, rates, seed=3, day=0, scale=Fraction(1, 5))
    assert len(day) > 120
    for start in range(0, 120, 12):
        clock[0] += 60 * 10**9
        engine.submit_many([sim.payment for sim in day[start : start + 12]])
        for view in (fast, reference):
            view.invalidate()
        for ignore, ever in ((False, False), (True, False), (True, True)):
            built = fast.graph(ledger, ignore_balances=ignore, ever=ever)
            expected = reference.graph(ledger, ignore_balances=ignore, ever=ever)
            assert built.edges == expected.edges
            assert built.nodes == expected.nodes
        assert fast.rates_at(clock[0]) is fast.rates_at(clock[0])
    assert engine.stats.settled_immediately > 0  # The ledger did move.


def _refusal(engine: PaymentEngine, payment: Payment, alternatives: bool) -> object:
    try:
        found = engine.route(
            payment, for_cycle=True, alternatives=alternatives, refuse_hopeless=True
        )
    except PaymentRejected as rejection:
        return (rejection.reason, rejection.text)
    return bool(found)


def test_a_held_payment_is_refused_as_before_on_one_route() -> None:
    """DNS checks a payment it holds with one route (``alternatives=False``): what is refused,
    and why, is what the search for three routes said."""
    network = load_network("sco")
    ledger = Ledger(MemoryStore(), clock=lambda: 1_800_000_000 * 10**9)
    install_network(ledger, network)
    engine = PaymentEngine(ledger, NetworkView(network, load_rates()), MemoryPaymentRecords())
    calibration = load_calibration()
    rates = Rates.load(calibration.usd_cny)
    day = generate_day(calibration, network, rates, seed=4, day=0, scale=Fraction(1, 200))
    payments = [sim.payment for sim in day[:60]]
    payments += [dataclasses.replace(p, amount_minor=10**17) for p in payments[:20]]  # hopeless
    answers = [(_refusal(engine, p, False), _refusal(engine, p, True)) for p in payments]
    assert all(one == three for one, three in answers)
    assert {one for one, _ in answers} >= {True}
    assert any(isinstance(one, tuple) for one, _ in answers)  # Some were refused.


def _run(mode: Mode, fast: bool) -> SimResult:
    """Two small days on tight liquidity (banks opened with 1/20,000 of the network file's
    balances), so that payments queue, reserve, settle in LSM passes or cycles, or time out."""
    calibration = load_calibration()
    tight = dataclasses.replace(calibration.workload, opening_balance_share=Fraction(1, 20_000))
    options = SimOptions(days=2, seed=5, mode=mode, scale=Fraction(1, 200), fast_paths=fast)
    return run_simulation(options, dataclasses.replace(calibration, workload=tight))


def _tables(result: SimResult, calibration: Calibration, out: Path) -> dict[str, bytes]:
    report = build_report(result, calibration, load_network("sco"), Rates.load(calibration.usd_cny))
    return {path.name: path.read_bytes() for path in write_tables(report, out)}


@pytest.mark.parametrize("mode", [Mode.RTGS, Mode.DNS, Mode.UNION])
def test_fast_paths_give_identical_results(mode: Mode, tmp_path: Path) -> None:
    fast, reference = _run(mode, True), _run(mode, False)
    assert len(fast.payments) > 100
    statuses = {final.status for final in fast.finals.values()}
    assert statuses >= {PaymentStatus.SETTLED, PaymentStatus.REJECTED}  # Liquidity did bind.
    assert fast.verify_ok and fast.verify_text == reference.verify_text
    assert fast.finals == reference.finals
    assert fast.settled_order == reference.settled_order
    assert fast.cycles == reference.cycles
    assert fast.unsettled_eod == reference.unsettled_eod
    assert fast.swap_lines == reference.swap_lines
    assert fast.fx_income == reference.fx_income
    assert fast.rejections_engine == reference.rejections_engine
    calibration = load_calibration()  # The report's figures; the run's tight balances aside.
    tables = _tables(fast, calibration, tmp_path / "fast")
    assert tables and tables == _tables(reference, calibration, tmp_path / "reference")
