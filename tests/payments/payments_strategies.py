"""Hypothesis strategies shared by the payments tests (FX rates, routing graphs, queues).

Kept beside the tests it serves until the project has a shared ``tests/strategies.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import strategies as st

from sco_settle.payments.fx import Rate
from sco_settle.payments.gridlock import QueuedPayment
from sco_settle.payments.routing import (
    CorrespondentAccount,
    FxPoint,
    SettlementAccount,
    SwapLine,
)

AS_OF = datetime(2025, 9, 1, 9, 0, tzinfo=UTC)

# Currencies with 0, 2 and 3 minor-unit digits, so that scaling is exercised.
CURRENCIES = ["CNY", "KZT", "KGS", "JPY", "KWD"]


def decimals(low: str, high: str, places: int = 6) -> st.SearchStrategy[Decimal]:
    return st.decimals(
        min_value=Decimal(low), max_value=Decimal(high), places=places, allow_nan=False
    ).filter(lambda d: d > 0)


@st.composite
def rates(
    draw: st.DrawFn,
    base: str | None = None,
    quote: str | None = None,
    provider: str = "LP",
    bid_range: tuple[str, str] = ("0.0001", "5000"),
) -> Rate:
    base = base or draw(st.sampled_from(CURRENCIES))
    quote = quote or draw(st.sampled_from([c for c in CURRENCIES if c != base]))
    bid = draw(decimals(*bid_range))
    spread = draw(decimals("0", "0.05", 4) | st.just(Decimal(0)))
    ask = (bid * (1 + spread)).quantize(Decimal("1e-8"))
    return Rate(base, quote, bid, max(ask, bid), provider, AS_OF)


# --- Routing graphs -----------------------------------------------------------------------------

# Two countries per currency at most; BICs are valid ISO 9362 shapes.
BANKS = {
    "CN": ["AAAACN22", "BBBBCN22"],
    "KZ": ["CCCCKZ22", "DDDDKZ22"],
    "KG": ["EEEEKG22", "FFFFKG22"],
}
AGENTS = {"CNY": "PBOCCNBJ", "KZT": "NBRKKZKX", "KGS": "NBKRKG22"}
HOME = {"CN": "CNY", "KZ": "KZT", "KG": "KGS"}
ALL_BANKS = [bic for bics in BANKS.values() for bic in bics] + list(AGENTS.values())
RATE_PAIRS = [("KGS", "KZT"), ("KZT", "CNY"), ("CNY", "KGS")]


class _Choices:
    """Consumes one drawn list of integers: much faster to generate than hundreds of draws, and
    it still shrinks (towards zeros: the first option of every choice)."""

    def __init__(self, values: list[int]) -> None:
        self.values = iter(values)

    def pick(self, options: list):
        return options[next(self.values, 0) % len(options)]

    def below(self, bound: int) -> int:
        return next(self.values, 0) % bound


@st.composite
def routing_networks(draw: st.DrawFn) -> dict:
    """A small random network shaped like the real one, plus some arbitrary links.

    Banks settle their home currency at their central bank, keep nostros in foreign currencies
    with banks of that currency's country, and some convert between those currencies; central
    banks run swap lines. A few arbitrary links add odd shapes. Sizes stay small enough for
    ``enumerate_routes`` to list every simple path quickly.
    """
    choose = _Choices(draw(st.lists(st.integers(0, 2**20), min_size=160, max_size=160)))
    balances = [10**6, 0, 400, 2000, 10**6, 10**6]
    fees = [0, 0, 1, 7, 50]
    home_of = {bic: HOME[country] for country, bics in BANKS.items() for bic in bics}
    banks = sorted(home_of)
    accounts = [
        SettlementAccount(
            bic,
            AGENTS[home_of[bic]],
            home_of[bic],
            choose.pick(balances),
            choose.pick([0, 0, 500]),
            choose.pick(fees),
        )
        for bic in banks
        if choose.below(10) != 9
    ]
    # Links are keyed like RoutingGraph.build checks them, so that none is duplicated.
    correspondents: dict[tuple, CorrespondentAccount] = {}
    fx_points: dict[tuple, FxPoint] = {}
    for bic in banks:
        for code in sorted(AGENTS):
            if code == home_of[bic] or choose.below(3) == 2:
                continue
            servicer = choose.pick([b for b in banks if home_of[b] == code])
            correspondents[(bic, servicer, code)] = CorrespondentAccount(
                bic, servicer, code, choose.pick(balances), choose.pick([0, 300]), choose.pick(fees)
            )
            for source, target in ((home_of[bic], code), (code, home_of[bic])):
                if choose.below(2):
                    fx_points[(bic, source, target)] = FxPoint(
                        bic, source, target, choose.pick([10**6, 0, 5000, 10**6]), choose.pick(fees)
                    )
    for _ in range(choose.below(4)):  # arbitrary extra links
        holder, servicer = choose.pick(ALL_BANKS), choose.pick(ALL_BANKS)
        code = choose.pick(sorted(AGENTS))
        if holder != servicer:
            correspondents[(holder, servicer, code)] = CorrespondentAccount(
                holder, servicer, code, choose.pick(balances)
            )
    swap_lines: dict[tuple, SwapLine] = {}
    for _ in range(choose.below(4)):
        drawer, provider = choose.pick(sorted(AGENTS)), choose.pick(sorted(AGENTS))
        if drawer != provider:
            limit = choose.pick([10**6, 0, 100, 5000])
            swap_lines[(drawer, provider)] = SwapLine(
                AGENTS[drawer],
                drawer,
                AGENTS[provider],
                provider,
                limit,
                choose.below(limit + 1),
                choose.pick(fees),
            )
    rate_list = []
    providers = sorted(
        {p.provider for p in fx_points.values()} | {s.provider for s in swap_lines.values()}
    )
    for provider in providers:
        for base, quote in RATE_PAIRS:
            if choose.below(7) != 6:  # sometimes a provider has no rate: "no_rate"
                bid = Decimal(500 + choose.below(200_000)) / 10_000  # 0.05 .. 20.05
                ask = bid * (1 + Decimal(choose.below(500)) / 10_000)
                rate_list.append(Rate(base, quote, bid, ask, provider, AS_OF))
    return {
        "settlement_accounts": accounts,
        "correspondents": list(correspondents.values()),
        "fx_points": list(fx_points.values()),
        "swap_lines": list(swap_lines.values()),
        "rates": rate_list,
    }


def routing_queries(graph_nodes: tuple) -> st.SearchStrategy[tuple[str, str, int, str, str]]:
    """A debtor node and a creditor node of the graph, and an amount in the debtor's currency.

    Mostly commercial banks in their home currency, the realistic case; any node otherwise.
    """
    homes = [node for node in graph_nodes if HOME.get(node.participant[4:6]) == node.currency]
    homes = [node for node in homes if node.participant not in AGENTS.values()] or list(graph_nodes)
    ends = st.sampled_from(homes) | st.sampled_from(graph_nodes)
    return st.tuples(ends, ends, st.integers(1, 3000)).map(
        lambda t: (t[0].participant, t[1].participant, t[2], t[0].currency, t[1].currency)
    )


# --- Gridlock queues ----------------------------------------------------------------------------

GRIDLOCK_BANKS = ["AAAAKZ22", "BBBBKZ22", "CCCCKZ22", "DDDDKZ22", "EEEEKZ22"]


@st.composite
def gridlock_instances(draw: st.DrawFn, payments_max: int = 12) -> tuple[dict, dict, list]:
    participants = draw(
        st.lists(st.sampled_from(GRIDLOCK_BANKS), min_size=2, max_size=5, unique=True)
    )
    balances = {bic: draw(st.integers(0, 60)) for bic in participants}
    limits = {bic: draw(st.sampled_from([0, 0, 10, 30])) for bic in participants}
    size = len(participants)
    rows = draw(
        st.lists(
            st.tuples(
                st.integers(0, size - 1),  # payer
                st.integers(1, size - 1),  # payee, as an offset from the payer
                st.integers(1, 80),  # amount
                st.sampled_from([0, 0, 0, 1]),  # priority
                st.integers(0, 50),  # enqueue_seq
            ),
            max_size=payments_max,
        )
    )
    queue = [
        QueuedPayment(
            number + 1,
            participants[payer],
            participants[(payer + offset) % size],
            amount,
            priority,
            seq,
        )
        for number, (payer, offset, amount, priority, seq) in enumerate(rows)
    ]
    return balances, limits, queue
