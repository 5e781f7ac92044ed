"""``POST /v1/transfer-batches``: a batch of ledger transfers, one result per transfer.

The body is one line of the JSON-lines codec (``ledger/jsonl.py``), ``{"transfers": [...]}``,
with the same field names and rules; the answer is the codec's acknowledgement,
``{"results": [{"index": 0, "result": "ok"}, ...]}``, sent once the batch is durable.

A participant may only debit its own accounts (and post or void only pending transfers that
debit them). Any other account or pending transfer it names is answered exactly as one that does
not exist (``debit_account_not_found`` / ``pending_transfer_not_found``), and a linked chain holding
it fails as a whole, as it would in the ledger.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from sco_settle.ledger.jsonl import parse_batch, results_line
from sco_settle.server.errors import ApiError
from sco_settle.server.idempotency import idempotent
from sco_settle.server.routes.common import (
    WRITE_PROBLEMS,
    Caller,
    Context,
    idempotency_header_doc,
    problems,
    wait,
)
from sco_settle.server.schemas import TransferBatchResults

router = APIRouter(prefix="/v1/transfer-batches", tags=["transfers"])

_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TransferBatch"}}},
    },
    "parameters": [idempotency_header_doc()],
}


@router.post(
    "",
    response_model=TransferBatchResults,
    responses=problems(*WRITE_PROBLEMS),
    openapi_extra=_BODY_DOC,
)
async def create_transfer_batch(request: Request, caller: Caller, ctx: Context) -> Response:
    """Apply transfers atomically per linked chain; answer once durable."""

    async def operation() -> Response:
        if not caller.moves_money:
            raise ApiError("forbidden", "this key's role cannot move money")
        kind, items = parse_batch(await request.body())
        if kind != "transfers":
            raise ApiError("batch_format_invalid", 'expected {"transfers": [...]}')
        results = await wait(ctx.service.transfers(caller, items))  # type: ignore[arg-type]
        return Response(results_line(results).encode(), media_type="application/json")

    return await idempotent(request, caller, ctx.idempotency, operation)
