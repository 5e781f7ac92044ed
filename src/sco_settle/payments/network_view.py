"""The routing graph of a network as the ledger stands now.

Capacities come from live balances: a settlement or vostro account can pay out its posted credits
minus its debits (posted and reserved) plus its credit limit.

Who converts, and for whom (consent):
- A bank converts its own payments in its own books: its home currency into a currency in which
  it holds a nostro (up to that nostro's balance) and back, for payments it sends or receives
  only, priced at the MARKET reference quotes (``Consent(agents={bank})``).
- A declared FX provider (``fx_providers`` in the network file) converts, at its own quotes and
  up to its dealing limit, the payments of the banks of its client countries (or anyone's).
- A central bank's FX facility sells its own banks paying the swap-line partner's state (any state
  if the deployment's swap-line policy says so) the partner's currency it holds at the partner
  central bank (drawn tranches, and counter-values of the partner's drawings), at its own quotes,
  and retires the home currency it receives. It never buys: a facility is funded by the line.
- Swap lines are not routed over: they are drawn in tranches (``payments/swap_lines.py``).
- A bank pays a payment on from its own accounts only with its consent (``RoutingGraph.build``'s
  ``forwarding``: the network file's ``correspondent_for``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import NamedTuple

from ruamel.yaml import YAML

from sco_settle.domain.account import Account
from sco_settle.domain.account_key import AccountKey, AccountKeyKind
from sco_settle.domain.balances import BalanceCounters, Balances
from sco_settle.domain.money import AMOUNT_MAX
from sco_settle.ledger import Ledger
from sco_settle.network import Network
from sco_settle.payments.fx import RateTable
from sco_settle.payments.routing import (
    ANYONE,
    Consent,
    CorrespondentAccount,
    FxPoint,
    RoutingGraph,
    SettlementAccount,
)

MARKET = "MARKET"
GRAPH_REUSE_MAX = 32  # Routes served by one compiled graph while the ledger moves on.


def load_rates(name_or_path: str | Path = "sco") -> RateTable:
    """``"sco"``: the shipped sco_rates.yaml; otherwise a YAML file of the same shape."""
    if (
        isinstance(name_or_path, str)
        and "/" not in name_or_path
        and not name_or_path.endswith(".yaml")
    ):
        text = (
            resources.files("sco_settle.reference_data")
            .joinpath(f"{name_or_path}_rates.yaml")
            .read_text()
        )
    else:
        text = Path(name_or_path).read_text()
    document = YAML(typ="safe").load(text)
    defaults = {"as_of": str(document["as_of"])}
    if document.get("valid_until") is not None:
        defaults["valid_until"] = str(document["valid_until"])
    rows = [{**defaults, **row} for row in document["rates"]]
    return RateTable.from_dicts(rows)


def _unbounded(balances: Balances) -> Balances:
    """An account seen with ample liquidity (for routing a deferred-net-settlement payment)."""
    return Balances(credits_posted=AMOUNT_MAX // 4, credit_limit=balances.credit_limit)


@dataclass(frozen=True)
class Scenario:
    """Stress settings: suspended participants (bank failure), cut country corridors (ISO 3166
    pairs, either order) and exhausted swap lines (the central banks' country pairs)."""

    suspended: frozenset[str] = frozenset()
    corridor_cuts: frozenset[tuple[str, str]] = frozenset()
    exhausted_swap_lines: frozenset[tuple[str, str]] = frozenset()


class _AccountInputs(NamedTuple):
    """What one settlement or vostro account gives the routing graph (``NetworkView._build``),
    and the balance counters it was derived from."""

    counters: tuple[int, ...]
    settlement: SettlementAccount | None
    reserve_minor: int  # a settlement account's capacity (for the facility points)
    correspondent: CorrespondentAccount | None
    points: tuple[FxPoint, ...]


class NetworkView:
    def __init__(self, network: Network, rates: RateTable, *, incremental: bool = True) -> None:
        """``incremental``: a graph is rebuilt from what changed since the last one (each
        account's routing inputs are derived again only when its balances moved; the new graph
        shares the compiled structure and memo tables of the one it replaces,
        ``RoutingGraph.build(reuse=...)``), which gives the same graph faster. False rebuilds
        every graph from scratch (the reference that the simulator's benchmark and equivalence
        test compare with). The network is read as immutable."""
        self.network = network
        self.incremental = incremental
        self._inputs: dict[tuple[int, bool], _AccountInputs] = {}
        self._facility_templates: dict[tuple[Scenario, bool], list[_FacilitySide]] = {}
        self._routed: list[tuple[AccountKey, Account, str]] | None = None
        self._swap_lines: list[tuple[AccountKey, Account]] | None = None
        self._providers: list[FxPoint] | None = None
        self._forwarding: dict[str, frozenset[str]] | None = None
        self._rates_memo: tuple[RateTable, int, RateTable] | None = None
        self.rates = rates
        self.accounts: Mapping[AccountKey, Account] = network.accounts_by_key
        # The same accounts by their keys' text (``Account.ref``), for callers that still name
        # accounts by text; new code uses ``accounts``.
        self.accounts_by_key = {str(key): account for key, account in self.accounts.items()}
        self.central_banks = frozenset(network.settlement_agents.values())
        # Compiled graphs by (scenario, ignore_balances): (generation, ledger timestamp, uses).
        self._graphs: dict[tuple[Scenario, bool, bool], tuple[RoutingGraph, int, int, int]] = {}
        self.generation = 0

    def rates_at(self, clock_ns: int) -> RateTable:
        """The quotes firm at ``clock_ns`` (the ledger clock): stale ones are never used."""
        if clock_ns <= 0:
            return self.rates
        memo = self._rates_memo
        if memo is not None and memo[0] is self.rates and memo[1] == clock_ns:
            return memo[2]  # The same table at the same instant (a batch prices many payments).
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        firm = self.rates.valid_at(epoch + dt.timedelta(microseconds=clock_ns // 1000))
        if self.incremental:
            self._rates_memo = (self.rates, clock_ns, firm)
        return firm

    def account_id(self, key: AccountKey | str) -> int | None:
        """The ledger id of the network account ``key`` (a key or its text), None if none."""
        if isinstance(key, AccountKey):
            account = self.accounts.get(key)
        else:
            account = self.accounts_by_key.get(key)
        return account.id if account else None

    def graph(
        self,
        ledger: Ledger,
        scenario: Scenario | None = None,
        *,
        ignore_balances: bool = False,
        ever: bool = False,
    ) -> RoutingGraph:
        """The graph for the ledger's current balances (rebuilt only when the ledger moved).

        ``ignore_balances`` routes on structure and swap-line headroom only: deferred net
        settlement checks liquidity on net positions at the end of the cycle, not per payment.
        ``ever`` routes on structure and each swap line's whole agreed size: a payment with no
        route there could never settle, whatever liquidity arrives.
        """
        scenario = scenario or Scenario()
        ignore_balances = ignore_balances or ever
        key = (scenario, ignore_balances, ever)
        timestamp = ledger.state.last_timestamp
        cached = self._graphs.get(key)
        if cached is not None:
            graph, generation, built_at, uses = cached
            # Capacities may lag the ledger by a few payments: the ledger, not the graph, is the
            # arbiter (a refused chain invalidates the graph and the payment is routed again).
            fresh_enough = built_at == timestamp or ignore_balances or uses < GRAPH_REUSE_MAX
            if generation == self.generation and fresh_enough:
                self._graphs[key] = (graph, generation, built_at, uses + 1)
                return graph
        previous = cached[0] if cached is not None and self.incremental else None
        graph = self._build(ledger, scenario, ignore_balances, ever, previous)
        self._graphs[key] = (graph, self.generation, timestamp, 1)
        return graph

    def invalidate(self) -> None:
        """Forget compiled graphs: the next route sees the ledger's balances as they are now."""
        self.generation += 1

    def is_current(self, ledger: Ledger, scenario: Scenario | None = None) -> bool:
        cached = self._graphs.get((scenario or Scenario(), False, False))
        return cached is not None and cached[1:3] == (self.generation, ledger.state.last_timestamp)

    def _build(
        self,
        ledger: Ledger,
        scenario: Scenario,
        ignore_balances: bool,
        ever: bool = False,
        previous: RoutingGraph | None = None,
    ) -> RoutingGraph:
        settlement: list[SettlementAccount] = []
        correspondents: list[CorrespondentAccount] = []
        fx_points: list[FxPoint] = list(self._provider_points())
        reserves: dict[AccountKey, int] = {}
        for key, account, agent in self._routed_accounts():
            found = ledger.lookup_account(account.id)
            if found is None:
                continue
            made = self._account_inputs(key, account.id, agent, found, ignore_balances)
            if made.settlement is not None:
                settlement.append(made.settlement)
                reserves[key] = made.reserve_minor
            elif made.correspondent is not None:
                correspondents.append(made.correspondent)
                fx_points += made.points
        fx_points += self._facility_points(reserves, scenario, ever)
        return RoutingGraph.build(
            settlement_accounts=settlement,
            correspondents=correspondents,
            fx_points=_merged(fx_points),
            suspended=scenario.suspended,
            corridor_cuts=scenario.corridor_cuts,
            forwarding=self.forwarding,
            reuse=previous,
        )

    def swap_line_accounts(self) -> list[tuple[AccountKey, Account]]:
        """The swap-line accounts, in ``accounts`` order."""
        if self._swap_lines is None or not self.incremental:
            self._swap_lines = [
                (key, account)
                for key, account in self.accounts.items()
                if key.kind is AccountKeyKind.SWAP_LINE
            ]
        return self._swap_lines

    def _routed_accounts(self) -> list[tuple[AccountKey, Account, str]]:
        """The accounts the graph routes over, in ``accounts`` order: members' settlement
        accounts (with their settlement agent) and vostros (with "")."""
        if self._routed is not None and self.incremental:
            return self._routed
        agents = self.network.settlement_agents
        routed = []
        for key, account in self.accounts.items():
            if key.kind is AccountKeyKind.SETTLEMENT:
                agent = agents.get(key.currency)
                if agent is not None and agent != key.owner:
                    routed.append((key, account, agent))
            elif key.kind is AccountKeyKind.VOSTRO:
                routed.append((key, account, ""))
        self._routed = routed
        return routed

    def _account_inputs(
        self,
        key: AccountKey,
        account_id: int,
        agent: str,
        state: BalanceCounters,
        ignore_balances: bool,
    ) -> _AccountInputs:
        """``key``'s routing inputs from its balances (derived again only when they moved)."""
        counters = (
            state.debits_pending,
            state.debits_posted,
            state.credits_pending,
            state.credits_posted,
            state.credit_limit,
            state.flags,
        )
        cached = self._inputs.get((account_id, ignore_balances)) if self.incremental else None
        if cached is not None and cached.counters == counters:
            return cached
        balances = Balances.of(state)
        if ignore_balances:  # Never a swap-line account here: those keep their balances.
            balances = _unbounded(balances)
        limit = balances.credit_limit
        if key.kind is AccountKeyKind.SETTLEMENT:
            balance = max(balances.available_minor, -limit)
            account = SettlementAccount(key.owner, agent, key.currency, balance, limit)
            made = _AccountInputs(counters, account, max(balance + limit, 0), None, ())
        else:
            correspondent, points = self._vostro_edges(key, balances)
            made = _AccountInputs(counters, None, 0, correspondent, tuple(points))
        if cached is not None and made[1:] == cached[1:]:
            made = cached._replace(counters=counters)  # The same inputs: the same objects.
        if self.incremental:
            self._inputs[(account_id, ignore_balances)] = made
        return made

    @property
    def forwarding(self) -> dict[str, frozenset[str]]:
        """Per bank, the banks whose payments it forwards as their correspondent."""
        if self._forwarding is not None and self.incremental:
            return self._forwarding
        self._forwarding = {
            entry.bic: frozenset(entry.correspondent_for)
            for entry in self.network.participants
            if entry.correspondent_for
        }
        return self._forwarding

    def _provider_points(self) -> list[FxPoint]:
        """Each declared FX provider converts both ways of each pair at its own quotes."""
        if self._providers is not None and self.incremental:
            return self._providers
        points = []
        for provider in self.network.fx_providers:
            consent = (
                ANYONE
                if provider.clients is None
                else Consent(frozenset({provider.bic}), frozenset(provider.clients))
            )
            for base, quote in provider.currency_pairs:
                for source, target in ((base, quote), (quote, base)):
                    limit = provider.dealing_limit_minor(target)
                    available = AMOUNT_MAX // 4 if limit is None else limit
                    charge = provider.charge_minor(source)
                    points.append(
                        FxPoint(
                            provider.bic, source, target, available, charge, provider.bic, consent
                        )
                    )
        self._providers = points
        return points

    def _facility_points(
        self, reserves: Mapping[AccountKey, int], scenario: Scenario, ever: bool
    ) -> list[FxPoint]:
        """Each side of a swap line: its central bank's FX facility sells its own banks paying
        the partner's state the partner's currency it holds at the partner central bank (drawn
        tranches, and the counter-values of the partner's drawings), and retires the home
        currency it receives. ``ever``: what it could hold at most, the line's agreed size in
        that currency (0 where the size is unknown)."""
        points = []
        for side in self._facility_sides(scenario, ever):
            point = side.point
            if side.reserve is not None:
                held = reserves.get(side.reserve, 0)
                last = side.last
                if last is None or last.available_minor != held:
                    last = side.last = replace(point, available_minor=held)
                point = last
            points.append(point)
        return points

    def _facility_sides(self, scenario: Scenario, ever: bool) -> list[_FacilitySide]:
        """The facilities' FX points with what they hold when that is fixed (an exhausted line:
        0; ``ever``: the line's size), else the settlement account whose reserve they hold."""
        cached = self._facility_templates.get((scenario, ever)) if self.incremental else None
        if cached is not None:
            return cached
        network, policy = self.network, self.network.swap_line_policy
        sides = []
        for line in network.swap_lines:
            countries = frozenset(bic[4:6] for bic in line.central_banks)
            exhausted = any(set(pair) == set(countries) for pair in scenario.exhausted_swap_lines)
            first, second = line.central_banks
            for bank, partner in ((first, second), (second, first)):
                home, foreign = network.home_currency(bank), network.home_currency(partner)
                clients = Consent(
                    payer_countries=frozenset({bank[4:6]}),
                    payee_countries=None
                    if policy.facility_third_country
                    else frozenset({partner[4:6]}),
                )
                reserve = None
                if exhausted:
                    held = 0
                elif ever:
                    held = line.size_minor(foreign) or 0
                else:
                    held, reserve = 0, AccountKey.settlement(bank, foreign)
                point = FxPoint(bank, home, foreign, held, 0, bank, clients)
                sides.append(_FacilitySide(point, reserve, None))
        if self.incremental:
            self._facility_templates[(scenario, ever)] = sides
        return sides

    def _vostro_edges(
        self, key: AccountKey, balances: Balances
    ) -> tuple[CorrespondentAccount, list[FxPoint]]:
        """The vostro ``key`` (``owner``'s money on ``counterparty``'s books) as a correspondent
        account, and the FX points it opens to its owner (none in the owner's home currency)."""
        servicer, holder, code = key.counterparty, key.owner, key.currency
        assert key.kind is AccountKeyKind.VOSTRO and servicer is not None, key
        limit = balances.credit_limit
        balance = max(balances.available_minor, -limit)
        correspondent = CorrespondentAccount(holder, servicer, code, balance, limit)
        home = self.network.home_currency(holder)
        if home == code:
            return correspondent, []
        own = Consent(agents=frozenset({holder}))  # its own payments only
        return correspondent, [
            FxPoint(holder, home, code, max(balance + limit, 0), 0, MARKET, own),
            # Foreign currency arriving on the vostro is paid out to the holder's customer in
            # home currency, in the holder's own books: no network liquidity needed.
            FxPoint(holder, code, home, AMOUNT_MAX // 4, 0, MARKET, own),
        ]


@dataclass(slots=True)
class _FacilitySide:
    """One side of a swap line as an FX point; ``reserve``: the settlement account whose
    capacity it holds (None: ``point.available_minor`` is fixed), and ``last``: its point as
    last built (kept while what it holds is unchanged, so the graph knows it)."""

    point: FxPoint
    reserve: AccountKey | None
    last: FxPoint | None


def _merged(points: list[FxPoint]) -> list[FxPoint]:
    """One FX point per (bank, from, to). A bank that publishes quotes for the pair (a declared
    provider or a central bank's facility) converts at them for its clients and
    itself; otherwise a bank with nostros in one currency at several correspondents converts its
    own payments into that currency once, with their capacities together."""
    merged: dict[tuple[str, str, str], FxPoint] = {}
    for point in points:
        key = (point.provider, point.from_currency, point.to_currency)
        kept = merged.get(key)
        if kept is None:
            merged[key] = point
        elif kept.rate_provider == kept.provider:
            continue  # its own quotes win over its own-books conversion
        elif point.rate_provider == point.provider:
            merged[key] = point
        else:
            total = min(kept.available_minor + point.available_minor, AMOUNT_MAX // 4)
            merged[key] = replace(kept, available_minor=total)
    return list(merged.values())


def swap_line_utilisation(
    view: NetworkView, ledger: Ledger
) -> Iterable[tuple[AccountKey, Balances]]:
    """Every swap-line account with its balances: ``drawn_minor`` of ``credit_limit`` (the agreed
    size) is drawn."""
    for key, account in view.swap_line_accounts():
        state = ledger.lookup_account(account.id)
        if state is not None:
            yield key, Balances.of(state)
