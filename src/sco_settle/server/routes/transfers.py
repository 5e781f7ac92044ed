"""``POST /v1/transfer-batches``: a batch of ledger transfers, one result per transfer.

The body is one line of the JSON-lines codec (``ledger/jsonl.py``), ``{"transfers": [...]}``,
with the same field names and rules; the answer is the codec's acknowledgement,
``{"results": [{"index": 0, "result": "ok"}, ...]}``, sent once the batch is durable.

A participant may only debit its own accounts (and post or void only pending transfers that
debit them). Any other account or pending transfer it names is answered exactly as one that does
not exist (``debit_account_not_found`` / ``pending_transfer_not_found``), and a linked chain holding
it fails as a whole, as it would in the ledger.

The body must be ``application/json`` (UTF-8; any other charset, or another media type, is 415
``unsupported_media_type``, answered before the request is remembered under its
``Idempotency-Key``, so the corrected retry runs). Every field is checked by the codec before
anything is queued: a malformed batch is 400 ``batch_format_invalid`` and changes nothing. Ids
and pending ids of 2**127 and up belong to the payment engine (400 ``transfer_id_reserved``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from sco_settle.domain.ids import is_engine_id
from sco_settle.domain.transfer import Transfer
from sco_settle.ledger.jsonl import parse_batch, results_line
from sco_settle.server.errors import ApiError
from sco_settle.server.idempotency import idempotent
from sco_settle.server.routes.common import (
    WRITE_PROBLEMS,
    Context,
    WriteCaller,
    idempotency_header_doc,
    off_loop,
    problems,
    wait,
)
from sco_settle.server.schemas import TransferBatchResults

router = APIRouter(prefix="/v1/transfer-batches", tags=["transfers"])
JSON_MEDIA_TYPE = "application/json"

_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TransferBatch"}}},
    },
    "parameters": [idempotency_header_doc()],
}


@router.post(
    "",
    operation_id="createTransferBatch",
    response_model=TransferBatchResults,
    responses=problems(*WRITE_PROBLEMS, 415),
    openapi_extra=_BODY_DOC,
)
async def create_transfer_batch(request: Request, caller: WriteCaller, ctx: Context) -> Response:
    """Apply transfers atomically per linked chain; answer once durable."""
    check_json_media_type(request.headers.get("content-type"))

    async def operation() -> Response:
        if not caller.moves_money:
            raise ApiError("forbidden", "this key's role cannot move money")
        body = await request.body()
        # About 100 bytes per transfer: a body of 64 transfers or more is parsed off the loop.
        kind, items = await off_loop(len(body) // 100, lambda: parse_batch(body))
        if kind != "transfers":
            raise ApiError("batch_format_invalid", 'expected {"transfers": [...]}')
        refuse_engine_ids(items)  # type: ignore[arg-type]
        results = await wait(ctx.service.transfers(caller, items))  # type: ignore[arg-type]
        line = await off_loop(len(results), lambda: results_line(results).encode())
        return Response(line, media_type="application/json")

    return await idempotent(request, caller, ctx.idempotency, operation)


def refuse_engine_ids(items: list[Transfer]) -> None:
    """The payment engine's chains live at ``ENGINE_ID_MIN`` and up: no client, whatever its
    role, may create a transfer there (squatting a payment's leg id made a payment look settled
    with no money moved) nor name one as ``pending_id`` (probing whether a payment exists)."""
    for index, transfer in enumerate(items):
        if is_engine_id(transfer.id) or is_engine_id(transfer.pending_id):
            raise ApiError(
                "transfer_id_reserved",
                f"transfer {index}: ids and pending ids of 2**127 and up are the payment"
                " engine's; choose ids below 2**127",
            )


def check_json_media_type(content_type: str | None) -> None:
    """Refuse (415) a body that is not declared ``application/json`` in UTF-8."""
    media_type, _, parameters = (content_type or "").partition(";")
    if media_type.strip().lower() != JSON_MEDIA_TYPE:
        raise ApiError("unsupported_media_type", "send the batch as application/json (UTF-8)")
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            raise ApiError("unsupported_media_type", "send the batch as application/json (UTF-8)")
