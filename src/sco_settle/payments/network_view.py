"""The routing graph of a network as the ledger stands now.

Capacities come from live balances: a settlement or vostro account can pay out its posted credits
minus its debits (posted and reserved) plus its credit limit; a swap line can deliver its agreed
size minus what is drawn. A bank can convert its home currency into a currency in which it holds a
vostro account, up to that account's balance (an FX point priced by the MARKET quotes).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ruamel.yaml import YAML

from sco_settle.domain.account import AccountKind
from sco_settle.domain.money import AMOUNT_MAX
from sco_settle.ledger import Ledger
from sco_settle.ledger.state_machine import AccountState
from sco_settle.network import Network
from sco_settle.payments.fx import RateTable
from sco_settle.payments.routing import (
    CorrespondentAccount,
    FxPoint,
    RoutingGraph,
    SettlementAccount,
    SwapLine,
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
            resources.files("sco_settle.networks")
            .joinpath(f"{name_or_path}_rates.yaml")
            .read_text()
        )
    else:
        text = Path(name_or_path).read_text()
    document = YAML(typ="safe").load(text)
    as_of = str(document["as_of"])
    rows = [{**row, "as_of": row.get("as_of", as_of)} for row in document["rates"]]
    return RateTable.from_dicts(rows)


class _Unbounded:
    """An account seen with ample liquidity (for routing a deferred-net-settlement payment)."""

    def __init__(self, state: AccountState) -> None:
        self.credit_limit = state.credit_limit
        self.credits_posted = AMOUNT_MAX // 4
        self.debits_posted = 0
        self.debits_pending = 0


def available(state: AccountState | _Unbounded) -> int:
    """What the account can still pay out: credits - debits (posted and reserved) + limit."""
    return state.credits_posted - state.debits_posted - state.debits_pending


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
        self.accounts_by_key = {account.ref: account for account in network.ledger_accounts()}
        self.central_banks = frozenset(network.settlement_agents.values())
        # Compiled graphs by (scenario, ignore_balances): (generation, ledger timestamp, uses).
        self._graphs: dict[tuple[Scenario, bool], tuple[RoutingGraph, int, int, int]] = {}
        self.generation = 0

    def account_id(self, key: str) -> int | None:
        account = self.accounts_by_key.get(key)
        return account.id if account else None

    def graph(
        self, ledger: Ledger, scenario: Scenario | None = None, *, ignore_balances: bool = False
    ) -> RoutingGraph:
        """The graph for the ledger's current balances (rebuilt only when the ledger moved).

        ``ignore_balances`` routes on structure and swap-line headroom only: deferred net
        settlement checks liquidity on net positions at the end of the cycle, not per payment.
        """
        scenario = scenario or Scenario()
        key = (scenario, ignore_balances)
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
        graph = self._build(ledger, scenario, ignore_balances)
        self._graphs[key] = (graph, self.generation, timestamp, 1)
        return graph

    def invalidate(self) -> None:
        """Forget compiled graphs: the next route sees the ledger's balances as they are now."""
        self.generation += 1

    def is_current(self, ledger: Ledger, scenario: Scenario | None = None) -> bool:
        cached = self._graphs.get((scenario or Scenario(), False))
        return cached is not None and cached[1:3] == (self.generation, ledger.state.last_timestamp)

    def _build(self, ledger: Ledger, scenario: Scenario, ignore_balances: bool) -> RoutingGraph:
        settlement: list[SettlementAccount] = []
        correspondents: list[CorrespondentAccount] = []
        fx_points: list[FxPoint] = []
        swap_lines: list[SwapLine] = []
        agents = self.network.settlement_agents
        for key, account in self.accounts_by_key.items():
            found = ledger.lookup_account(account.id)
            if found is None:
                continue
            state: AccountState | _Unbounded = found
            if ignore_balances and not key.startswith("swap-line:"):
                state = _Unbounded(found)
            kind, *parts = key.split(":")
            if kind == AccountKind.SETTLEMENT.value:
                bic, code = parts
                agent = agents.get(code)
                if agent is None or agent == bic:
                    continue
                balance = available(state)
                settlement.append(
                    SettlementAccount(
                        bic, agent, code, max(balance, -state.credit_limit), state.credit_limit
                    )
                )
            elif kind == AccountKind.VOSTRO.value:
                servicer, holder, code = parts
                balance = max(available(state), -state.credit_limit)
                correspondents.append(
                    CorrespondentAccount(holder, servicer, code, balance, state.credit_limit)
                )
                home = self.network.home_currency(holder)
                if home != code:
                    fx_points.append(
                        FxPoint(
                            holder,
                            home,
                            code,
                            max(balance + state.credit_limit, 0),
                            rate_provider=MARKET,
                        )
                    )
                    # Foreign currency arriving on the vostro is paid out to the holder's customer
                    # in home currency, in the holder's own books: no network liquidity needed.
                    fx_points.append(
                        FxPoint(holder, code, home, AMOUNT_MAX // 4, rate_provider=MARKET)
                    )
            elif kind == AccountKind.SWAP_LINE.value:
                drawer, provider, code = parts
                drawn = max(state.debits_posted + state.debits_pending - state.credits_posted, 0)
                drawer_currency = self.network.home_currency(drawer)
                if state.credit_limit <= 0:
                    continue  # No agreed size in this currency: nothing can be drawn.
                countries = {drawer[4:6], provider[4:6]}
                if any(set(pair) == countries for pair in scenario.exhausted_swap_lines):
                    drawn = state.credit_limit
                swap_lines.append(
                    SwapLine(
                        drawer,
                        drawer_currency,
                        provider,
                        code,
                        state.credit_limit,
                        min(drawn, state.credit_limit),
                    )
                )
        return RoutingGraph.build(
            settlement_accounts=settlement,
            correspondents=correspondents,
            fx_points=fx_points,
            swap_lines=swap_lines,
            suspended=scenario.suspended,
            corridor_cuts=scenario.corridor_cuts,
        )


def swap_line_utilisation(
    view: NetworkView, ledger: Ledger
) -> Iterable[tuple[str, str, str, int, int]]:
    """(drawer, provider, currency, drawn, limit) for every swap-line account."""
    for key, account in view.accounts_by_key.items():
        if not key.startswith("swap-line:"):
            continue
        state = ledger.lookup_account(account.id)
        if state is None:
            continue
        _, drawer, provider, code = key.split(":")
        drawn = max(state.debits_posted + state.debits_pending - state.credits_posted, 0)
        yield drawer, provider, code, drawn, state.credit_limit
