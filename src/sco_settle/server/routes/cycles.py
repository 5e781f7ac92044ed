"""``/v1/netting-cycles``: run a settlement cycle and read the results of past ones.

In DNS mode a cycle nets every held payment and settles the net positions as one linked chain
(``payments.dns``); in RTGS mode it runs the liquidity-saving mechanism on the queue (retry,
bilateral offsetting, gridlock resolution). The network operator runs cycles for all currencies
or one; a currency operator (central bank) only for a currency it settles. Only payments entirely
in the cycle's currencies take part. Participants cannot run or read cycles.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from sco_settle.server.auth import Principal
from sco_settle.server.errors import ApiError
from sco_settle.server.idempotency import idempotent
from sco_settle.server.keys import Role
from sco_settle.server.routes.common import (
    WRITE_PROBLEMS,
    After,
    Caller,
    Context,
    Limit,
    decode_int_cursor,
    idempotency_header_doc,
    json_response,
    page,
    problems,
    wait,
)
from sco_settle.server.schemas import Cycle, CycleIn, CyclePage
from sco_settle.server.service import cycle_json

router = APIRouter(prefix="/v1/netting-cycles", tags=["netting"])
CycleId = Annotated[int, Path(ge=1, le=2**62)]
_COLUMNS = "cycle_id, kind, currencies, requested_by, started_at, finished_at, report"


def _visible(caller: Principal, cycle: dict[str, Any]) -> bool:
    if caller.role is not Role.CURRENCY_OPERATOR:
        return True
    currencies = cycle["currencies"]
    return currencies is None or bool(set(currencies) & caller.currencies)


@router.post(
    "",
    operation_id="runNettingCycle",
    status_code=201,
    response_model=Cycle,
    responses=problems(*WRITE_PROBLEMS),
    openapi_extra={"parameters": [idempotency_header_doc()]},
)
async def run_cycle(body: CycleIn, request: Request, caller: Caller, ctx: Context) -> Response:
    """Run one cycle now; the answer is its result (also kept for ``GET``)."""

    async def operation() -> Response:
        caller.require(Role.NETWORK_OPERATOR, Role.CURRENCY_OPERATOR)
        currencies = None if body.currency is None else frozenset({body.currency})
        if caller.role is Role.CURRENCY_OPERATOR:
            if currencies is None:
                if len(caller.currencies) != 1:
                    raise ApiError("currency_not_permitted", "name the currency of the cycle")
                currencies = caller.currencies
            if not currencies <= caller.currencies:
                raise ApiError(
                    "currency_not_permitted",
                    f"{caller.participant} does not settle {body.currency}",
                )
        result = await wait(ctx.service.cycle(currencies, caller.key_id))
        return json_response(result, 201)

    return await idempotent(request, caller, ctx.idempotency, operation)


@router.get(
    "",
    operation_id="listNettingCycles",
    response_model=CyclePage,
    responses=problems(400, 403),
)
async def list_cycles(
    caller: Caller, ctx: Context, limit: Limit = 100, after: After = None
) -> Response:
    """Past cycles, oldest first."""
    caller.require(Role.NETWORK_OPERATOR, Role.CURRENCY_OPERATOR, Role.AUDITOR)
    start = decode_int_cursor("cycles", after)
    items: list[dict[str, Any]] = []
    last = start
    # Filtering by visibility may skip rows: read in steps until the page is full.
    while len(items) <= limit:
        rows = await run_in_threadpool(
            ctx.state_db.execute,
            f"SELECT {_COLUMNS} FROM api_netting_cycles WHERE cycle_id > ?"
            " ORDER BY cycle_id LIMIT ?",
            (last, limit + 1),
        )
        for row in rows:
            cycle = cycle_json(row)
            last = cycle["cycle_id"]
            if _visible(caller, cycle):
                items.append(cycle)
        if len(rows) <= limit:
            break
    chosen = items[:limit]
    more = len(items) > limit
    return json_response(page(chosen, chosen[-1]["cycle_id"] if more else None, "cycles"))


@router.get(
    "/{cycle_id}",
    operation_id="getNettingCycle",
    response_model=Cycle,
    responses=problems(403, 404),
)
async def get_cycle(cycle_id: CycleId, caller: Caller, ctx: Context) -> Response:
    caller.require(Role.NETWORK_OPERATOR, Role.CURRENCY_OPERATOR, Role.AUDITOR)
    rows = await run_in_threadpool(
        ctx.state_db.execute,
        f"SELECT {_COLUMNS} FROM api_netting_cycles WHERE cycle_id = ?",
        (cycle_id,),
    )
    cycle = cycle_json(rows[0]) if rows else None
    if cycle is None or not _visible(caller, cycle):
        raise ApiError("cycle_not_found", f"no netting cycle {cycle_id}")
    return json_response(cycle)
