"""``GET /v1/end-of-day``: the business days the server closed (``server/end_of_day.py``), per
currency: tranches unwound, statements produced, closing balances by account kind. Operators and
auditors only (the closing balances are a currency's aggregates)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from sco_settle.server.end_of_day import closed_days
from sco_settle.server.errors import ApiError
from sco_settle.server.keys import Role
from sco_settle.server.routes.common import Caller, Context, json_response, problems

router = APIRouter(prefix="/v1/end-of-day", tags=["operating day"])


@router.get("", operation_id="listClosedBusinessDays", responses=problems(403))
async def list_closed_days(
    caller: Caller,
    ctx: Context,
    currency: Annotated[str | None, Query(pattern=r"^[A-Z]{3}$")] = None,
) -> Response:
    """Closed business days, newest first; empty when the operating day is off."""
    if caller.role is Role.PARTICIPANT:
        raise ApiError("forbidden", "end-of-day reports are for operators and auditors")
    if caller.role is Role.CURRENCY_OPERATOR and (
        currency is None or currency not in caller.currencies
    ):
        raise ApiError("currency_not_permitted", "ask for one of your currencies")
    desk = ctx.service.end_of_day
    if desk is None:
        return json_response({"items": []})
    return json_response({"items": await run_in_threadpool(closed_days, desk.state_db, currency)})
