"""``POST /v1/route-quotes``: how a payment would travel now, with alternatives and the reasons
other paths were excluded. Nothing moves, so no ``Idempotency-Key`` is needed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from sco_settle.payments.routing import Route, RouteResult
from sco_settle.server.routes.common import Caller, Context, json_response, problems, wait
from sco_settle.server.routes.payments import debtor_agent_for
from sco_settle.server.schemas import Quote, QuoteIn
from sco_settle.server.service import QuoteRequest

router = APIRouter(prefix="/v1/route-quotes", tags=["routes"])


def route_json(route: Route) -> dict[str, Any]:
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
                "uses_credit": leg.uses_credit,
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


def quote_json(result: RouteResult) -> dict[str, Any]:
    return {
        "status": result.status.value,
        "cost_currency": result.cost_currency,
        "routes": [route_json(route) for route in result.routes],
        "exclusions": [
            {
                "path": [str(node) for node in exclusion.path],
                "kind": exclusion.kind.value,
                "reason": exclusion.reason.value,
                "amount_minor": exclusion.amount_minor,
                "available_minor": exclusion.available_minor,
                "currency": exclusion.currency,
            }
            for exclusion in result.exclusions
        ],
        "exclusions_dropped": result.exclusions_dropped,
    }


@router.post("", response_model=Quote, responses=problems(403))
async def quote_route(body: QuoteIn, caller: Caller, ctx: Context) -> Response:
    """The cheapest feasible routes for these balances, best first (``routes[0]`` is the one a
    payment would take now), and the edges excluded on the way."""
    debtor_agent = debtor_agent_for(caller, body.debtor_agent)
    request = QuoteRequest(
        debtor_agent=debtor_agent,
        creditor_agent=body.creditor_agent,
        amount_minor=body.amount_minor,
        currency=body.currency,
        creditor_currency=body.creditor_currency or body.currency,
        routes_max=body.routes_max,
    )
    return json_response(quote_json(await wait(ctx.service.quote(request))))
