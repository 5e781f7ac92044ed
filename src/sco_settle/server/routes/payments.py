"""``/v1/payments``: submit a payment (JSON) and follow it.

A payment's id is ``<debtor agent BIC>:<instruction_id>``, the same scheme as the ISO 20022
gateway's ``<debtor agent>:<UETR>``: ids never collide across banks, and resubmitting an
instruction returns its first outcome (``duplicate: true``). A participant pays only as its own
debtor agent and sees payments where it is the debtor or the creditor agent.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from sco_settle.payments.model import (
    AmountType,
    Party,
    Payment,
    PaymentOutcome,
    PaymentStatus,
    Priority,
)
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
    off_loop,
    page,
    problems,
    wait,
)
from sco_settle.server.schemas import (
    PaymentBatchIn,
    PaymentBatchOut,
    PaymentChange,
    PaymentDetail,
    PaymentIn,
    PaymentPage,
    PaymentReturnIn,
)
from sco_settle.server.schemas import PaymentOutcome as PaymentOutcomeSchema

router = APIRouter(prefix="/v1/payments", tags=["payments"])


def outcome_json(outcome: PaymentOutcome, payment: Payment | None = None) -> dict[str, Any]:
    return {**outcome_fields(outcome, payment), "duplicate": outcome.duplicate}


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
        amount_type=AmountType(body.amount_type),
        settle_from=_ledger_time(body.settle_from),
        settle_till=_ledger_time(body.settle_till),
        fx_quote_id=body.fx_quote_id,
    )


def _ledger_time(moment: dt.datetime | None) -> int:
    """A time as the ledger's clock counts it (ns since the epoch, UTC); 0 for none."""
    if moment is None:
        return 0
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return max((delta // dt.timedelta(microseconds=1)) * 1_000, 1)


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
        payment = payment_from(body, caller)
        (outcome,) = await wait(ctx.service.payments([payment], principal=caller))
        return json_response(outcome_json(outcome, payment), 200 if outcome.duplicate else 201)

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
        size = len(body.payments)
        items = body.payments
        payments = await off_loop(size, lambda: [payment_from(one, caller) for one in items])
        # The request's models are not needed any more, but the framework holds the body until
        # the answer: dropped now, or a batch keeps 3,000 objects that every garbage collection
        # walks for as long as it waits for the writer (seconds, behind a backlog).
        items.clear()
        outcomes = await wait(ctx.service.payments(payments, principal=caller))

        def answer() -> Response:
            answers = [outcome_json(o, p) for o, p in zip(outcomes, payments, strict=True)]
            return json_response({"outcomes": answers}, 200)

        return await off_loop(size, answer)

    return await idempotent(request, caller, ctx.idempotency, operation)


WAITING_PROBLEMS = (*WRITE_PROBLEMS, 404)


@router.post(
    "/{payment_id:path}/cancellation",
    operation_id="cancelPayment",
    response_model=PaymentOutcomeSchema,
    responses=problems(*WAITING_PROBLEMS),
    openapi_extra={"parameters": [idempotency_header_doc()]},
)
async def cancel_payment(
    payment_id: str, request: Request, caller: WriteCaller, ctx: Context
) -> Response:
    """Cancel a payment of the caller's that waits (queued for liquidity, held for a netting
    cycle, or warehoused until its settlement time): it will not settle, and its status is
    ``cancelled``. A payment already settled, rejected or cancelled answers 409; another
    participant's payment, 404 (it does not exist for the caller)."""
    return await _change_waiting(payment_id, None, request, caller, ctx)


@router.post(
    "/{payment_id:path}/returns",
    operation_id="createPaymentReturn",
    status_code=201,
    response_model=PaymentOutcomeSchema,
    responses=problems(*WAITING_PROBLEMS),
    openapi_extra={"parameters": [idempotency_header_doc()]},
)
async def create_payment_return(
    payment_id: str, body: PaymentReturnIn, request: Request, caller: WriteCaller, ctx: Context
) -> Response:
    """Return (part of) a payment the caller received, as its creditor agent: a new payment
    back to the debtor agent, for the returned amount in the currency received, at today's rate
    (like a pacs.004). The answer is the return payment's outcome (settled, queued or rejected).
    Returns together never exceed what was received (409 ``payment_not_returnable``); another
    participant's payment, 404."""

    async def operation() -> Response:
        if not caller.moves_money:
            raise ApiError("forbidden", "this key's role cannot move money")
        found = await run_in_threadpool(ctx.service.payment_reader.get, payment_id)
        currency = found["instruction"]["creditor_currency"] if found else ""
        amount = (body.amount_minor, currency) if body.amount_minor is not None else None
        answer = await wait(
            ctx.service.return_payment(payment_id, body.return_id, amount, body.reason, caller)
        )
        if answer.payment is None:
            code = "payment_not_returnable" if answer.exists else "payment_not_found"
            raise ApiError(code, f"{answer.reason.value}: {answer.reason_text}")
        status = 200 if answer.payment.duplicate else 201
        return json_response(outcome_json(answer.payment), status)

    return await idempotent(request, caller, ctx.idempotency, operation)


@router.patch(
    "/{payment_id:path}",
    operation_id="updatePaymentPriority",
    response_model=PaymentOutcomeSchema,
    responses=problems(*WAITING_PROBLEMS),
    openapi_extra={"parameters": [idempotency_header_doc()]},
)
async def change_payment(
    payment_id: str, body: PaymentChange, request: Request, caller: WriteCaller, ctx: Context
) -> Response:
    """Re-prioritise a payment of the caller's that waits (urgent before normal; within a
    priority, arrival order). Errors as for the cancellation."""
    return await _change_waiting(payment_id, body.priority, request, caller, ctx)


async def _change_waiting(
    payment_id: str,
    priority: Priority | None,
    request: Request,
    caller: Principal,
    ctx: Any,
) -> Response:
    async def operation() -> Response:
        if not caller.moves_money:
            raise ApiError("forbidden", "this key's role cannot move money")
        answer = await wait(ctx.service.change_waiting(payment_id, priority, caller))
        if not answer.accepted:
            code = "payment_not_waiting" if answer.exists else "payment_not_found"
            raise ApiError(code, answer.reason_text)
        return json_response(outcome_json(answer.payment), 200)

    return await idempotent(request, caller, ctx.idempotency, operation)
