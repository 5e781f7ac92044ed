"""``GET /v1/reports/corridors``: volume and value per corridor and currency, from the records.

A corridor is (debtor agent's country, creditor agent's country) from the BICs. Counts are per
current status; values are the instructed amount (``currency``) and the amount delivered
(``creditor_currency``) of settled payments. Each caller sees totals over the payments it may
see: a participant over its own, a currency operator over those in its currencies.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from sco_settle.server.routes.common import (
    After,
    Caller,
    Context,
    Limit,
    QueryInt,
    decode_int_cursor,
    json_response,
    page,
    problems,
)
from sco_settle.server.routes.payments import visibility
from sco_settle.server.schemas import CorridorPage

router = APIRouter(prefix="/v1/reports", tags=["reports"])
Nanoseconds = Annotated[
    int, Query(ge=0, le=2**63 - 1, description="ns since the Unix epoch"), QueryInt
]


@router.get(
    "/corridors",
    operation_id="listCorridorTotals",
    response_model=CorridorPage,
    responses=problems(400),
)
async def corridor_report(
    caller: Caller,
    ctx: Context,
    received_from: Nanoseconds = 0,
    received_to: Nanoseconds = 2**63 - 1,
    limit: Limit = 100,
    after: After = None,
) -> Response:
    """Totals per (corridor, currency, creditor currency) of payments received in the window."""
    skip = decode_int_cursor("corridors", after)
    rows = await run_in_threadpool(
        ctx.service.payment_reader.corridors,
        visibility(caller),
        received_min=received_from,
        received_max=received_to,
    )
    chosen = rows[skip : skip + limit]
    more = len(rows) > skip + limit
    return json_response(page(chosen, skip + limit if more else None, "corridors"))
