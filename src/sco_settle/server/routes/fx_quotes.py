"""``/v1/fx-quotes``: firm FX quotes (``payments.fx_quotes`` states the rules).

``POST`` asks for a quote: the payment is priced on the best route now, and the liquidity it takes
from others (the FX providers' delivering accounts) is held until the quote is used or expires.
A payment that names the quote (``fx_quote_id`` on ``POST /v1/payments``) settles exactly at it
or is rejected. Creating a quote holds liquidity, so it is a write: authenticated with a key that
moves money, on the caller's write quota, with an ``Idempotency-Key``. A quote is visible to its
debtor agent, to the operators of its currencies, and to the network operator and auditors;
for anyone else it does not exist (404).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from sco_settle.payments.fx_quotes import QuoteStatus
from sco_settle.payments.model import AmountType, PaymentOutcome
from sco_settle.payments.quote_desk import FxQuoteRequest
from sco_settle.payments.quote_records import ChargeBearer, FxQuote
from sco_settle.server.auth import Principal
from sco_settle.server.errors import ApiError
from sco_settle.server.idempotency import idempotent
from sco_settle.server.keys import Role
from sco_settle.server.routes.common import (
    WRITE_PROBLEMS,
    Caller,
    Context,
    WriteCaller,
    idempotency_header_doc,
    json_response,
    problems,
    wait,
)
from sco_settle.server.routes.payments import debtor_agent_for
from sco_settle.server.schemas import FxQuoteIn, FxQuoteOut

router = APIRouter(prefix="/v1/fx-quotes", tags=["fx"])


def _iso_time(ns: int) -> str:
    moment = dt.datetime.fromtimestamp(ns // 1_000_000_000, dt.UTC)
    return moment.replace(microsecond=(ns // 1_000) % 1_000_000).isoformat()


def fx_quote_json(quote: FxQuote, status: QuoteStatus) -> dict[str, Any]:
    return {
        "quote_id": quote.quote_id,
        "status": status.value,
        "debtor_agent": quote.debtor_agent,
        "creditor_agent": quote.creditor_agent,
        "currency": quote.currency,
        "creditor_currency": quote.creditor_currency,
        "amount_type": quote.amount_type.value,
        "charge_bearer": quote.charge_bearer.value,
        "send_minor": quote.send_minor,
        "receive_minor": quote.receive_minor,
        "charges": [
            {
                "agent": c.agent,
                "amount_minor": c.amount_minor,
                "currency": c.currency,
                "borne_by": c.borne_by,
            }
            for c in quote.charges
        ],
        "conversions": [
            {
                "provider": c.provider,
                "from_currency": c.from_currency,
                "to_currency": c.to_currency,
                "amount_minor": c.amount_minor,
                "converted_minor": c.converted_minor,
                "rate": c.rate,
                "side": c.side,
                "rate_provider": c.rate_provider,
            }
            for c in quote.conversions
        ],
        "route": list(quote.route),
        "holds": [
            {"owner": h.owner, "currency": h.currency, "amount_minor": h.amount_minor}
            for h in quote.holds
        ],
        "created_at": _iso_time(quote.created_ns),
        "expires_at": _iso_time(quote.expires_ns),
    }


def _may_see(caller: Principal, quote: FxQuote) -> bool:
    if caller.role in (Role.NETWORK_OPERATOR, Role.AUDITOR):
        return True
    if caller.role is Role.CURRENCY_OPERATOR:
        return bool({quote.currency, quote.creditor_currency} & set(caller.currencies))
    return caller.participant == quote.debtor_agent


@router.post(
    "",
    operation_id="createFxQuote",
    status_code=201,
    response_model=FxQuoteOut,
    responses=problems(*WRITE_PROBLEMS, 422),
    openapi_extra={"parameters": [idempotency_header_doc()]},
)
async def create_fx_quote(
    body: FxQuoteIn, request: Request, caller: WriteCaller, ctx: Context
) -> Response:
    """A firm quote for one payment: amounts on both sides, each conversion's provider, rate
    and side, the charges and who bears them (``charge_bearer``, ISO 20022 ``ChrgBr``), the
    route, the liquidity held, and the expiry. Refused with 422 ``fx_quote_refused`` and an ISO
    20022 reason (``reason``: AM04 no liquidity now, AM02 no route could ever carry it, CNOR
    not reachable, NARR with the detail...), which holds nothing."""

    async def operation() -> Response:
        if not caller.moves_money:
            raise ApiError("forbidden", "this key's role cannot move money")
        quote_request = FxQuoteRequest(
            debtor_agent=debtor_agent_for(caller, body.debtor_agent),
            creditor_agent=body.creditor_agent,
            amount_minor=body.amount_minor,
            currency=body.currency,
            creditor_currency=body.creditor_currency,
            amount_type=AmountType(body.amount_type),
            charge_bearer=ChargeBearer(body.charge_bearer),
            seconds=body.validity_seconds,
            ref=body.reference,
        )
        answer = await wait(ctx.service.fx_quote(quote_request, caller))
        if isinstance(answer, PaymentOutcome):
            reason = answer.reason.value if answer.reason else "NARR"
            raise ApiError(
                "fx_quote_refused",
                f"{reason}: {answer.reason_text}",
                extra={"reason": reason, "reason_text": answer.reason_text},
            )
        return json_response(fx_quote_json(answer, QuoteStatus.OPEN), 201)

    return await idempotent(request, caller, ctx.idempotency, operation)


@router.get(
    "/{quote_id}",
    operation_id="getFxQuote",
    response_model=FxQuoteOut,
    responses=problems(404),
)
async def get_fx_quote(quote_id: str, caller: Caller, ctx: Context) -> Response:
    """A quote and its status now: open (its liquidity is held), used (a payment settled at
    it) or expired. Another participant's quote is not found."""
    found = await wait(ctx.service.fx_quote_found(quote_id, caller))
    if found is None or not _may_see(caller, found[0]):
        raise ApiError("fx_quote_not_found", f"no FX quote {quote_id!r}")
    quote, status = found
    return json_response(fx_quote_json(quote, status))
