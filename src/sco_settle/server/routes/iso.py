"""``POST /v1/iso20022/messages``: a pacs.008, pacs.009 or pacs.004 in, its pacs.002 out.

The body is the XML message (``application/xml``, at most 1 MiB); the answer is always a pacs.002
(``application/xml``), also for a message that cannot be read (group status RJCT, reason FF01), as
the gateway does (``gateway/iso.py``). A key acts only as its own participant, whatever its role:
it may send credit transfers in which it is the debtor agent of every transaction, and returns
(pacs.004) in which it is the returning (instructing) agent of every transaction; otherwise
nothing is processed and the answer is a 403 problem. A return is then carried out only if the
caller is the original payment's creditor agent; for anyone else the original does not exist.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from sco_settle.messaging.iso20022 import (
    MESSAGE_BYTES_MAX,
)
from sco_settle.server.errors import ApiError
from sco_settle.server.idempotency import idempotent
from sco_settle.server.routes.common import (
    WRITE_PROBLEMS,
    Context,
    WriteCaller,
    idempotency_header_doc,
    problems,
    wait,
)

router = APIRouter(prefix="/v1/iso20022", tags=["iso20022"])
XML_MEDIA_TYPES = ("application/xml", "text/xml")


@router.post(
    "/messages",
    operation_id="submitIso20022Message",
    responses={
        **problems(*WRITE_PROBLEMS, 415),
        200: {
            "description": "The pacs.002 status report answering the message",
            "content": {"application/xml": {"schema": {"type": "string"}}},
        },
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/xml": {"schema": {"type": "string", "maxLength": 1048576}}},
        },
        "parameters": [idempotency_header_doc()],
    },
)
async def submit_iso_message(request: Request, caller: WriteCaller, ctx: Context) -> Response:
    """Run a pacs.008 / pacs.009 through the payment pipeline; answer its pacs.002."""

    async def operation() -> Response:
        if not caller.moves_money:
            raise ApiError("forbidden", "this key's role cannot move money")
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type not in XML_MEDIA_TYPES:
            raise ApiError("unsupported_media_type", "send the message as application/xml")
        data = await request.body()
        if len(data) > MESSAGE_BYTES_MAX:
            raise ApiError(
                "body_too_large", f"ISO 20022 messages are limited to {MESSAGE_BYTES_MAX}"
            )
        sender = ctx.network.settlement_agents.get("CNY") or caller.participant
        reply = await wait(
            ctx.service.iso_message(data, sender, caller.participant, principal=caller)
        )
        return Response(reply, media_type="application/xml")

    return await idempotent(request, caller, ctx.idempotency, operation)
