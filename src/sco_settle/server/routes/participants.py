"""``/v1/participants``: the network's directory (public to every authenticated caller)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from sco_settle.network import Network, ParticipantEntry
from sco_settle.server.errors import ApiError
from sco_settle.server.routes.common import (
    After,
    Caller,
    Context,
    Limit,
    decode_cursor,
    json_response,
    page,
    problems,
)
from sco_settle.server.schemas import Participant, ParticipantPage

router = APIRouter(prefix="/v1/participants", tags=["participants"])


def participant_json(network: Network, entry: ParticipantEntry) -> dict[str, Any]:
    settles = sorted(code for code, bic in network.settlement_agents.items() if bic == entry.bic)
    return {
        "bic": entry.bic,
        "name": entry.name,
        "kind": entry.kind.value,
        "country": entry.country,
        "home_currency": network.home_currency(entry.bic),
        "currencies": list(network.allowed_currencies(entry.bic)),
        "settles": settles,
    }


@router.get(
    "",
    operation_id="listParticipants",
    response_model=ParticipantPage,
    responses=problems(400),
)
async def list_participants(
    caller: Caller, ctx: Context, limit: Limit = 100, after: After = None
) -> Response:
    """Every participant, ordered by BIC."""
    start = decode_cursor("participants", after) or ""
    bics = sorted(bic for bic in ctx.network.participants_by_bic if bic > start)
    chosen = bics[:limit]
    items = [participant_json(ctx.network, ctx.network.participant(bic)) for bic in chosen]
    more = len(bics) > limit
    return json_response(page(items, chosen[-1] if more else None, "participants"))


@router.get(
    "/{bic}",
    operation_id="getParticipant",
    response_model=Participant,
    responses=problems(404),
)
async def get_participant(bic: str, caller: Caller, ctx: Context) -> Response:
    entry = ctx.network.participants_by_bic.get(bic)
    if entry is None:
        raise ApiError("participant_not_found", f"no participant {bic!r}")
    return json_response(participant_json(ctx.network, entry))
