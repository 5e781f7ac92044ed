"""``/v1/payments``: submit a payment (JSON) and follow it.

A payment's id is ``<debtor agent BIC>:<instruction_id>``, the same scheme as the ISO 20022
gateway's ``<debtor agent>:<UETR>``: ids never collide across banks, and resubmitting an
instruction returns its first outcome (``duplicate: true``). A participant pays only as its own
debtor agent and sees payments where it is the debtor or the creditor agent.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from sco_settle.payments.model import Party, Payment, PaymentOutcome, PaymentStatus
from sco_settle.payments.records import PaymentFilter
from sco_settle.server.auth import Principal
from sco_settle.server.errors import ApiError
from sco_settle.server.idempotency import idempotent
from sco_settle.server.keys import Role
from sco_settle.server.payment_reads import outcome_fields
from sco_settle.server.routes.common import (
    WRITE_PROBLEMS,
    After,
    Caller,
    Context,
    Limit,
    WriteCaller,
    decode_int_cursor,
    idempotency_header_doc,
    json_response,
    page,
    problems,
    wait,
)
from sco_settle.server.schemas import (
    PaymentBatchIn,
    PaymentBatchOut,
    PaymentDetail,
    PaymentIn,
    PaymentPage,
)
from sco_settle.server.schemas import PaymentOutcome as PaymentOutcomeSchema

router = APIRouter(prefix="/v1/payments", tags=["payments"])


def outcome_json(outcome: PaymentOutcome) -> dict[str, Any]:
    return {**outcome_fields(outcome), "duplicate": outcome.duplicate}


def debtor_agent_for(caller: Principal, requested: str | None) -> str:
    """The debtor agent a caller may pay as: a participant only as itself."""
    debtor_agent = requested or caller.participant
    if caller.role is Role.PARTICIPANT and debtor_agent != caller.participant:
        raise ApiError("debtor_agent_not_permitted", f"this key pays only as {caller.participant}")
    return debtor_agent


def payment_from(body: PaymentIn, caller: Principal) -> Payment:
    debtor_agent = debtor_agent_for(caller, body.debtor_agent)
    return Payment(
        payment_id=f"{debtor_agent}:{body.instruction_id}",
        debtor_agent=debtor_agent,
        creditor_agent=body.creditor_agent,
        amount_minor=body.amount_minor,
        currency=body.currency,
        creditor_currency=body.creditor_currency or body.currency,
        debtor=Party(body.debtor.name, body.debtor.account),
        creditor=Party(body.creditor.name, body.creditor.account),
        end_to_end_id=body.end_to_end_id,
        uetr=body.uetr,
        remittance_info=body.remittance_info,
        priority=body.priority,
    )


def visibility(caller: Principal) -> PaymentFilter:
    if caller.role is Role.PARTICIPANT:
        return PaymentFilter(parties=(caller.participant,), everything=False)
    if caller.role is Role.CURRENCY_OPERATOR:
        return PaymentFilter(currencies=tuple(sorted(caller.currencies)), everything=False)
    return PaymentFilter(everything=True)


@router.post(
    "",
    operation_id="createPayment",
    status_code=201,
    response_model=PaymentOutcomeSchema,
    responses={
        **problems(*WRITE_PROBLEMS),
        200: {
            "description": "A resubmitted instruction: its first outcome, with duplicate: true",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/PaymentOutcome"}}
            },
        },
    },
    openapi_extra={"parameters": [idempotency_header_doc()]},
)
async def create_payment(
    body: PaymentIn, request: Request, caller: WriteCaller, ctx: Context
) -> Response:
    """Validate, screen, route and settle (RTGS) or hold for the cycle (DNS). The outcome's
    ``status`` is settled, queued (with the reason it waits) or rejected (ISO 20022 reason)."""

    async def operation() -> Response:
        if not caller.moves_money:
            raise ApiError("forbidden", "this key's role cannot move money")
        (outcome,) = await wait(
            ctx.service.payments([payment_from(body, caller)], principal=caller)
        )
        return json_response(outcome_json(outcome), 200 if outcome.duplicate else 201)

    return await idempotent(request, caller, ctx.idempotency, operation)


@router.get("", operation_id="listPayments", response_model=PaymentPage, responses=problems(400))
async def list_payments(
    caller: Caller,
    ctx: Context,
    limit: Limit = 100,
    after: After = None,
    status: Annotated[PaymentStatus | None, Query()] = None,
) -> Response:
    """The payments the caller may see, in arrival order."""
    start = decode_int_cursor("payments", after)
    rows = await run_in_threadpool(
        ctx.service.payment_reader.page,
        visibility(caller),
        after=start,
        limit=limit + 1,
        status=status.value if status else None,
    )
    chosen = rows[:limit]
    more = len(rows) > limit
    return json_response(
        page([item for _, item in chosen], chosen[-1][0] if more else None, "payments")
    )


@router.get(
    "/{payment_id:path}",
    operation_id="getPayment",
    response_model=PaymentDetail,
    responses=problems(404),
)
async def get_payment(payment_id: str, caller: Caller, ctx: Context) -> Response:
    """A payment's outcome, the instruction, and every step of its life."""
    found = await run_in_threadpool(ctx.service.payment_reader.get, payment_id)
    if found is not None:
        instruction = found["instruction"]
        if not caller.may_read_payment(
            instruction["debtor_agent"],
            instruction["creditor_agent"],
            instruction["currency"],
            instruction["creditor_currency"],
        ):
            found = None
    if found is None:
        raise ApiError("payment_not_found", f"no payment {payment_id[:100]!r}")
    return json_response(found)


batch_router = APIRouter(prefix="/v1/payment-batches", tags=["payments"])


@batch_router.post(
    "",
    operation_id="createPaymentBatch",
    status_code=200,
    response_model=PaymentBatchOut,
    responses=problems(*WRITE_PROBLEMS),
    openapi_extra={"parameters": [idempotency_header_doc()]},
)
async def create_payment_batch(
    body: PaymentBatchIn, request: Request, caller: WriteCaller, ctx: Context
) -> Response:
    """Up to 1,000 payments in one request: each is validated, screened, routed and settled (or
    queued, or rejected) exactly as through ``POST /v1/payments``, but their settlement chains go
    to the ledger together. One outcome per payment, in order; a participant pays only as itself
    (one foreign debtor agent refuses the whole batch, nothing moves)."""

    async def operation() -> Response:
        if not caller.moves_money:
            raise ApiError("forbidden", "this key's role cannot move money")
        payments = [payment_from(item, caller) for item in body.payments]
        outcomes = await wait(ctx.service.payments(payments, principal=caller))
        return json_response({"outcomes": [outcome_json(o) for o in outcomes]}, 200)

    return await idempotent(request, caller, ctx.idempotency, operation)
