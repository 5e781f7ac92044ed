"""``GET /health``: the only endpoint that needs no credentials; it says nothing about money."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from sco_settle.server.routes.common import context_of, json_response
from sco_settle.server.schemas import Health

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    operation_id="getHealth",
    response_model=Health,
    responses={503: {"model": Health, "description": "The ledger service stopped"}},
)
async def health(request: Request) -> Response:
    ctx = context_of(request)
    service = ctx.service
    failed = service.failure is not None
    body = {
        "status": "failed" if failed else "ok",
        "mode": ctx.config.mode.value,
        "accounts": len(service.published.accounts),
        "last_timestamp": service.published.last_timestamp,
        "queue_depth": service.queue_depth,
    }
    return json_response(body, 503 if failed else 200)
