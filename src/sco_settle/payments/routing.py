"""Cheapest feasible route for a cross-border payment over settlement, correspondent and FX links.

The network is a directed multigraph. A node is a (participant BIC, currency) pair: the money a
participant can move in one currency. Edges are the ways money moves:

==================  ===========================================  ======  ==========================
kind                from -> to                                   hops    capacity (checked against)
==================  ===========================================  ======  ==========================
settlement_in       member/C -> agent/C (debit at the agent)     1       balance + credit limit
settlement_out      agent/C -> member/C (credit at the agent)    0       none
nostro_debit        holder/C -> servicer/C (pay from nostro)     1       balance + credit limit
vostro_credit       servicer/C -> holder/C (credit the vostro)   1       none
fx                  provider/C1 -> provider/C2                   1       provider's C2 inventory
swap_line           drawer CB/C1 -> providing CB/C2              1       limit - drawn (in C2)
==================  ===========================================  ======  ==========================

A payment between two members of one settlement agent is one hop: in to the agent (1) and out to
the other member (0), because the agent books it as one transfer between the two accounts.

Cost unit: every cost is in **minor units of the source currency** (``from_currency``), so routes
through different currencies compare on one scale. A route's cost is the sum over its edges of:

- the edge's fee, in the edge's input currency and converted to the source currency at the
  route's own realised rate up to that edge: ``ceil(fee * amount_source / amount_in)``. A
  converting edge's fee (an FX provider's charge per conversion) is deducted from the amount it
  converts, and it keeps it (``plan.kept_by_converter``); on any other edge the principal is not
  reduced, and the fee is only a price that ranks routes (no network data sets one, and the
  plan collects none: an open point). Deducting only at conversions keeps the amount at a node a
  function of the conversion chain so far, which the search's exactness needs (below);
- for fx and swap_line edges, the spread cost against mid-market including rounding, as a share
  of the principal: ``amount_source - floor(amount_source * amount_out / (amount_in * mid))``;
- ``hop_charge_minor`` per hop, a price for settlement risk and latency.

Every term is a non-negative integer, so a route's cost never decreases as it grows.

A route is a simple path (no node twice) within the hop limit that never converts back into a
currency it has left: such a round trip only loses the spread. The first route returned is the
cheapest of all; the others are alternatives, each the cheapest route of its own *signature*
(first leg, conversion chain, last leg: ``Route.signature``), because routes that differ only in
intermediate legs are variants of one another, not alternatives.

Why the search is exact although amounts depend on the path: the amount at a node, and therefore
every later fee, spread and capacity check, depends only on the chain of conversions so far. So
two partial routes at the same (node, first edge, chain) have the same future; the one popped
first (no dearer, no longer, lexicographically smaller) dominates unless it blocks a completion
of the other by having visited some node X that the completion needs. X is then in the current
currency (a route never re-enters an earlier one), so the completion's part after X has the same
cost after the dominating route's own prefix up to X: that splice is a valid route, no dearer, no
longer, earlier in path order, and has the same signature. Hence expanding only dominating labels
loses no route that ``find_routes`` returns; ``tests/payments`` checks it against
``enumerate_routes`` on random graphs.

Invariants:
- Conversions round down at every fx edge (the debtor receives; see ``fx.Rounding``); feasibility
  of each edge is checked with the amount that actually arrives there, after conversion.
- Routes come in the total order (cost, hops, path). A path compares by its edges, each edge by
  (source node, target node, kind), nodes by (BIC, currency): ties are broken by lexicographic
  path, deterministically, and independently of the input order.
- Results are a pure function of (graph, query, rates). Memo tables inside the graph never change
  a result, only how fast it is found.
"""

from __future__ import annotations

import copy
import enum
import heapq
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Final, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from sco_settle.domain.money import AMOUNT_MAX, currency
from sco_settle.domain.participants import bic_country, parse_bic
from sco_settle.payments.fx import RateTable, Rounding

HOP_LIMIT_DEFAULT = 6
ROUTES_MAX_DEFAULT = 5
EXCLUSIONS_MAX_DEFAULT = 256
EXPANSIONS_MAX_DEFAULT = 200_000
# Spread shares in the search's lower bound are kept as integer parts per billion (rounded down),
# so that the bound stays exact integer arithmetic and never overestimates.
_PPB = 1_000_000_000
_UNREACHABLE = 1 << 62
_LOWER_BOUND_CACHE_MAX = 512
_SUCCESSOR_CACHE_MAX = 65536
_RATE_CONTEXTS_MAX = 4


class Node(NamedTuple):
    participant: str
    currency: str

    def __str__(self) -> str:
        return f"{self.participant}/{self.currency}"


class EdgeKind(enum.StrEnum):
    """Declaration order is the tie-break order between parallel edges."""

    SETTLEMENT_IN = "settlement_in"
    SETTLEMENT_OUT = "settlement_out"
    NOSTRO_DEBIT = "nostro_debit"
    VOSTRO_CREDIT = "vostro_credit"
    FX = "fx"
    SWAP_LINE = "swap_line"


_KIND_RANK = {kind: rank for rank, kind in enumerate(EdgeKind)}
_HOPS = {kind: 0 if kind is EdgeKind.SETTLEMENT_OUT else 1 for kind in EdgeKind}
_CONVERTS = frozenset({EdgeKind.FX, EdgeKind.SWAP_LINE})


class ExclusionReason(enum.StrEnum):
    """Why an edge (and every path through it) was not used. Checked in this order."""

    PARTICIPANT_SUSPENDED = "participant_suspended"
    CORRIDOR_CUT = "corridor_cut"
    # The bank whose account the edge debits has not agreed to carry this payment: it is neither
    # the debtor agent, nor the servicer of the account just debited, nor converting at its own
    # quotes, nor the debtor's correspondent; or an FX provider does not deal for these agents.
    NO_CONSENT = "no_consent"
    NO_RATE = "no_rate"
    EXCEEDS_HOP_LIMIT = "exceeds_hop_limit"
    AMOUNT_ROUNDS_TO_ZERO = "amount_rounds_to_zero"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    EXCEEDS_CREDIT_LIMIT = "exceeds_credit_limit"
    EXCEEDS_SWAP_LINE_HEADROOM = "exceeds_swap_line_headroom"


class RouteStatus(enum.StrEnum):
    OK = "ok"
    NO_FEASIBLE_ROUTE = "no_feasible_route"
    AMOUNT_INVALID = "amount_invalid"
    DEBTOR_NODE_NOT_FOUND = "debtor_node_not_found"
    CREDITOR_NODE_NOT_FOUND = "creditor_node_not_found"
    # The search stopped at ``expansions_max``; the routes returned are feasible but the list may
    # be incomplete and the first may not be the cheapest.
    EXPANSIONS_MAX_REACHED = "expansions_max_reached"


# --- Inputs -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SettlementAccount:
    """``participant``'s account in ``currency`` at ``agent`` (a central bank or clearing bank).

    ``balance_minor`` may be negative down to ``-credit_limit_minor`` (intraday credit in use).
    ``fee_minor`` is the agent's charge per payment out of this account, in ``currency``.
    """

    participant: str
    agent: str
    currency: str
    balance_minor: int
    credit_limit_minor: int = 0
    fee_minor: int = 0


@dataclass(frozen=True, slots=True)
class CorrespondentAccount:
    """An account ``holder`` keeps with ``servicer``: holder's nostro, servicer's vostro.

    The holder pays out of it up to balance + the overdraft the servicer grants (``fee_minor`` is
    the servicer's charge for doing so); the servicer can always credit it.
    """

    holder: str
    servicer: str
    currency: str
    balance_minor: int
    credit_limit_minor: int = 0
    fee_minor: int = 0


@dataclass(frozen=True, slots=True)
class Consent:
    """Whose payments an FX point converts: those whose debtor or creditor agent is one of
    ``agents`` or is in one of ``countries``; or whose debtor agent is in one of
    ``payer_countries`` and creditor agent in one of ``payee_countries`` (a central bank's
    facility: its own banks paying the swap-line partner's state). ``anyone``: all."""

    agents: frozenset[str] = frozenset()
    countries: frozenset[str] = frozenset()
    payer_countries: frozenset[str] = frozenset()
    payee_countries: frozenset[str] | None = None  # None: any country
    anyone: bool = False

    def allows(self, debtor_agent: str, creditor_agent: str) -> bool:
        if self.anyone or debtor_agent in self.agents or creditor_agent in self.agents:
            return True
        debtor_country, creditor_country = bic_country(debtor_agent), bic_country(creditor_agent)
        if debtor_country in self.countries or creditor_country in self.countries:
            return True
        return debtor_country in self.payer_countries and (
            self.payee_countries is None or creditor_country in self.payee_countries
        )


ANYONE = Consent(anyone=True)


@dataclass(frozen=True, slots=True)
class FxPoint:
    """A liquidity provider converting ``from_currency`` into ``to_currency`` at its own quote.

    ``available_minor`` is the provider's deliverable inventory of ``to_currency``. The rate is the
    provider's best quote in the ``RateTable`` under ``provider`` (``rate_provider`` overrides).
    ``consent``: whose payments it converts (default: anyone's).
    """

    provider: str
    from_currency: str
    to_currency: str
    available_minor: int
    fee_minor: int = 0
    rate_provider: str = ""
    consent: Consent = ANYONE


@dataclass(frozen=True, slots=True)
class SwapLine:
    """A central-bank swap line: ``drawer`` places its currency, ``provider`` delivers its own.

    Headroom is ``limit_minor - drawn_minor`` in ``provider_currency``. The draw is priced by the
    ``RateTable`` quotes of ``rate_provider`` (default: ``provider``).
    """

    drawer: str
    drawer_currency: str
    provider: str
    provider_currency: str
    limit_minor: int
    drawn_minor: int = 0
    fee_minor: int = 0
    rate_provider: str = ""


# --- Results ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Leg:
    """One edge of a route with the amounts that cross it.

    ``amount_minor`` is in the source node's currency, ``converted_minor`` in the target node's
    (equal unless the leg converts). ``fee_minor`` is in the source node's currency;
    ``fee_cost_minor`` and ``spread_cost_minor`` are in the route's cost unit.
    """

    source: Node
    target: Node
    kind: EdgeKind
    amount_minor: int
    converted_minor: int
    fee_minor: int
    fee_cost_minor: int
    spread_cost_minor: int
    rate_provider: str | None
    uses_credit: bool
    # A conversion's mid-market factor: ``target minor units = source minor units x mid_factor``
    # (None when the leg does not convert). What the converter keeps beyond the mid price (its
    # spread and rounding) follows from it (``plan.kept_by_converter``).
    mid_factor: Fraction | None = None


@dataclass(frozen=True, slots=True)
class Route:
    legs: tuple[Leg, ...]
    cost_minor: int
    fees_minor: int
    spread_minor: int
    hop_charges_minor: int
    hops: int
    amount_delivered_minor: int

    @property
    def nodes(self) -> tuple[Node, ...]:
        if not self.legs:
            return ()
        return (self.legs[0].source, *(leg.target for leg in self.legs))

    @property
    def signature(self) -> tuple[object, ...]:
        """What makes a route a distinct alternative: its first leg (the debtor's account), its
        conversion chain (which providers and swap lines convert), and its last leg (the account
        that credits the creditor). Routes differing only in intermediate legs share it."""
        if not self.legs:
            return ((), (), ())
        key = [(leg.source, leg.target, leg.kind) for leg in self.legs]
        chain = tuple(k for k, leg in zip(key, self.legs, strict=True) if leg.kind in _CONVERTS)
        return (key[0], chain, key[-1])


@dataclass(frozen=True, slots=True)
class Exclusion:
    """An edge the search refused, with the path prefix on which it first met it.

    ``path`` runs from the debtor node to the refused edge's target. For a capacity refusal,
    ``amount_minor`` is what the edge would have had to carry and ``available_minor`` its capacity,
    both in ``currency`` (the currency the edge delivers). Otherwise ``available_minor`` is None
    and ``amount_minor`` is what would have entered the edge, in its input currency.
    """

    path: tuple[Node, ...]
    kind: EdgeKind
    reason: ExclusionReason
    amount_minor: int
    available_minor: int | None
    currency: str


@dataclass(frozen=True, slots=True)
class RouteResult:
    """Routes best first (``routes[0]`` is the cheapest) and the exclusions met on the way.

    ``cost_currency`` is the unit of every ``*_minor`` cost: minor units of the source currency.
    """

    status: RouteStatus
    routes: tuple[Route, ...]
    exclusions: tuple[Exclusion, ...]
    exclusions_dropped: int
    cost_currency: str
    expansions: int

    @property
    def best(self) -> Route | None:
        return self.routes[0] if self.routes else None


# --- Graph --------------------------------------------------------------------------------------


class _Edge(NamedTuple):
    source: Node
    target: Node
    kind: EdgeKind
    balance_minor: int | None  # None: uncapped
    credit_limit_minor: int
    fee_minor: int
    rate_provider: str | None
    consent: Consent = ANYONE  # FX edges: whose payments the provider converts


class RoutingGraph:
    """An immutable, precompiled network. Build once with ``RoutingGraph.build``; query often.

    Precomputation: nodes are numbered in (BIC, currency) order and edges in (source, target,
    kind) order, so the search compares integer tuples. A node whose only neighbour is a single
    node (a purely domestic bank with one settlement account) can never relay a payment and is
    only entered when it is the creditor. Per rate table, fx factors are computed once; per
    creditor anchor, reverse lower bounds (hops, spread, fees) and successor bounds are memoised.

    The memo tables make a graph unsafe to query from several threads at once; give each worker
    its own graph (building is cheap) or serialise queries. A graph rebuilt with ``build(...,
    reuse=graph)`` over the same links (only capacities differ) shares them: none of them depends
    on a capacity, so a query answers exactly as on a graph built afresh.
    """

    def __init__(
        self,
        edges: Sequence[_Edge],
        suspended: frozenset[str],
        cuts: frozenset[frozenset[str]],
        forwarding: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        # Per bank, the debtor agents whose payments it forwards as their correspondent. None:
        # every bank forwards every payment (a graph without consent rules, as in unit tests).
        self.forwarding = forwarding
        node_keys = sorted({edge.source for edge in edges} | {edge.target for edge in edges})
        self.nodes: tuple[Node, ...] = tuple(node_keys)
        self._index = {node: index for index, node in enumerate(self.nodes)}
        ordered = sorted(
            edges, key=lambda e: (self._index[e.source], self._index[e.target], _KIND_RANK[e.kind])
        )
        self.edges: tuple[_Edge, ...] = tuple(ordered)
        # Each edge's position by its link (``_rebalanced``): one edge per (source, target, kind).
        self._position = {_link(e): i for i, e in enumerate(ordered)}
        # Per input of ``build`` (an account, point or line), by identity: the input (kept
        # alive, so that its id is not reused) and its edges with their places.
        self._compiled: dict[int, tuple[_Input, tuple[tuple[int, _Edge], ...]]] = {}
        self.suspended = suspended
        self.corridor_cuts = cuts
        self._e_from = [self._index[e.source] for e in ordered]
        self._e_to = [self._index[e.target] for e in ordered]
        self._e_hops = [_HOPS[e.kind] for e in ordered]
        self._e_block = [_static_block(e, suspended, cuts) for e in ordered]
        self._out: list[list[int]] = [[] for _ in self.nodes]
        self._in: list[list[int]] = [[] for _ in self.nodes]
        neighbours: list[set[int]] = [set() for _ in self.nodes]
        for edge_index, (source, target) in enumerate(zip(self._e_from, self._e_to, strict=True)):
            self._out[source].append(edge_index)
            self._in[target].append(edge_index)
            neighbours[source].add(target)
            neighbours[target].add(source)
        self._leaf = [len(found) <= 1 for found in neighbours]
        self._core_out = [[e for e in out if not self._leaf[self._e_to[e]]] for out in self._out]
        # The relay core: nodes that are not leaves, compactly numbered, and the edges between
        # them split by hop weight, as arrays for the vectorised reverse bounds.
        core = [node for node in range(len(self.nodes)) if not self._leaf[node]]
        self._core_index = [-1] * len(self.nodes)
        for index, node in enumerate(core):
            self._core_index[node] = index
        self._core_size = len(core)
        relay = [
            e
            for e in range(len(ordered))
            if self._core_index[self._e_from[e]] >= 0 and self._core_index[self._e_to[e]] >= 0
        ]
        self._relay_one = np.array([e for e in relay if self._e_hops[e] == 1], dtype=np.int64)
        self._relay_zero = np.array([e for e in relay if self._e_hops[e] == 0], dtype=np.int64)
        self._e_from_core = np.array([self._core_index[n] for n in self._e_from], dtype=np.int64)
        self._e_to_core = np.array([self._core_index[n] for n in self._e_to], dtype=np.int64)
        self._contexts: OrderedDict[int, tuple[RateTable, _RateContext]] = OrderedDict()

    @classmethod
    def build(
        cls,
        *,
        settlement_accounts: Iterable[SettlementAccount] = (),
        correspondents: Iterable[CorrespondentAccount] = (),
        fx_points: Iterable[FxPoint] = (),
        swap_lines: Iterable[SwapLine] = (),
        suspended: Iterable[str] = (),
        corridor_cuts: Iterable[tuple[str, str]] = (),
        forwarding: Mapping[str, Iterable[str]] | None = None,
        reuse: RoutingGraph | None = None,
    ) -> RoutingGraph:
        """Validate the inputs and compile the graph.

        ``forwarding`` maps a bank to the debtor agents whose payments it agrees to forward from
        its own accounts (its correspondent clients). When given, a bank pays a payment on only
        if it is the debtor agent, services the account the payment just left, converted it at
        its own quotes, or forwards for the debtor (``ExclusionReason.NO_CONSENT``).

        ``suspended`` lists BICs; every edge touching one is refused (``participant_suspended``).
        ``corridor_cuts`` lists ISO 3166 country pairs (either order); every edge between
        participants in the two countries is refused (``corridor_cut``).

        ``reuse``: a graph built before, typically over the same network with older balances.
        When the inputs make the same links as it (the same edges, fees, rate providers, consent,
        suspensions, cuts and forwarding; only balances, limits and capacities may differ), the
        new graph shares its compiled structure and memo tables instead of compiling them again
        (``_rebalanced``); otherwise it is compiled afresh. Either way it answers every query
        exactly as a graph built without ``reuse``.

        Raises:
            ValueError: a malformed BIC, unknown currency, negative limit, or duplicate link.
        """
        inputs: list[_Input] = [*settlement_accounts, *correspondents, *fx_points, *swap_lines]
        cuts = frozenset(frozenset((a, b)) for a, b in corridor_cuts)
        consent = (
            None
            if forwarding is None
            else {bank: frozenset(clients) for bank, clients in forwarding.items()}
        )
        banned = frozenset(parse_bic(b) for b in suspended)
        if reuse is not None:
            rebalanced = reuse._rebalanced(inputs, banned, cuts, consent)
            if rebalanced is not None:
                return rebalanced
        seen: set[tuple[object, ...]] = set()
        made = [(item, _edges_of(item, seen)) for item in inputs]
        graph = cls([edge for _, edges in made for edge in edges], banned, cuts, consent)
        graph._compiled = {
            id(item): (item, tuple((graph._position[_link(edge)], edge) for edge in edges))
            for item, edges in made
        }
        return graph

    def _rebalanced(
        self,
        inputs: Sequence[_Input],
        suspended: frozenset[str],
        cuts: frozenset[frozenset[str]],
        forwarding: Mapping[str, frozenset[str]] | None,
    ) -> RoutingGraph | None:
        """This graph with the capacities of ``inputs``, sharing everything compiled (node and
        edge numbering, adjacency, relay core, rate contexts and their memo tables); None when
        ``inputs`` make other links or differ in anything but capacity.

        Exact: the compiled structure is a function of the links alone (edges are ordered by
        (source, target, kind)), and the memo tables of fx factors, fee weights and lower bounds
        read only links, fees and rate providers; capacities are read from ``edges`` during
        each search (``_traverse``, ``_route``). An input equal to one this graph was built from
        (they are immutable values) makes the same, already validated, edges at the same places;
        only the others are compiled (and validated) again. Inputs are recognised by identity
        (the caller passes the very objects of unchanged accounts), which costs no hashing.
        """
        if (suspended, cuts, forwarding) != (self.suspended, self.corridor_cuts, self.forwarding):
            return None
        edges = list(self.edges)
        placed = bytearray(len(edges))
        compiled: dict[int, tuple[_Input, tuple[tuple[int, _Edge], ...]]] = {}
        changed = False
        for item in inputs:
            entry = self._compiled.get(id(item))
            if entry is not None and entry[0] is item:
                known = entry[1]
            else:
                found = self._placed(item)
                if found is None:
                    return None
                known = found
            for index, edge in known:
                if placed[index]:
                    return None  # A duplicate link: ``build`` compiles (and refuses) it.
                placed[index] = 1
                if edge is not edges[index]:
                    changed = changed or edge != edges[index]
                    edges[index] = edge
            compiled[id(item)] = (item, known)
        if not all(placed):
            return None  # Fewer links than this graph has.
        if not changed:  # The very same graph: keep it (and what its callers memoised on it).
            self._compiled = compiled  # The same edges, known by today's inputs.
            return self
        twin = copy.copy(self)  # Shallow: the compiled tables and memo tables are shared.
        twin.edges = tuple(edges)
        twin._compiled = compiled
        return twin

    def _placed(self, item: _Input) -> tuple[tuple[int, _Edge], ...] | None:
        """``item``'s edges (validated) at this graph's places for their links; None if a link
        is not in this graph or differs from it in more than capacity."""
        found = []
        for edge in _edges_of(item, set()):
            index = self._position.get(_link(edge))
            if index is None:
                return None
            kept = self.edges[index]
            if (edge.fee_minor, edge.rate_provider, edge.consent) != (
                kept.fee_minor,
                kept.rate_provider,
                kept.consent,
            ):
                return None
            found.append((index, edge))
        return tuple(found)

    def node_index(self, node: Node) -> int | None:
        return self._index.get(node)

    def _rate_context(self, rates: RateTable) -> _RateContext:
        # Keyed by identity: a RateTable is immutable. The table is kept alive with its context so
        # that its id cannot be reused by another table while the entry exists.
        key = id(rates)
        entry = self._contexts.get(key)
        if entry is not None and entry[0] is rates:
            self._contexts.move_to_end(key)
            return entry[1]
        context = _RateContext(self, rates)
        self._contexts[key] = (rates, context)
        while len(self._contexts) > _RATE_CONTEXTS_MAX:
            self._contexts.popitem(last=False)
        return context


_Input = SettlementAccount | CorrespondentAccount | FxPoint | SwapLine


def _link(edge: _Edge) -> tuple[Node, Node, EdgeKind]:
    """What identifies an edge in a graph: at most one edge per (source, target, kind)."""
    return (edge.source, edge.target, edge.kind)


def _edges_of(item: _Input, seen: set[tuple[object, ...]]) -> tuple[_Edge, ...]:
    """The validated edges of one input of ``RoutingGraph.build``."""
    if isinstance(item, SettlementAccount):
        return tuple(_settlement_edges(item, seen))
    if isinstance(item, CorrespondentAccount):
        return tuple(_correspondent_edges(item, seen))
    if isinstance(item, FxPoint):
        return (_fx_edge(item, seen),)
    return (_swap_edge(item, seen),)


def _static_block(
    edge: _Edge, suspended: frozenset[str], cuts: frozenset[frozenset[str]]
) -> ExclusionReason | None:
    if edge.source.participant in suspended or edge.target.participant in suspended:
        return ExclusionReason.PARTICIPANT_SUSPENDED
    countries = frozenset(
        (bic_country(edge.source.participant), bic_country(edge.target.participant))
    )
    if len(countries) == 2 and countries in cuts:
        return ExclusionReason.CORRIDOR_CUT
    return None


def _check_link(key: tuple[object, ...], seen: set[tuple[object, ...]]) -> None:
    if key in seen:
        raise ValueError(f"duplicate link {key!r}")
    seen.add(key)


def _amount(value: object, field: str, *, signed: bool = False) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{field} must be an int of minor units, got {type(value).__name__}")
    if abs(value) > AMOUNT_MAX or (value < 0 and not signed):
        raise ValueError(f"{field} {value} is out of range")
    return value


def _node(bic: str, code: str) -> Node:
    if isinstance(bic, str) and isinstance(code, str):
        return _checked_node(bic, code)
    currency(code)  # Raises: not a string.
    return Node(parse_bic(bic), code)


@lru_cache(maxsize=65_536)
def _checked_node(bic: str, code: str) -> Node:
    # Pure and hot (every graph build names every node): cached. Failures are not cached.
    currency(code)
    return Node(parse_bic(bic), code)


def _settlement_edges(account: SettlementAccount, seen: set[tuple[object, ...]]) -> list[_Edge]:
    member, agent = (
        _node(account.participant, account.currency),
        _node(account.agent, account.currency),
    )
    if member == agent:
        raise ValueError(f"settlement account of {member} at itself")
    _check_link(("settlement", member, agent), seen)
    limit = _amount(account.credit_limit_minor, "credit_limit_minor")
    balance = _amount(account.balance_minor, "balance_minor", signed=True)
    if balance < -limit:
        raise ValueError(f"settlement balance of {member} at {agent} is below -credit_limit")
    fee = _amount(account.fee_minor, "fee_minor")
    return [
        _Edge(member, agent, EdgeKind.SETTLEMENT_IN, balance, limit, fee, None),
        _Edge(agent, member, EdgeKind.SETTLEMENT_OUT, None, 0, 0, None),
    ]


def _correspondent_edges(link: CorrespondentAccount, seen: set[tuple[object, ...]]) -> list[_Edge]:
    holder, servicer = _node(link.holder, link.currency), _node(link.servicer, link.currency)
    if holder == servicer:
        raise ValueError(f"correspondent account of {holder} with itself")
    _check_link(("correspondent", holder, servicer), seen)
    limit = _amount(link.credit_limit_minor, "credit_limit_minor")
    balance = _amount(link.balance_minor, "balance_minor", signed=True)
    if balance < -limit:
        raise ValueError(f"nostro balance of {holder} at {servicer} is below -credit_limit")
    fee = _amount(link.fee_minor, "fee_minor")
    return [
        _Edge(holder, servicer, EdgeKind.NOSTRO_DEBIT, balance, limit, fee, None),
        _Edge(servicer, holder, EdgeKind.VOSTRO_CREDIT, None, 0, 0, None),
    ]


def _fx_edge(point: FxPoint, seen: set[tuple[object, ...]]) -> _Edge:
    source, target = (
        _node(point.provider, point.from_currency),
        _node(point.provider, point.to_currency),
    )
    if source == target:
        raise ValueError(f"fx point of {point.provider} converts {point.from_currency} to itself")
    _check_link(("fx", source, target), seen)
    available = _amount(point.available_minor, "available_minor")
    fee = _amount(point.fee_minor, "fee_minor")
    provider = point.rate_provider or source.participant
    return _Edge(source, target, EdgeKind.FX, available, 0, fee, provider, point.consent)


def _swap_edge(line: SwapLine, seen: set[tuple[object, ...]]) -> _Edge:
    source = _node(line.drawer, line.drawer_currency)
    target = _node(line.provider, line.provider_currency)
    if source.currency == target.currency or source.participant == target.participant:
        raise ValueError(f"swap line {source} -> {target} must join two banks and two currencies")
    _check_link(("swap", source, target), seen)
    limit = _amount(line.limit_minor, "limit_minor")
    drawn = _amount(line.drawn_minor, "drawn_minor")
    fee = _amount(line.fee_minor, "fee_minor")
    headroom = max(limit - drawn, 0)
    return _Edge(
        source,
        target,
        EdgeKind.SWAP_LINE,
        headroom,
        0,
        fee,
        line.rate_provider or target.participant,
    )


# --- Per-rate-table context and lower bounds ---------------------------------------------------

# Per relay-core node: the least hops to an anchor, and per hop layer r the least weight over
# paths of at most r hops (``_RateContext._reverse_layers``).
_Tables = tuple[list[int], list[list[int]]]
# A bound's frontier: (hops, spread ppb, fees) per hop count that improves on the shorter ones.
_Frontier = tuple[tuple[int, int, int], ...]
# A relay successor of a node: (least hops, frontier, edge); see ``_successor_parts``.
_SuccessorPart = tuple[int, _Frontier, int]


class _RateContext:
    """Fx factors of every converting edge under one rate table, and memoised lower bounds."""

    def __init__(self, graph: RoutingGraph, rates: RateTable) -> None:
        self.graph = graph
        # Per edge: None (not converting), False (no rate), or
        # (num, den, mid_num, mid_den, loss_ppb) with out = floor(in * num / den).
        self.fx: list[tuple[int, int, int, int, int] | Literal[False] | None] = []
        for edge in graph.edges:
            if edge.kind not in _CONVERTS:
                self.fx.append(None)
                continue
            found = rates.best(
                edge.source.currency,
                edge.target.currency,
                Rounding.CUSTOMER_RECEIVES,
                provider=edge.rate_provider,
            )
            if found is None:
                self.fx.append(False)
                continue
            loss = (1 - found.factor / found.mid_factor) * _PPB
            assert 0 <= loss < _PPB, found
            self.fx.append(
                (
                    found.factor.numerator,
                    found.factor.denominator,
                    found.mid_factor.numerator,
                    found.mid_factor.denominator,
                    loss.numerator // loss.denominator,
                )
            )
        self._loss_ppb = np.array([f[4] if f else 0 for f in self.fx], dtype=np.int64)
        self._fee_weights: dict[tuple[str, int], npt.NDArray[np.int64]] = {}
        self._fee_weight_lists: dict[tuple[str, int], list[int]] = {}
        self._tables: OrderedDict[tuple[object, ...], _Tables] = OrderedDict()
        self.successors: OrderedDict[tuple[object, ...], list[_SuccessorPart]] = OrderedDict()

    def loss_tables(self, root: int, depth: int) -> _Tables:
        """Least hops and least spread (ppb) to ``root`` within r hops; see ``_reverse_layers``."""
        return self._memo(
            ("loss", root, depth), lambda: self._reverse_layers(root, depth, self._loss_ppb)
        )

    def fee_tables(self, root: int, depth: int, source: str) -> _Tables:
        """Least hops and least fees, in minor units of ``source``, to ``root`` within r hops."""

        def compute() -> _Tables:
            return self._reverse_layers(root, depth, self.fee_weights(source, depth))

        return self._memo(("fee", root, depth, source), compute)

    def _memo(self, key: tuple[object, ...], compute: Callable[[], _Tables]) -> _Tables:
        found = self._tables.get(key)
        if found is not None:
            self._tables.move_to_end(key)
            return found
        found = self._tables[key] = compute()
        while len(self._tables) > _LOWER_BOUND_CACHE_MAX:
            self._tables.popitem(last=False)
        return found

    def fee_weight_list(self, source: str, depth: int) -> list[int]:
        key = (source, depth)
        found = self._fee_weight_lists.get(key)
        if found is None:
            weights: list[int] = self.fee_weights(source, depth).tolist()
            found = self._fee_weight_lists[key] = weights
        return found

    def fee_weights(self, source: str, depth: int) -> npt.NDArray[np.int64]:
        """Per edge, a lower bound of its fee in minor units of ``source``: floor(fee / rho).

        rho(C) bounds the amount of currency C that one minor unit of ``source`` can become: the
        largest product of conversion factors over chains of at most ``depth`` conversions (1 for
        ``source`` itself, which a route never re-enters). A leg in C carries at most A0 * rho(C),
        so its fee cost ceil(fee * A0 / amount_in) is at least fee / rho(C).
        """
        key = (source, depth)
        found = self._fee_weights.get(key)
        if found is not None:
            return found
        graph = self.graph
        best: dict[tuple[str, str], Fraction] = {}
        for edge, factors in enumerate(self.fx):
            if factors:
                pair = (graph.edges[edge].source.currency, graph.edges[edge].target.currency)
                factor = Fraction(factors[0], factors[1])
                best[pair] = max(best.get(pair, factor), factor)
        reach: dict[str, Fraction] = {source: Fraction(1)}
        for _ in range(depth):
            grown = dict(reach)
            for (start, end), factor in best.items():
                if start in reach and end != source:
                    grown[end] = max(grown.get(end, Fraction(0)), reach[start] * factor)
            reach = grown
        weights = []
        for spec in graph.edges:
            rho = reach.get(spec.source.currency)
            weights.append(0 if not spec.fee_minor or rho is None else int(spec.fee_minor / rho))
        found = self._fee_weights[key] = np.array(weights, dtype=np.int64)
        return found

    def _reverse_layers(self, root: int, depth: int, weights: npt.NDArray[np.int64]) -> _Tables:
        """Bellman-Ford by hop layers on reversed relay-core edges, vectorised with numpy.

        Returns ``hops[c]``, the least hops (``_UNREACHABLE`` beyond ``depth``), and
        ``layers[r][c]``, the least total weight over paths of at most r hops (r = 0..depth), for
        every relay-core node numbered ``c``. Layer r = min(layer r-1, min over one-hop edges x->y
        of layer[r-1][y] + weight), then closed over zero-hop edges (settlement_out, which never
        convert and carry no fee). Weights are far below 2**62 / depth, so int64 cannot overflow.
        Refused edges (suspended, cut, no rate) are kept in: the bound stays admissible on a
        superset of the usable edges, and the search still meets them and reports why.
        """
        graph = self.graph
        one, zero = graph._relay_one, graph._relay_zero
        one_from, one_to = graph._e_from_core[one], graph._e_to_core[one]
        zero_from, zero_to = graph._e_from_core[zero], graph._e_to_core[zero]
        one_weight = weights[one]
        layer = np.full(graph._core_size, _UNREACHABLE, dtype=np.int64)
        layer[graph._core_index[root]] = 0
        layers = []
        for hop in range(depth + 1):
            if hop:
                following = layer.copy()
                np.minimum.at(following, one_from, layer[one_to] + one_weight)
                layer = following
            for _ in range(graph._core_size):
                before = layer[zero_from]
                np.minimum.at(layer, zero_from, layer[zero_to])
                if bool(np.array_equal(before, layer[zero_from])):
                    break
            layers.append(layer)
        stacked = np.stack(layers)
        reachable = stacked < _UNREACHABLE
        hops = np.where(reachable.any(axis=0), reachable.argmax(axis=0), _UNREACHABLE)
        return hops.tolist(), stacked.tolist()


class _Bound(NamedTuple):
    """Lower bounds from a node to the creditor within a hop budget.

    ``frontier`` couples hops with the rest: for each hop count h the node can reach the creditor
    in (h <= budget), the least spread (ppb) and least fees (source minor units) over paths of at
    most h hops. Any path of exactly h hops costs at least
    ``hop_charge * h + amount * loss // PPB + fees``, so the least such value over the frontier is
    a lower bound; only entries that improve on a shorter one are kept. Empty: out of reach.
    """

    hops: int  # least hops to the creditor, whatever the budget
    frontier: tuple[tuple[int, int, int], ...]  # (hops, spread ppb, fees)


class _LowerBound:
    """Admissible lower bounds to the creditor node: hops, spread (ppb) and fees.

    A leaf creditor is reached only through its few neighbours (its anchors), so its bound is
    composed from theirs: every creditor at one settlement agent shares the agent's tables.
    Spread and fees per hop budget may come from different paths; their sum is still a bound.
    """

    def __init__(self, context: _RateContext, target: int, depth: int, source: str) -> None:
        graph = context.graph
        self.target = target
        anchors: dict[int, tuple[int, int, int]] = {}
        fee_weights = context.fee_weights(source, depth)
        if graph._leaf[target]:
            for edge in graph._in[target]:
                factors = context.fx[edge]
                weight = (graph._e_hops[edge], factors[4] if factors else 0, int(fee_weights[edge]))
                origin = graph._e_from[edge]
                kept = anchors.get(origin, weight)
                anchors[origin] = (
                    min(kept[0], weight[0]),
                    min(kept[1], weight[1]),
                    min(kept[2], weight[2]),
                )
        else:
            anchors[target] = (0, 0, 0)
        self.source = source
        self.key = (depth, source, *sorted(anchors.items()))
        self.core_index = graph._core_index
        # An anchor outside the relay core (a leaf next to a leaf) is reached from nowhere else.
        self.anchors = [
            (
                weight,
                *context.loss_tables(anchor, depth),
                context.fee_tables(anchor, depth, source)[1],
            )
            for anchor, weight in sorted(anchors.items())
            if graph._core_index[anchor] >= 0
        ]

    def __call__(self, node: int, budget: int) -> _Bound | None:
        """The bound for ``node`` with ``budget`` hops left; None if the creditor is unreachable."""
        if node == self.target:
            return _Bound(0, ((0, 0, 0),))
        core = self.core_index[node]
        if core < 0:
            return None  # a leaf relays nothing
        best_hops = _UNREACHABLE
        entries = []
        for (hops, loss, fee), hops_to, loss_to, fee_to in self.anchors:
            found = hops_to[core]
            if found == _UNREACHABLE:
                continue
            best_hops = min(best_hops, hops + found)
            for layer in range(found, budget - hops + 1):
                entries.append(
                    (hops + layer, loss + loss_to[layer][core], fee + fee_to[layer][core])
                )
        if best_hops == _UNREACHABLE:
            return None
        entries.sort()
        frontier: list[tuple[int, int, int]] = []
        for entry in entries:
            if not any(kept[1] <= entry[1] and kept[2] <= entry[2] for kept in frontier):
                frontier.append(entry)
        return _Bound(best_hops, tuple(frontier))


class _Step(NamedTuple):
    amount_out: int
    fee_cost: int
    spread_cost: int
    reason: ExclusionReason | None
    available: int | None


def _traverse(
    graph: RoutingGraph, context: _RateContext, edge: int, amount_in: int, amount_source: int
) -> _Step:
    """Carry ``amount_in`` across ``edge``; costs are in source minor units (see module doc)."""
    spec = graph.edges[edge]
    factors = context.fx[edge]
    if factors is False:
        return _Step(amount_in, 0, 0, ExclusionReason.NO_RATE, None)
    spread = 0
    amount_out = amount_in
    if factors is not None:
        num, den, mid_num, mid_den, _ = factors
        converted = amount_in - spec.fee_minor  # A converter's charge comes off what it converts.
        amount_out = converted * num // den if converted > 0 else 0
        if amount_out == 0:
            return _Step(amount_in, 0, 0, ExclusionReason.AMOUNT_ROUNDS_TO_ZERO, None)
        spread = amount_source - amount_source * amount_out * mid_den // (converted * mid_num)
    if spec.balance_minor is not None:
        available = spec.balance_minor + spec.credit_limit_minor
        if amount_out > available:
            return _Step(amount_out, 0, 0, _capacity_reason(spec), available)
    fee_cost = -(-spec.fee_minor * amount_source // amount_in) if spec.fee_minor else 0
    assert spread >= 0 and fee_cost >= 0, (edge, amount_in, amount_source)
    return _Step(amount_out, fee_cost, spread, None, None)


def _capacity_reason(spec: _Edge) -> ExclusionReason:
    if spec.kind is EdgeKind.SWAP_LINE:
        return ExclusionReason.EXCEEDS_SWAP_LINE_HEADROOM
    if spec.credit_limit_minor > 0:
        return ExclusionReason.EXCEEDS_CREDIT_LIMIT
    return ExclusionReason.INSUFFICIENT_BALANCE


# --- Queries ------------------------------------------------------------------------------------


class _Query(NamedTuple):
    graph: RoutingGraph
    context: _RateContext
    source: int
    target: int
    amount: int
    hop_limit: int
    hop_charge: int


def _prepare(
    graph: RoutingGraph,
    debtor_agent: str,
    creditor_agent: str,
    amount_minor: int,
    from_currency: str,
    to_currency: str,
    rates: RateTable,
    hop_limit: int,
    hop_charge_minor: int,
) -> _Query | RouteStatus:
    if hop_limit < 0 or hop_charge_minor < 0:
        raise ValueError("hop_limit and hop_charge_minor must be >= 0")
    if not isinstance(amount_minor, int) or isinstance(amount_minor, bool):
        return RouteStatus.AMOUNT_INVALID
    if amount_minor <= 0 or amount_minor > AMOUNT_MAX:
        return RouteStatus.AMOUNT_INVALID
    source = graph.node_index(Node(debtor_agent, from_currency))
    if source is None:
        return RouteStatus.DEBTOR_NODE_NOT_FOUND
    target = graph.node_index(Node(creditor_agent, to_currency))
    if target is None:
        return RouteStatus.CREDITOR_NODE_NOT_FOUND
    context = graph._rate_context(rates)
    return _Query(graph, context, source, target, amount_minor, hop_limit, hop_charge_minor)


def find_routes(
    graph: RoutingGraph,
    debtor_agent: str,
    creditor_agent: str,
    amount_minor: int,
    from_currency: str,
    to_currency: str,
    rates: RateTable,
    *,
    k: int = ROUTES_MAX_DEFAULT,
    hop_limit: int = HOP_LIMIT_DEFAULT,
    hop_charge_minor: int = 0,
    exclusions_max: int = EXCLUSIONS_MAX_DEFAULT,
    expansions_max: int = EXPANSIONS_MAX_DEFAULT,
) -> RouteResult:
    """The cheapest feasible route and up to ``k - 1`` alternatives (one per signature).

    ``amount_minor`` (in ``from_currency``) leaves the debtor; each fx edge converts it (rounded
    down). Costs are in minor units of ``from_currency`` (see the module docstring). Bad queries
    are result values (``RouteStatus``), never exceptions; bad arguments (k < 1) raise.

    Algorithm: best-first (A*) search over labels (partial routes) with dominance per (node,
    first edge, conversion chain) and admissible lower bounds (least hops, spread and fees to the
    creditor within the remaining hops, computed on reversed edges and memoised per anchor). A
    label's key (cost + bound, hops + bound, edges) is never greater than the key of any of its
    completions, so complete routes leave the heap exactly in (cost, hops, path) order.
    """
    if k < 1:
        raise ValueError("k must be >= 1")
    query = _prepare(
        graph,
        debtor_agent,
        creditor_agent,
        amount_minor,
        from_currency,
        to_currency,
        rates,
        hop_limit,
        hop_charge_minor,
    )
    if isinstance(query, RouteStatus):
        return RouteResult(query, (), (), 0, from_currency, 0)
    search = _search(query, k, expansions_max)
    routes = [_route(query, path) for path in search.found]
    return _result(query, routes, search, exclusions_max)


def _result(
    query: _Query, routes: list[Route], search: _SearchResult, exclusions_max: int
) -> RouteResult:
    """A search's answer: its routes, status and (at most ``exclusions_max``) exclusions."""
    _, exclusions, expansions, exhausted = search
    excluded = [_exclusion(query, *item) for item in exclusions.values()]
    if exhausted:
        status = RouteStatus.EXPANSIONS_MAX_REACHED
    else:
        status = RouteStatus.OK if routes else RouteStatus.NO_FEASIBLE_ROUTE
    dropped = max(len(excluded) - exclusions_max, 0)
    currency = query.graph.nodes[query.source].currency
    return RouteResult(
        status, tuple(routes), tuple(excluded[:exclusions_max]), dropped, currency, expansions
    )


def find_routes_delivering(
    graph: RoutingGraph,
    debtor_agent: str,
    creditor_agent: str,
    deliver_minor: int,
    from_currency: str,
    to_currency: str,
    rates: RateTable,
    *,
    k: int = ROUTES_MAX_DEFAULT,
    hop_limit: int = HOP_LIMIT_DEFAULT,
    hop_charge_minor: int = 0,
    exclusions_max: int = EXCLUSIONS_MAX_DEFAULT,
    expansions_max: int = EXPANSIONS_MAX_DEFAULT,
) -> RouteResult:
    """Routes that deliver exactly ``deliver_minor`` of ``to_currency`` to the creditor agent
    (a fixed received amount), each with the least ``from_currency`` the debtor must send on it.

    The search runs as ``find_routes`` for an estimate of the amount sent (from the rate table),
    then each path found is priced backwards: the least input of every converting edge whose
    output, rounded down, covers what the rest of the path needs (``ceil(need * den / num)``).
    Forward from that amount each converting edge delivers exactly what the next needs; what its
    rounding gives beyond that stays with the converter (its spread), so the delivered amount is
    exact and every currency still balances. A path that no longer fits its capacities at the
    exact amount is dropped; when none is left the search is run once more at the exact amount
    of the cheapest path. Results as ``find_routes``, ``routes`` best first by cost.
    """
    if not isinstance(deliver_minor, int) or isinstance(deliver_minor, bool):
        return RouteResult(RouteStatus.AMOUNT_INVALID, (), (), 0, from_currency, 0)
    if deliver_minor <= 0 or deliver_minor > AMOUNT_MAX:
        return RouteResult(RouteStatus.AMOUNT_INVALID, (), (), 0, from_currency, 0)
    estimate = min(_sent_estimate(rates, from_currency, to_currency, deliver_minor), AMOUNT_MAX)
    result = RouteResult(RouteStatus.NO_FEASIBLE_ROUTE, (), (), 0, from_currency, 0)
    for _ in range(2):
        query = _prepare(
            graph,
            debtor_agent,
            creditor_agent,
            estimate,
            from_currency,
            to_currency,
            rates,
            hop_limit,
            hop_charge_minor,
        )
        if isinstance(query, RouteStatus):
            return RouteResult(query, (), (), 0, from_currency, 0)
        search = _search(query, k, expansions_max)
        priced = [_route_delivering(query, path, deliver_minor) for path in search.found]
        routes = sorted(
            (route for route in priced if isinstance(route, Route)),
            key=lambda route: (route.cost_minor, route.hops),
        )
        result = _result(query, routes, search, exclusions_max)
        exact = [amount for amount in priced if isinstance(amount, int)]
        if routes or not exact or exact[0] == estimate:
            return result
        estimate = exact[0]  # The paths found do not fit at the exact amount: search at it.
    return result


def _sent_estimate(rates: RateTable, from_currency: str, to_currency: str, deliver: int) -> int:
    """What sending about ``deliver`` of ``to_currency`` takes in ``from_currency``: through
    the best direct quote, else the best chain through one other currency, else ``deliver``."""
    if from_currency == to_currency:
        return deliver
    direct = rates.best(from_currency, to_currency)
    if direct is not None:
        return _ceil_div(deliver * direct.factor.denominator, direct.factor.numerator)
    best: Fraction | None = None
    for rate in rates.rates:
        for middle in (rate.base, rate.quote):
            if middle in (from_currency, to_currency):
                continue
            first = rates.best(from_currency, middle)
            second = rates.best(middle, to_currency)
            if first is not None and second is not None:
                factor = first.factor * second.factor
                best = factor if best is None or factor > best else best
    if best is None or best == 0:
        return deliver
    return max(_ceil_div(deliver * best.denominator, best.numerator), 1)


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def _route_delivering(query: _Query, path: tuple[int, ...], deliver: int) -> Route | int:
    """``path`` priced to deliver exactly ``deliver``; the least amount to send on it (an
    int) when the path cannot carry that amount."""
    graph, context = query.graph, query.context
    needs = [deliver]  # What must arrive at the end of each edge, from the last edge back.
    for edge in reversed(path):
        factors = context.fx[edge]
        need = needs[-1]
        if factors:
            num, den = factors[0], factors[1]
            need = _ceil_div(need * den, num) + graph.edges[edge].fee_minor
        needs.append(need)
    needs.reverse()  # needs[i]: what enters edge i; needs[-1] == deliver.
    amount = needs[0]
    if amount > AMOUNT_MAX:
        return AMOUNT_MAX + 1
    amount_in = amount
    for position, edge in enumerate(path):  # Feasible at that amount? (capacities)
        if _traverse(graph, context, edge, amount_in, amount).reason is not None:
            return amount
        amount_in = needs[position + 1]
    return _route(query._replace(amount=amount), path, needs[1:])


class _Label(NamedTuple):
    """A partial route: where it is, what it cost, and what its future may depend on."""

    node: int
    cost: int
    hops: int
    amount: int  # in the node's currency
    visited: tuple[int, ...]
    first: int  # first edge, -1 before any
    chain: tuple[int, ...]  # converting edges so far
    left: tuple[str, ...]  # currencies converted out of
    relay: bool = True  # the bank at this node agrees to pay this payment on (see _relays)


# Heap entry types: a label, or a cursor into a label's sorted successors.
_LABEL: Final = 0
_SUCCESSORS: Final = 1
# (cost bound, hops bound, path, type, payload); the payload is the label, or for a cursor the
# label and the position of its next successor (the literals are ``_LABEL`` and ``_SUCCESSORS``).
_HeapEntry = (
    tuple[int, int, tuple[int, ...], Literal[0], _Label]
    | tuple[int, int, tuple[int, ...], Literal[1], tuple[_Label, int]]
)
# A successor of a node as ``_Successors`` sorts them: (static cost bound, hops bound, edge, the
# edge's own part of the cost bound).
_Option = tuple[int, int, int, int]


class _Refusal(NamedTuple):
    """An edge the search could not take (reported as an ``Exclusion``)."""

    path: tuple[int, ...]  # the path up to and including the refused edge
    reason: ExclusionReason
    needed: int
    available: int | None


class _SearchResult(NamedTuple):
    found: list[tuple[int, ...]]  # paths of the routes found, best first
    exclusions: dict[int, _Refusal]  # per edge, the first refusal met
    expansions: int
    exhausted: bool  # stopped at ``expansions_max``


class _Successors:
    """Per query: each node's successors sorted by their bound, and those out of hop reach.

    Entries are (static cost bound, hops bound, edge, the edge's own part of the cost bound),
    sorted - the order in which their keys grow for any label at that node and hops used. The
    amount-free parts are shared across queries (``_successor_parts``); only the cost bound,
    which scales with the amount, is computed here.
    """

    def __init__(self, query: _Query, bound: _LowerBound) -> None:
        graph = query.graph
        self.query, self.bound = query, bound
        self.fee_weights = query.context.fee_weight_list(
            graph.nodes[query.source].currency, query.hop_limit
        )
        # Edges into a leaf creditor are not in the compiled relay adjacency: add them by source.
        self.into_target: dict[int, list[int]] = {}
        if graph._leaf[query.target]:
            for edge in graph._in[query.target]:
                self.into_target.setdefault(graph._e_from[edge], []).append(edge)
        self.memo: dict[tuple[int, int], tuple[list[_Option], list[int]]] = {}

    def __call__(self, node: int, hops: int) -> tuple[list[_Option], list[int]]:
        found = self.memo.get((node, hops))
        if found is None:
            found = self.memo[(node, hops)] = self._build(node, hops)
        return found

    def _build(self, node: int, hops: int) -> tuple[list[_Option], list[int]]:
        query, fee_weights = self.query, self.fee_weights
        graph, hop_charge, amount = query.graph, query.hop_charge, query.amount
        budget = query.hop_limit - hops
        usable: list[_Option] = []
        too_far: list[int] = []
        parts = _successor_parts(query.context, self.bound, node, query.hop_limit)
        edge_hops = graph._e_hops
        for least_hops, frontier, edge in parts:
            if not frontier or frontier[0][0] > budget:  # frontiers are sorted by hops
                too_far.append(edge)
                continue
            static = _UNREACHABLE
            for h, loss, fee in frontier:
                if h > budget:
                    break
                value = hop_charge * h + amount * loss // _PPB + fee
                if value < static:
                    static = value
            own = hop_charge * edge_hops[edge] + fee_weights[edge]
            usable.append((static, least_hops, edge, own))
        for edge in self.into_target.get(node, ()):
            weight = graph._e_hops[edge]
            if weight > budget:
                too_far.append(edge)
            else:
                own = hop_charge * weight + fee_weights[edge]
                usable.append((own, weight, edge, own))
        usable.sort()
        return usable, too_far


def _search(query: _Query, k: int, expansions_max: int) -> _SearchResult:
    """Best-first search over labels (partial routes) with dominance per state; see find_routes.

    Heap entries are (cost bound, hops bound, path, type, payload). A label is expanded lazily:
    its successors are sorted once per (node, hops used) by their static bound, and a single
    "successors" entry walks that list, so a settlement agent with thousands of members costs one
    heap entry per member actually reached, not one per member.
    """
    graph, source, target = query.graph, query.source, query.target
    bound = _LowerBound(query.context, target, query.hop_limit, graph.nodes[source].currency)
    successors = _Successors(query, bound)
    start = _Label(source, 0, 0, query.amount, (source,), -1, (), ())
    heap: list[_HeapEntry] = [(0, 0, (), _LABEL, start)]
    settled_hops: dict[tuple[int, int, tuple[int, ...], bool], int] = {}
    signatures: set[tuple[int, tuple[int, ...], int]] = set()
    found: list[tuple[int, ...]] = []
    exclusions: dict[int, _Refusal] = {}
    expansions = 0
    while heap and len(found) < k:
        entry = heapq.heappop(heap)
        path = entry[2]
        if entry[3] == _SUCCESSORS:
            label, position = entry[4]
            usable = successors(label.node, label.hops)[0]
            _successor(query, heap, path[:-1], label, usable, position, exclusions)
            continue
        label = entry[4]
        if label.node == target:
            signature = (label.first, label.chain, path[-1] if path else -1)
            if signature not in signatures:
                signatures.add(signature)
                found.append(path)
            continue
        state = (label.node, label.first, label.chain, label.relay)
        if settled_hops.get(state, _UNREACHABLE) <= label.hops:
            continue  # dominated: an earlier label here was no dearer and no longer
        settled_hops[state] = label.hops
        if expansions >= expansions_max:
            return _SearchResult(found, exclusions, expansions, True)
        expansions += 1
        usable, too_far = successors(label.node, label.hops)
        for edge in too_far:
            if edge not in exclusions and graph._e_to[edge] not in label.visited:
                reason = ExclusionReason.EXCEEDS_HOP_LIMIT
                exclusions[edge] = _Refusal((*path, edge), reason, label.amount, None)
        _push_successors(heap, path, label, usable, 0)
    return _SearchResult(found, exclusions, expansions, False)


def _successor_parts(
    context: _RateContext, bound: _LowerBound, node: int, hop_limit: int
) -> list[_SuccessorPart]:
    """(least hops, frontier, edge) per relay successor that can reach the creditor at all.

    Each bound counts the edge itself: its hops and its fee lower bound (its spread is not
    counted, as the spread is only known once the edge is traversed). Frontiers are for the
    whole hop limit; a label with hops used keeps the entries that still fit. Depends only on
    the anchors, the source currency and the node, so it is memoised per rate table.
    """
    key = (bound.key, node)
    found = context.successors.get(key)
    if found is not None:
        return found
    graph = context.graph
    fee_weights = context.fee_weights(bound.source, hop_limit)
    parts: list[_SuccessorPart] = []
    for edge in graph._core_out[node]:
        weight = graph._e_hops[edge]
        lower = bound(graph._e_to[edge], hop_limit - weight)
        if lower is None:
            continue  # no path from there to the creditor at all: not a route
        fee = int(fee_weights[edge])
        frontier = tuple((weight + h, loss, fee + f) for h, loss, f in lower.frontier)
        parts.append((weight + lower.hops, frontier, edge))
    context.successors[key] = parts
    while len(context.successors) > _SUCCESSOR_CACHE_MAX:
        context.successors.popitem(last=False)
    return parts


def _push_successors(
    heap: list[_HeapEntry],
    path: tuple[int, ...],
    label: _Label,
    options: list[_Option],
    position: int,
) -> None:
    if position < len(options):
        cost_bound, hops_bound, edge, _ = options[position]
        key = (label.cost + cost_bound, label.hops + hops_bound, (*path, edge))
        heapq.heappush(heap, (*key, _SUCCESSORS, (label, position)))


def _successor(
    query: _Query,
    heap: list[_HeapEntry],
    path: tuple[int, ...],
    label: _Label,
    options: list[_Option],
    position: int,
    exclusions: dict[int, _Refusal],
) -> None:
    """Evaluate the successor at ``position`` and queue the next one."""
    graph, context, hop_charge = query.graph, query.context, query.hop_charge
    _push_successors(heap, path, label, options, position + 1)
    cost_bound, hops_bound, edge, own_bound = options[position]
    following = graph._e_to[edge]
    if following in label.visited:
        return
    converting = context.fx[edge] is not None
    if converting and graph.nodes[following].currency in label.left:
        return  # a round trip back into a currency already left is never a route
    weight = graph._e_hops[edge]
    step = _check_edge(query, edge, label.amount, label.hops, hops_bound - weight)
    if step.reason is None:
        step = _check_consent(query, label.relay, edge, step)
    if step.reason is not None:
        if edge not in exclusions:
            exclusions[edge] = _Refusal((*path, edge), step.reason, step.amount_out, step.available)
        return
    cost = label.cost + step.fee_cost + step.spread_cost + hop_charge * weight
    child = _Label(
        following,
        cost,
        label.hops + weight,
        step.amount_out,
        (*label.visited, following),
        edge if label.first < 0 else label.first,
        (*label.chain, edge) if converting else label.chain,
        (*label.left, graph.nodes[label.node].currency) if converting else label.left,
        _relays(query, edge),
    )
    # The child's key is its cost plus its own bound: the successor's static bound less this
    # edge's own part (hop charge and fee bound), which ``cost`` now contains in full.
    key = (cost + cost_bound - own_bound, label.hops + hops_bound, (*path, edge))
    heapq.heappush(heap, (*key, _LABEL, child))


_DEBITS_HOLDER = frozenset({EdgeKind.SETTLEMENT_IN, EdgeKind.NOSTRO_DEBIT})


def _check_consent(query: _Query, relay: bool, edge: int, step: _Step) -> _Step:
    """``step`` refused ``NO_CONSENT`` when the edge's bank has not agreed to carry the payment:
    a bank pays a payment on from its own account only when the label says it relays it, and an
    FX provider converts only for the agents it deals for."""
    graph = query.graph
    spec = graph.edges[edge]
    refused = False
    if spec.kind in _DEBITS_HOLDER:
        refused = not relay
    elif spec.kind is EdgeKind.FX:
        debtor = graph.nodes[query.source].participant
        creditor = graph.nodes[query.target].participant
        refused = not spec.consent.allows(debtor, creditor)
    if refused:
        return _Step(step.amount_out, 0, 0, ExclusionReason.NO_CONSENT, None)
    return step


def _relays(query: _Query, edge: int) -> bool:
    """Whether the bank the payment reaches over ``edge`` agrees to pay it on: it is the debtor
    agent, it services the account just debited (it executes its account holder's order), it
    has just converted the payment at its own quotes, or it forwards for the debtor agent."""
    graph = query.graph
    if graph.forwarding is None:
        return True
    spec = graph.edges[edge]
    bank = spec.target.participant
    debtor = graph.nodes[query.source].participant
    if bank == debtor or spec.kind in (EdgeKind.NOSTRO_DEBIT, EdgeKind.FX):
        return True
    return debtor in graph.forwarding.get(bank, ())


def _check_edge(query: _Query, edge: int, amount_in: int, hops: int, hops_after: int) -> _Step:
    """Apply the exclusion rules in ``ExclusionReason`` order, then traverse the edge."""
    graph = query.graph
    reason = graph._e_block[edge]
    if reason is None and query.context.fx[edge] is False:
        reason = ExclusionReason.NO_RATE
    if reason is None and hops + graph._e_hops[edge] + hops_after > query.hop_limit:
        reason = ExclusionReason.EXCEEDS_HOP_LIMIT
    if reason is not None:
        return _Step(amount_in, 0, 0, reason, None)
    return _traverse(graph, query.context, edge, amount_in, query.amount)


def _route(query: _Query, path: tuple[int, ...], outputs: list[int] | None = None) -> Route:
    """``path`` priced for ``query.amount``. ``outputs`` (a fixed received amount): what each
    edge delivers, at most what it converts to; a converter keeps what its rounding gives
    beyond that, which counts in its spread."""
    graph, context, _, _, amount, _, hop_charge = query
    legs = []
    amount_in = amount
    for position, edge in enumerate(path):
        step = _traverse(graph, context, edge, amount_in, amount)
        assert step.reason is None, (path, edge, step)
        spec = graph.edges[edge]
        amount_out, spread = step.amount_out, step.spread_cost
        if outputs is not None and outputs[position] != amount_out:
            assert outputs[position] < amount_out, (path, edge, step, outputs)
            amount_out = outputs[position]
            factors = context.fx[edge]
            assert factors, (path, edge)  # Only a conversion can deliver more than needed.
            mid_num, mid_den = factors[2], factors[3]
            converted = amount_in - spec.fee_minor
            spread = amount - amount * amount_out * mid_den // (converted * mid_num)
        uses_credit = spec.balance_minor is not None and amount_out > spec.balance_minor
        legs.append(
            Leg(
                source=spec.source,
                target=spec.target,
                kind=spec.kind,
                amount_minor=amount_in,
                converted_minor=amount_out,
                fee_minor=spec.fee_minor,
                fee_cost_minor=step.fee_cost,
                spread_cost_minor=spread,
                rate_provider=spec.rate_provider,
                uses_credit=uses_credit,
                mid_factor=_mid_factor(context.fx[edge]),
            )
        )
        amount_in = amount_out
    hops = sum(graph._e_hops[edge] for edge in path)
    fees = sum(leg.fee_cost_minor for leg in legs)
    spread = sum(leg.spread_cost_minor for leg in legs)
    return Route(
        legs=tuple(legs),
        cost_minor=fees + spread + hop_charge * hops,
        fees_minor=fees,
        spread_minor=spread,
        hop_charges_minor=hop_charge * hops,
        hops=hops,
        amount_delivered_minor=amount_in,
    )


def _mid_factor(factors: object) -> Fraction | None:
    if not isinstance(factors, tuple):
        return None
    return Fraction(factors[2], factors[3])


def _exclusion(
    query: _Query,
    path: tuple[int, ...],
    reason: ExclusionReason,
    needed: int,
    available: int | None,
) -> Exclusion:
    graph = query.graph
    nodes = (graph.nodes[query.source], *(graph.edges[edge].target for edge in path))
    last = graph.edges[path[-1]]
    # A capacity is in the currency the edge delivers; every other refusal reports the amount
    # that would have entered the edge, in its input currency.
    converted = available is not None and last.kind in _CONVERTS
    amount_currency = last.target.currency if converted else last.source.currency
    return Exclusion(nodes, last.kind, reason, needed, available, amount_currency)


# --- Brute force (reference model for tests) ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Enumeration:
    """Every simple path from debtor to creditor within the hop limit, feasible or not."""

    status: RouteStatus
    routes: tuple[Route, ...]
    excluded: tuple[Exclusion, ...]

    def best_per_signature(self, k: int) -> tuple[Route, ...]:
        """The cheapest route of each signature, best first, at most ``k``: ``find_routes``."""
        chosen: dict[tuple[object, ...], Route] = {}
        for route in self.routes:
            chosen.setdefault(route.signature, route)
        return tuple(chosen.values())[:k]


def enumerate_routes(
    graph: RoutingGraph,
    debtor_agent: str,
    creditor_agent: str,
    amount_minor: int,
    from_currency: str,
    to_currency: str,
    rates: RateTable,
    *,
    hop_limit: int = HOP_LIMIT_DEFAULT,
    hop_charge_minor: int = 0,
) -> Enumeration:
    """Enumerate all simple paths by depth-first search: exponential, for small graphs and tests.

    Routes come sorted by (cost, hops, path). Each refused path prefix appears once in
    ``excluded`` with the reason of its first refused edge.
    """
    query = _prepare(
        graph,
        debtor_agent,
        creditor_agent,
        amount_minor,
        from_currency,
        to_currency,
        rates,
        hop_limit,
        hop_charge_minor,
    )
    if isinstance(query, RouteStatus):
        return Enumeration(query, (), ())
    complete: list[tuple[int, int, tuple[int, ...]]] = []
    excluded: list[Exclusion] = []
    _enumerate(
        query, query.source, (), (query.source,), (), query.amount, 0, 0, True, complete, excluded
    )
    complete.sort()
    routes = tuple(_route(query, path) for _, _, path in complete)
    status = RouteStatus.OK if routes else RouteStatus.NO_FEASIBLE_ROUTE
    return Enumeration(status, routes, tuple(excluded))


def _enumerate(
    query: _Query,
    node: int,
    path: tuple[int, ...],
    visited: tuple[int, ...],
    left: tuple[str, ...],
    amount_in: int,
    cost: int,
    hops: int,
    relay: bool,
    complete: list[tuple[int, int, tuple[int, ...]]],
    excluded: list[Exclusion],
) -> None:
    graph, context = query.graph, query.context
    if node == query.target:
        complete.append((cost, hops, path))
        return
    for edge in graph._out[node]:
        following = graph._e_to[edge]
        if following in visited:
            continue
        converting = context.fx[edge] is not None
        if converting and graph.nodes[following].currency in left:
            continue
        step = _check_edge(query, edge, amount_in, hops, 0)
        if step.reason is None:
            step = _check_consent(query, relay, edge, step)
        if step.reason is not None:
            excluded.append(
                _exclusion(query, (*path, edge), step.reason, step.amount_out, step.available)
            )
            continue
        weight = graph._e_hops[edge]
        _enumerate(
            query,
            following,
            (*path, edge),
            (*visited, following),
            (*left, graph.nodes[node].currency) if converting else left,
            step.amount_out,
            cost + step.fee_cost + step.spread_cost + query.hop_charge * weight,
            hops + weight,
            _relays(query, edge),
            complete,
            excluded,
        )
