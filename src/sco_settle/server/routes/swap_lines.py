"""``/v1/swap-lines``: central-bank swap lines as agreements drawn in tranches
(``payments/swap_lines.py`` states the rules; ``sco-settle swap-lines`` is the same from the
command line).

Who may do what: the agreements themselves are public facts (sizes, dates, status), listed to
every role. What is drawn, what the facility holds and the tranches are known to the two central
banks of a line, the network operator and auditors only. Drawing, repaying and rolling over are
the drawing central bank's own acts: its key (a participant or currency-operator key of that
central bank) and no one else's, not even the network operator's.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import Field, StrictInt
from starlette.responses import Response

from sco_settle.payments.swap_lines import DrawRefused, LineState, Tranche, TrancheTerms
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
from sco_settle.server.schemas import _Model
from sco_settle.server.service import SwapLineRequest

router = APIRouter(prefix="/v1/swap-lines", tags=["swap lines"])
_SEES_ALL = frozenset({Role.NETWORK_OPERATOR, Role.AUDITOR})
_RATE = r"^0(\.[0-9]{1,8})?$|^0?\.[0-9]{1,8}$"


class TrancheIn(_Model):
    amount_minor: Annotated[StrictInt, Field(ge=1, le=2**63 - 1)] = Field(
        description="Principal in the provider's currency, minor units"
    )
    months: int = Field(3, description="Tenor: 3, 6 or 12 months")
    interest_rate: str = Field(
        pattern=_RATE, description="Annual rate as a decimal fraction (0.025 is 2.5 %)"
    )
    value_date: dt.date | None = Field(None, description="Default: today (UTC)")


class RolloverIn(_Model):
    months: int = Field(3, description="Tenor of the new tranche: 3, 6 or 12 months")
    interest_rate: str = Field(pattern=_RATE, description="Annual rate of the new tranche")
    on: dt.date | None = Field(None, description="Default: today (UTC)")


class RepaymentIn(_Model):
    on: dt.date | None = Field(None, description="Default: today (UTC)")


def _is_party(caller: Principal, state: LineState) -> bool:
    found = state.agreement
    return caller.role in _SEES_ALL or caller.participant in (found.drawer, found.provider)


def _terms_json(terms: TrancheTerms) -> dict[str, Any]:
    return {
        "tranche": terms.tranche_id,
        "drawer": terms.drawer,
        "provider": terms.provider,
        "principal_minor": terms.principal_minor,
        "counter_minor": terms.counter_minor,
        "value_date": terms.value_date.isoformat(),
        "maturity": terms.maturity.isoformat(),
        "interest_rate": str(terms.interest_rate),
        "interest_due_minor": terms.interest_minor(),
    }


def _drawer_only(caller: Principal, drawer: str) -> None:
    if caller.role not in (Role.PARTICIPANT, Role.CURRENCY_OPERATOR):
        raise ApiError("forbidden", "only the drawing central bank acts on its swap lines")
    if caller.participant != drawer:
        raise ApiError("forbidden", f"only {drawer} draws, repays or rolls over its tranches")


def _rate(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:  # The pattern admits only decimals; kept for safety.
        raise ApiError("request_invalid", f"interest_rate {text!r} is not a decimal") from None


def _answer(answer: Any) -> Any:
    if isinstance(answer, DrawRefused):
        code = "swap_line_not_found" if answer.code == "no_agreement" else "swap_line_refused"
        raise ApiError(code, str(answer), extra={"reason": answer.code})
    return answer


@router.get("", operation_id="listSwapLines", responses=problems(400))
async def list_swap_lines(
    caller: Caller,
    ctx: Context,
    on: Annotated[dt.date | None, Query(description="The day (default: today, UTC)")] = None,
) -> Response:
    """Both sides of every swap line on ``on``: status, whether it is drawable, its size; for
    the line's two central banks, the network operator and auditors also what is drawn, what the
    facility holds, and the tranches."""
    states = _answer(await wait(ctx.service.swap_line(SwapLineRequest("state", on=on), caller)))
    return json_response(
        {"items": [state.as_dict(confidential=_is_party(caller, state)) for state in states]}
    )


@router.post(
    "/{drawer}/{provider}/tranches",
    operation_id="createSwapLineTranche",
    status_code=201,
    responses=problems(*WRITE_PROBLEMS, 404),
    openapi_extra={"parameters": [idempotency_header_doc()]},
)
async def draw_tranche(
    drawer: str, provider: str, body: TrancheIn, request: Request, caller: WriteCaller,
    ctx: Context,
) -> Response:  # fmt: skip
    """Draw a tranche of ``provider``'s currency, against its counter-value in ``drawer``'s at
    the provider's mid quote. Refused 409 ``swap_line_refused`` (``reason``: agreement_lapsed,
    exceeds_agreed_size, tenor_invalid, ...) with nothing moved."""

    async def operation() -> Response:
        _drawer_only(caller, drawer)
        action = SwapLineRequest(
            "draw", drawer, provider, body.amount_minor, body.months, _rate(body.interest_rate),
            on=body.value_date,
        )  # fmt: skip
        terms = _answer(await wait(ctx.service.swap_line(action, caller)))
        return json_response(_terms_json(terms), 201)

    return await idempotent(request, caller, ctx.idempotency, operation)


@router.post(
    "/{drawer}/{provider}/tranches/{tranche_id}/repayment",
    operation_id="createSwapLineRepayment",
    responses=problems(*WRITE_PROBLEMS, 404),
    openapi_extra={"parameters": [idempotency_header_doc()]},
)
async def repay_tranche(
    drawer: str, provider: str, tranche_id: str, body: RepaymentIn, request: Request,
    caller: WriteCaller, ctx: Context,
) -> Response:  # fmt: skip
    """Repay a tranche with its interest (in the drawer's currency, ACT/360 on the
    counter-value)."""

    async def operation() -> Response:
        _drawer_only(caller, drawer)
        action = SwapLineRequest("repay", drawer, provider, tranche_id=tranche_id, on=body.on)
        tranche: Tranche = _answer(await wait(ctx.service.swap_line(action, caller)))
        return json_response({**_terms_json(tranche.terms), "state": tranche.state.value})

    return await idempotent(request, caller, ctx.idempotency, operation)


@router.post(
    "/{drawer}/{provider}/tranches/{tranche_id}/rollover",
    operation_id="createSwapLineRollover",
    status_code=201,
    responses=problems(*WRITE_PROBLEMS, 404),
    openapi_extra={"parameters": [idempotency_header_doc()]},
)
async def rollover_tranche(
    drawer: str, provider: str, tranche_id: str, body: RolloverIn, request: Request,
    caller: WriteCaller, ctx: Context,
) -> Response:  # fmt: skip
    """Repay a tranche and draw the same principal again from ``on``, in one linked chain; the
    answer is the new tranche."""

    async def operation() -> Response:
        _drawer_only(caller, drawer)
        action = SwapLineRequest(
            "rollover", drawer, provider, months=body.months,
            interest_rate=_rate(body.interest_rate), tranche_id=tranche_id, on=body.on,
        )  # fmt: skip
        terms = _answer(await wait(ctx.service.swap_line(action, caller)))
        return json_response(_terms_json(terms), 201)

    return await idempotent(request, caller, ctx.idempotency, operation)
