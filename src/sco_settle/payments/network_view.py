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

from ruamel.yaml import YAML

from sco_settle.domain.account import Account
from sco_settle.domain.account_key import AccountKey, AccountKeyKind
from sco_settle.domain.balances import Balances
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


class NetworkView:
    def __init__(self, network: Network, rates: RateTable) -> None:
        self.network = network
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
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        return self.rates.valid_at(epoch + dt.timedelta(microseconds=clock_ns // 1000))

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
        graph = self._build(ledger, scenario, ignore_balances, ever)
        self._graphs[key] = (graph, self.generation, timestamp, 1)
        return graph

    def invalidate(self) -> None:
        """Forget compiled graphs: the next route sees the ledger's balances as they are now."""
        self.generation += 1

    def is_current(self, ledger: Ledger, scenario: Scenario | None = None) -> bool:
        cached = self._graphs.get((scenario or Scenario(), False, False))
        return cached is not None and cached[1:3] == (self.generation, ledger.state.last_timestamp)

    def _build(
        self, ledger: Ledger, scenario: Scenario, ignore_balances: bool, ever: bool = False
    ) -> RoutingGraph:
        settlement: list[SettlementAccount] = []
        correspondents: list[CorrespondentAccount] = []
        fx_points: list[FxPoint] = list(self._provider_points())
        reserves: dict[AccountKey, int] = {}
        agents = self.network.settlement_agents
        for key, account in self.accounts.items():
            found = ledger.lookup_account(account.id)
            if found is None:
                continue
            balances = Balances.of(found)
            if ignore_balances and key.kind is not AccountKeyKind.SWAP_LINE:
                balances = _unbounded(balances)
            limit = balances.credit_limit
            if key.kind is AccountKeyKind.SETTLEMENT:
                agent = agents.get(key.currency)
                if agent is None or agent == key.owner:
                    continue
                balance = max(balances.available_minor, -limit)
                settlement.append(SettlementAccount(key.owner, agent, key.currency, balance, limit))
                reserves[key] = max(balance + limit, 0)
            elif key.kind is AccountKeyKind.VOSTRO:
                correspondent, points = self._vostro_edges(key, balances)
                correspondents.append(correspondent)
                fx_points += points
        fx_points += self._facility_points(reserves, scenario, ever)
        return RoutingGraph.build(
            settlement_accounts=settlement,
            correspondents=correspondents,
            fx_points=_merged(fx_points),
            suspended=scenario.suspended,
            corridor_cuts=scenario.corridor_cuts,
            forwarding=self.forwarding,
        )

    @property
    def forwarding(self) -> dict[str, frozenset[str]]:
        """Per bank, the banks whose payments it forwards as their correspondent."""
        return {
            entry.bic: frozenset(entry.correspondent_for)
            for entry in self.network.participants
            if entry.correspondent_for
        }

    def _provider_points(self) -> list[FxPoint]:
        """Each declared FX provider converts both ways of each pair at its own quotes."""
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
        return points

    def _facility_points(
        self, reserves: Mapping[AccountKey, int], scenario: Scenario, ever: bool
    ) -> list[FxPoint]:
        """Each side of a swap line: its central bank's FX facility sells its own banks paying
        the partner's state the partner's currency it holds at the partner central bank (drawn
        tranches, and the counter-values of the partner's drawings), and retires the home
        currency it receives. ``ever``: what it could hold at most, the line's agreed size in
        that currency (0 where the size is unknown)."""
        network, policy = self.network, self.network.swap_line_policy
        points = []
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
                if exhausted:
                    held = 0
                elif ever:
                    held = line.size_minor(foreign) or 0
                else:
                    held = reserves.get(AccountKey.settlement(bank, foreign), 0)
                points.append(FxPoint(bank, home, foreign, held, 0, bank, clients))
        return points

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
    for key, account in view.accounts.items():
        if key.kind is not AccountKeyKind.SWAP_LINE:
            continue
        state = ledger.lookup_account(account.id)
        if state is not None:
            yield key, Balances.of(state)
