"""``POST /v1/route-quotes``: how a payment would travel now, with alternatives and the reasons
other paths were excluded. Nothing moves, so no ``Idempotency-Key`` is needed.

Privacy: a quote is computed on everyone's live balances, but shows a caller only the liquidity
it could read anyway (``sees_liquidity``). The liquidity of an edge is that of its *owner*: the
participant whose money or facility the edge draws on, which is the edge's source (the member
debited at its settlement agent, the holder of a nostro, the FX provider delivering from its
inventory, the central bank drawing a swap line; the providing central bank is also a party to
its line). The network operator and auditors see every edge's liquidity, a currency operator
that of edges delivering its currencies, a participant that of its own edges. For any other
edge:

- a leg of a route has ``uses_credit: null`` (whether it would dip into credit tells the owner's
  balance);
- an exclusion for a liquidity reason (``insufficient_balance``, ``exceeds_credit_limit``,
  ``exceeds_swap_line_headroom``) is not listed: it would name the intermediary that lacks
  liquidity, and with ``available_minor`` its exact balance. Such exclusions are only counted,
  in ``exclusions_withheld``. Other exclusions (suspended participant, cut corridor, no rate, hop
  limit, amount rounding to zero) depend on no balance and are listed, with
  ``available_minor: null`` when the capacity is not the caller's.

What remains visible is inherent to quoting: whether a route exists for an amount. Quoting ever
larger amounts bounds the capacity of a whole path (the least of its edges, not which edge it
is), as paying would.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from sco_settle.payments.routing import (
    EdgeKind,
    Exclusion,
    ExclusionReason,
    Node,
    Route,
    RouteResult,
)
from sco_settle.server.auth import Principal
from sco_settle.server.keys import Role
from sco_settle.server.routes.common import Caller, Context, json_response, problems, wait
from sco_settle.server.routes.payments import debtor_agent_for
from sco_settle.server.schemas import Quote, QuoteIn
from sco_settle.server.service import QuoteRequest

router = APIRouter(prefix="/v1/route-quotes", tags=["routes"])


LIQUIDITY_REASONS = frozenset(
    {
        ExclusionReason.INSUFFICIENT_BALANCE,
        ExclusionReason.EXCEEDS_CREDIT_LIMIT,
        ExclusionReason.EXCEEDS_SWAP_LINE_HEADROOM,
    }
)
_SEES_ALL = frozenset({Role.NETWORK_OPERATOR, Role.AUDITOR})


def sees_liquidity(
    caller: Principal | None, source: Node, target: Node, kind: EdgeKind, currency: str
) -> bool:
    """May ``caller`` learn the liquidity of this edge (see the module docs)? ``currency``: the
    currency of its capacity. No caller: an internal use, everything."""
    if caller is None or caller.role in _SEES_ALL:
        return True
    if caller.participant == source.participant:
        return True
    if kind is EdgeKind.SWAP_LINE and caller.participant == target.participant:
        return True
    return caller.role is Role.CURRENCY_OPERATOR and currency in caller.currencies


def _exclusion_visible(caller: Principal | None, exclusion: Exclusion) -> bool:
    source, target = exclusion.path[-2], exclusion.path[-1]
    return sees_liquidity(caller, source, target, exclusion.kind, exclusion.currency)


def route_json(route: Route, caller: Principal | None = None) -> dict[str, Any]:
    return {
        "nodes": [str(node) for node in route.nodes],
        "legs": [
            {
                "source": str(leg.source),
                "target": str(leg.target),
                "kind": leg.kind.value,
                "amount_minor": leg.amount_minor,
                "converted_minor": leg.converted_minor,
                "fee_minor": leg.fee_minor,
                "rate_provider": leg.rate_provider or None,
                "uses_credit": leg.uses_credit
                if sees_liquidity(caller, leg.source, leg.target, leg.kind, leg.source.currency)
                else None,
            }
            for leg in route.legs
        ],
        "cost_minor": route.cost_minor,
        "fees_minor": route.fees_minor,
        "spread_minor": route.spread_minor,
        "hop_charges_minor": route.hop_charges_minor,
        "hops": route.hops,
        "amount_delivered_minor": route.amount_delivered_minor,
    }


def quote_json(result: RouteResult, caller: Principal | None = None) -> dict[str, Any]:
    """The quote as ``caller`` may see it (None: everything)."""
    shown, withheld = [], 0
    for exclusion in result.exclusions:
        visible = _exclusion_visible(caller, exclusion)
        if not visible and exclusion.reason in LIQUIDITY_REASONS:
            withheld += 1
            continue
        shown.append(
            {
                "path": [str(node) for node in exclusion.path],
                "kind": exclusion.kind.value,
                "reason": exclusion.reason.value,
                "amount_minor": exclusion.amount_minor,
                "available_minor": exclusion.available_minor if visible else None,
                "currency": exclusion.currency,
            }
        )
    return {
        "status": result.status.value,
        "cost_currency": result.cost_currency,
        "routes": [route_json(route, caller) for route in result.routes],
        "exclusions": shown,
        "exclusions_dropped": result.exclusions_dropped,
        "exclusions_withheld": withheld,
    }


@router.post("", operation_id="createRouteQuote", response_model=Quote, responses=problems(403))
async def quote_route(body: QuoteIn, caller: Caller, ctx: Context) -> Response:
    """The cheapest feasible routes for these balances, best first (``routes[0]`` is the one a
    payment would take now), and the edges excluded on the way.

    Only the caller's own liquidity is shown (network operator and auditors: everyone's; a
    currency operator: in its currencies). On another participant's edge a leg's ``uses_credit``
    is null, and an exclusion for lack of liquidity (``insufficient_balance``,
    ``exceeds_credit_limit``, ``exceeds_swap_line_headroom``) is not listed but counted in
    ``exclusions_withheld``, so a quote never says which intermediary lacks liquidity nor how
    much it has. An edge belongs to the participant it draws on: the edge's source (for a swap
    line, also the providing central bank)."""
    debtor_agent = debtor_agent_for(caller, body.debtor_agent)
    request = QuoteRequest(
        debtor_agent=debtor_agent,
        creditor_agent=body.creditor_agent,
        amount_minor=body.amount_minor,
        currency=body.currency,
        creditor_currency=body.creditor_currency or body.currency,
        routes_max=body.routes_max,
    )
    return json_response(quote_json(await wait(ctx.service.quote(request)), caller))
