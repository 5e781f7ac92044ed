"""Routing: multi-hop cross-currency routes, exactness against brute force, exclusion reasons."""

from __future__ import annotations

import os
import random
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sco_settle.payments.fx import Rate, RateTable
from sco_settle.payments.routing import (
    CorrespondentAccount,
    EdgeKind,
    ExclusionReason,
    FxPoint,
    Node,
    RouteStatus,
    RoutingGraph,
    SettlementAccount,
    SwapLine,
    enumerate_routes,
    find_routes,
)
from tests.payments.payments_strategies import AS_OF, routing_networks, routing_queries

D = Decimal
# Brute force is exponential; raise PAYMENTS_EXAMPLES for a long soak (e.g. 5000) before release.
EXAMPLES = int(os.environ.get("PAYMENTS_EXAMPLES", "150"))
KICB, HALYK, XINJIANG, ICBC = "KICBKG22", "HSBKKZKX", "XJBKCNBJ", "ICBKCNBJ"
NBKR, NBRK, PBOC = "NBKRKG22", "NBRKKZKX", "PBOCCNBJ"

RATES = RateTable(
    [
        Rate("KGS", "KZT", D("5.80"), D("5.90"), HALYK, AS_OF),
        Rate("KZT", "CNY", D("0.0140"), D("0.0142"), HALYK, AS_OF),
        Rate("CNY", "KGS", D("12.00"), D("12.40"), PBOC, AS_OF),
    ]
)


def corridor(**overrides: object) -> RoutingGraph:
    """Kyrgyz bank -> its Kazakh correspondent -> Bank of Xinjiang -> a Chinese bank."""
    parts: dict[str, object] = {
        "settlement_accounts": [
            SettlementAccount(KICB, NBKR, "KGS", 10**9),
            SettlementAccount(HALYK, NBRK, "KZT", 10**9),
            SettlementAccount(XINJIANG, PBOC, "CNY", 10**9, fee_minor=100),
            SettlementAccount(ICBC, PBOC, "CNY", 10**9),
        ],
        "correspondents": [
            # Halyk keeps a KGS account with KICB (KICB pays Halyk by crediting it) and a CNY
            # account with the Bank of Xinjiang (one of its seven Central Asian correspondents).
            CorrespondentAccount(HALYK, KICB, "KGS", 0),
            CorrespondentAccount(
                HALYK, XINJIANG, "CNY", 5 * 10**6, credit_limit_minor=10**6, fee_minor=500
            ),
        ],
        "fx_points": [
            FxPoint(HALYK, "KGS", "KZT", 10**12),
            FxPoint(HALYK, "KZT", "CNY", 10**10),
        ],
    }
    parts.update(overrides)
    return RoutingGraph.build(**parts)  # type: ignore[arg-type]


def test_kyrgyz_bank_pays_chinese_bank_through_kazakh_correspondent() -> None:
    result = find_routes(
        corridor(), KICB, ICBC, 1_000_000, "KGS", "CNY", RATES, hop_charge_minor=10
    )
    assert result.status is RouteStatus.OK and result.cost_currency == "KGS"
    route = result.best
    assert route is not None
    assert [str(node) for node in route.nodes] == [
        "KICBKG22/KGS",
        "HSBKKZKX/KGS",
        "HSBKKZKX/KZT",
        "HSBKKZKX/CNY",
        "XJBKCNBJ/CNY",
        "PBOCCNBJ/CNY",
        "ICBKCNBJ/CNY",
    ]
    kinds = [leg.kind for leg in route.legs]
    assert kinds == [
        EdgeKind.VOSTRO_CREDIT,
        EdgeKind.FX,
        EdgeKind.FX,
        EdgeKind.NOSTRO_DEBIT,
        EdgeKind.SETTLEMENT_IN,
        EdgeKind.SETTLEMENT_OUT,
    ]
    # 10,000.00 KGS -> 58,000.00 KZT at the KGS/KZT bid -> 812.00 CNY at the KZT/CNY bid.
    assert route.legs[1].converted_minor == 5_800_000
    assert route.legs[2].converted_minor == 81_200
    assert route.amount_delivered_minor == 81_200
    assert route.hops == 5  # the agent's credit to ICBC is the second half of one transfer
    assert route.cost_minor == route.fees_minor + route.spread_minor + 10 * route.hops
    assert route.legs[3].uses_credit is False


def test_feasibility_is_checked_with_the_converted_amount() -> None:
    # Halyk's CNY nostro holds 50,000.00 + 10,000.00 overdraft: 10,000.00 KGS becomes 812.00 CNY
    # and fits, 800,000.00 KGS becomes 64,960.00 CNY and does not.
    small = find_routes(corridor(), KICB, ICBC, 1_000_000, "KGS", "CNY", RATES)
    large = find_routes(corridor(), KICB, ICBC, 80_000_000, "KGS", "CNY", RATES)
    assert small.status is RouteStatus.OK
    assert large.status is RouteStatus.NO_FEASIBLE_ROUTE
    reasons = {(e.kind, e.reason) for e in large.exclusions}
    assert (EdgeKind.NOSTRO_DEBIT, ExclusionReason.EXCEEDS_CREDIT_LIMIT) in reasons
    refused = next(e for e in large.exclusions if e.kind is EdgeKind.NOSTRO_DEBIT)
    assert refused.currency == "CNY" and refused.available_minor == 6 * 10**6
    assert refused.amount_minor == 6_496_000


def test_swap_line_is_an_alternative_with_its_own_signature() -> None:
    graph = corridor(
        settlement_accounts=[
            SettlementAccount(KICB, NBKR, "KGS", 10**9),
            SettlementAccount(HALYK, NBRK, "KZT", 10**9),
            SettlementAccount(XINJIANG, PBOC, "CNY", 10**9, fee_minor=100),
            SettlementAccount(ICBC, PBOC, "CNY", 10**9),
        ],
        swap_lines=[SwapLine(NBKR, "KGS", PBOC, "CNY", 10**7, rate_provider=PBOC)],
    )
    rates = RateTable([*RATES.rates, Rate("KGS", "CNY", D("0.0800"), D("0.0805"), PBOC, AS_OF)])
    result = find_routes(graph, KICB, ICBC, 1_000_000, "KGS", "CNY", rates, k=5)
    assert len(result.routes) == 2
    kinds = [[leg.kind for leg in route.legs] for route in result.routes]
    assert [EdgeKind.SETTLEMENT_IN, EdgeKind.SWAP_LINE, EdgeKind.SETTLEMENT_OUT] in kinds
    costs = [route.cost_minor for route in result.routes]
    assert costs == sorted(costs)
    assert len({route.signature for route in result.routes}) == 2


def test_each_reason_is_reported() -> None:
    cases = {
        ExclusionReason.PARTICIPANT_SUSPENDED: (corridor(suspended=[XINJIANG]), 1_000_000),
        ExclusionReason.CORRIDOR_CUT: (corridor(corridor_cuts=[("CN", "KZ")]), 1_000_000),
        ExclusionReason.INSUFFICIENT_BALANCE: (
            corridor(
                fx_points=[FxPoint(HALYK, "KGS", "KZT", 10), FxPoint(HALYK, "KZT", "CNY", 10**10)]
            ),
            1_000_000,
        ),
        ExclusionReason.EXCEEDS_CREDIT_LIMIT: (corridor(), 80_000_000),
        ExclusionReason.AMOUNT_ROUNDS_TO_ZERO: (corridor(), 1),
    }
    for reason, (graph, amount) in cases.items():
        result = find_routes(graph, KICB, ICBC, amount, "KGS", "CNY", RATES)
        assert result.status is RouteStatus.NO_FEASIBLE_ROUTE, reason
        assert reason in {e.reason for e in result.exclusions}, (reason, result.exclusions)
        everything = enumerate_routes(graph, KICB, ICBC, amount, "KGS", "CNY", RATES)
        assert not everything.routes and reason in {e.reason for e in everything.excluded}

    no_rate = find_routes(
        corridor(), KICB, ICBC, 1_000_000, "KGS", "CNY", RateTable(RATES.rates[:1])
    )
    assert ExclusionReason.NO_RATE in {e.reason for e in no_rate.exclusions}
    too_far = find_routes(corridor(), KICB, ICBC, 1_000_000, "KGS", "CNY", RATES, hop_limit=4)
    assert too_far.status is RouteStatus.NO_FEASIBLE_ROUTE
    assert ExclusionReason.EXCEEDS_HOP_LIMIT in {e.reason for e in too_far.exclusions}

    swap_graph = RoutingGraph.build(
        settlement_accounts=[SettlementAccount(ICBC, PBOC, "CNY", 10**9)],
        swap_lines=[SwapLine(NBKR, "KGS", PBOC, "CNY", 10**5, drawn_minor=9 * 10**4)],
    )
    rates = RateTable([Rate("KGS", "CNY", D("0.08"), D("0.081"), PBOC, AS_OF)])
    tight = find_routes(swap_graph, NBKR, ICBC, 1_000_000, "KGS", "CNY", rates)
    assert [e.reason for e in tight.exclusions] == [ExclusionReason.EXCEEDS_SWAP_LINE_HEADROOM]
    assert tight.exclusions[0].available_minor == 10**4


def test_query_errors_are_values() -> None:
    graph = corridor()
    assert (
        find_routes(graph, KICB, ICBC, 0, "KGS", "CNY", RATES).status is RouteStatus.AMOUNT_INVALID
    )
    assert find_routes(graph, "ZZZZKG22", ICBC, 5, "KGS", "CNY", RATES).status is (
        RouteStatus.DEBTOR_NODE_NOT_FOUND
    )
    assert find_routes(graph, KICB, ICBC, 5, "KGS", "KZT", RATES).status is (
        RouteStatus.CREDITOR_NODE_NOT_FOUND
    )
    assert find_routes(graph, KICB, KICB, 5, "KGS", "KGS", RATES).best.legs == ()


def _build(network: dict, order: random.Random | None = None) -> tuple[RoutingGraph, RateTable]:
    parts = {key: list(value) for key, value in network.items() if key != "rates"}
    rate_list = list(network["rates"])
    if order is not None:
        for value in (*parts.values(), rate_list):
            order.shuffle(value)
    return RoutingGraph.build(**parts), RateTable(rate_list)


def _summary(routes) -> list[tuple]:
    return [(r.cost_minor, r.hops, r.amount_delivered_minor, tuple(r.legs)) for r in routes]


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(routing_networks(), st.data(), st.sampled_from([0, 3]), st.integers(2, 6), st.integers(1, 4))
def test_search_equals_brute_force(network, data, hop_charge, hop_limit, k) -> None:
    """The k routes found are the brute-force optimum per signature, in the same order."""
    graph, rates = _build(network)
    if not graph.nodes:
        return
    query = data.draw(routing_queries(graph.nodes))
    found = find_routes(graph, *query, rates, k=k, hop_limit=hop_limit, hop_charge_minor=hop_charge)
    everything = enumerate_routes(
        graph, *query, rates, hop_limit=hop_limit, hop_charge_minor=hop_charge
    )
    assert found.status in (RouteStatus.OK, RouteStatus.NO_FEASIBLE_ROUTE) or not everything.routes
    assert _summary(found.routes) == _summary(everything.best_per_signature(k))
    if everything.routes:
        # The best route is the cheapest of all simple paths, whatever their signature.
        assert _summary(found.routes[:1]) == _summary(everything.routes[:1])
    keys = [(r.cost_minor, r.hops) for r in found.routes]
    assert keys == sorted(keys)
    for route in found.routes:
        assert route.hops <= hop_limit
        for before, after in zip(route.legs, route.legs[1:], strict=False):
            assert after.amount_minor == before.converted_minor


@settings(max_examples=40, deadline=None)
@given(routing_networks(), st.data(), st.randoms(use_true_random=False))
def test_results_do_not_depend_on_input_order(network, data, order) -> None:
    graph, rates = _build(network)
    if not graph.nodes:
        return
    query = data.draw(routing_queries(graph.nodes))
    first = find_routes(graph, *query, rates, k=3)
    graph, rates = _build(network, order)
    second = find_routes(graph, *query, rates, k=3)
    assert _summary(first.routes) == _summary(second.routes)
    assert first.exclusions == second.exclusions


def test_ties_are_broken_by_hops_then_lexicographic_path() -> None:
    # Two free, identical correspondents: equal cost and hops, so the lower BIC wins.
    graph = RoutingGraph.build(
        correspondents=[
            CorrespondentAccount(KICB, "BBBBKZ22", "KZT", 10**6),
            CorrespondentAccount(KICB, "AAAAKZ22", "KZT", 10**6),
            CorrespondentAccount("BBBBKZ22", HALYK, "KZT", 10**6),
            CorrespondentAccount("AAAAKZ22", HALYK, "KZT", 10**6),
        ],
    )
    result = enumerate_routes(graph, KICB, HALYK, 100, "KZT", "KZT", RATES)
    assert [route.nodes[1] for route in result.routes] == [
        Node("AAAAKZ22", "KZT"),
        Node("BBBBKZ22", "KZT"),
    ]
    best = find_routes(graph, KICB, HALYK, 100, "KZT", "KZT", RATES, k=2)
    assert [route.nodes[1] for route in best.routes] == [
        Node("AAAAKZ22", "KZT"),
        Node("BBBBKZ22", "KZT"),
    ]
