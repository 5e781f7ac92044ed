"""What every route uses: the app context, the caller, pages, JSON answers, problem docs."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request, Security
from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic import BeforeValidator
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from sco_settle.network import Network
from sco_settle.server.admission import ADMITTED
from sco_settle.server.auth import Authenticator, Principal, SignedRequest
from sco_settle.server.config import PAGE_LIMIT_MAX, ServerConfig
from sco_settle.server.db import StateDb
from sco_settle.server.errors import PROBLEM_MEDIA_TYPE, ApiError, request_id_of
from sco_settle.server.idempotency import IdempotencyStore
from sco_settle.server.keys import KeyStore
from sco_settle.server.schemas import Problem
from sco_settle.server.service import LedgerService

T = TypeVar("T")
JOB_SECONDS_MAX = 300.0  # A write that waits longer than this is answered 503.
INT64_MAX = 2**63 - 1  # Cursors and other numbers that reach SQL are 64-bit signed there.


@dataclass
class AppContext:
    config: ServerConfig
    network: Network
    service: LedgerService
    state_db: StateDb
    keys: KeyStore
    authenticator: Authenticator
    idempotency: IdempotencyStore


def context_of(request: Request) -> AppContext:
    found = getattr(request.app.state, "context", None)
    if found is None:  # The app was built for its OpenAPI document only.
        raise ApiError("ledger_unavailable", "this app has no ledger attached")
    return found


async def context(request: Request) -> AppContext:
    """As a dependency (async, so FastAPI does not hop to a worker thread for it)."""
    return context_of(request)


# Declared for the OpenAPI document (security schemes); ``principal`` reads the headers itself.
_bearer_scheme = HTTPBearer(auto_error=False, description="scos_<key id>_<secret>")
_signature_scheme = APIKeyHeader(
    name="X-SCOS-Signature",
    auto_error=False,
    description="HMAC-SHA256 request signature, with X-SCOS-Key-Id, X-SCOS-Timestamp and"
    " X-SCOS-Nonce (see docs/api.md)",
)


async def principal(
    request: Request,
    _bearer: Annotated[Any, Security(_bearer_scheme)] = None,
    _signature: Annotated[Any, Security(_signature_scheme)] = None,
) -> Principal:
    """The authenticated caller (every route but /health depends on this): as the admission
    layer found it (``admission``), or authenticated here for a request it left alone."""
    admitted = request.scope.get("state", {}).get(ADMITTED)
    if admitted is not None:
        return admitted
    ctx = context_of(request)
    body = await request.body()
    target = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1")
    if request.scope.get("query_string"):
        target += "?" + request.scope["query_string"].decode("latin-1")
    client = request.client.host if request.client else ""
    signed = SignedRequest(request.method, target, body, client, request_id_of(request))
    found = await run_in_threadpool(ctx.authenticator.authenticate, request.headers, signed)
    request.scope.setdefault("state", {})["principal"] = found
    return found


Caller = Annotated[Principal, Depends(principal)]
Context = Annotated[AppContext, Depends(context)]


def decimal_text(value: object) -> object:
    """Query integers are decimal digits only: pydantic alone would also take ``1.0``."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit() and len(value) <= 20):
        raise ValueError("must be a decimal integer (digits only)")
    return value


def iso_day_text(value: object) -> object:
    """Query dates are ``YYYY-MM-DD`` only: pydantic alone would also take a Unix time."""
    if isinstance(value, str) and not (
        len(value) == 10 and value[4] == value[7] == "-" and value.replace("-", "").isdigit()
    ):
        raise ValueError("must be a date, YYYY-MM-DD")
    return value


QueryInt = BeforeValidator(decimal_text)
QueryDay = BeforeValidator(iso_day_text)
Limit = Annotated[
    int, Query(ge=1, le=PAGE_LIMIT_MAX, description="Items per page (at most 1000)"), QueryInt
]
After = Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page")]


def idempotency_header_doc() -> dict[str, Any]:
    """The OpenAPI parameter of the required ``Idempotency-Key`` header."""
    return {
        "name": "Idempotency-Key",
        "in": "header",
        "required": True,
        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
        "description": "Names this write; a retry with the same key and request gets the first"
        " answer (with Idempotency-Replayed: true), with another request 409",
    }


def encode_cursor(kind: str, value: object) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str | None) -> str | None:
    if cursor is None or cursor == "":
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise ApiError("cursor_invalid", "not a cursor returned by this endpoint") from None
    found, _, value = text.partition(":")
    # Every cursor this API issues holds printable ASCII (an id, a BIC, a number): anything else
    # (a NUL, which PostgreSQL text cannot hold, control characters) is not one of them.
    if found != kind or not value or not (value.isascii() and value.isprintable()):
        raise ApiError("cursor_invalid", "not a cursor returned by this endpoint")
    return value


def decode_int_cursor(kind: str, cursor: str | None, *, maximum: int = INT64_MAX) -> int:
    """A cursor holding a number in 0 .. ``maximum``: by default what a 64-bit signed SQL column
    holds (a sequence number, a timestamp); pass the largest value the route can use safely."""
    value = decode_cursor(kind, cursor)
    if value is None:
        return 0
    if not value.isdigit() or len(value) > 40 or int(value) > maximum:
        raise ApiError("cursor_invalid", "not a cursor returned by this endpoint")
    return int(value)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def page(items: list[Any], next_value: object | None, kind: str) -> dict[str, Any]:
    return {
        "items": items,
        "next_cursor": None if next_value is None else encode_cursor(kind, next_value),
    }


OFF_LOOP_ITEMS_MIN = 64  # Items (payments, transfers) from which a request's work leaves the loop.


async def off_loop(items: int, work: Callable[[], T]) -> T:
    """``work()``, in a worker thread when it handles ``items`` >= ``OFF_LOOP_ITEMS_MIN`` items.

    The event loop serves every request: a batch's conversions (a thousand payments built or
    rendered, thousands of transfers parsed) run 5-30 ms without a pause, and every other
    request waited that long. In a worker thread the interpreter switches between it and the
    loop every ``writer_switch_interval_seconds``. Small requests stay on the loop (a thread hop
    costs more than their work)."""
    if items < OFF_LOOP_ITEMS_MIN:
        return work()
    return await run_in_threadpool(work)


async def wait(future: Any) -> Any:
    """Await a writer job's result without blocking the event loop."""
    try:
        return await asyncio.wait_for(asyncio.wrap_future(future), JOB_SECONDS_MAX)
    except TimeoutError:
        raise ApiError("server_busy", "the write did not finish in time; retry it") from None


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for problem answers (400, 401, 422 and 5xx: every route)."""
    described = {
        400: "Malformed request",
        401: "Missing or invalid credentials",
        403: "The key's role does not allow this",
        404: "Not found, or not visible to the caller (the two are indistinguishable)",
        409: "Idempotency conflict",
        413: "Body too large",
        415: "Unsupported media type",
        422: "Invalid parameters",
        500: "Internal error",
        503: "Ledger unavailable or busy",
    }
    chosen = sorted({*statuses, 400, 401, 422, 500, 503})
    return {
        status: {
            "description": described[status],
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in chosen
    }


WRITE_PROBLEMS = (400, 403, 409, 413)
_ = Problem  # The Problem schema is added to the document's components in ``app``.


async def write_caller(caller: Caller, ctx: Context) -> Principal:
    """The caller of a write that draws on the write quotas, refused with 429 ``rate_limited``
    if its participant or key is out of quota or its queue is full (``LedgerService.admit``).
    The admission layer asks the same before the body is even read (``admission``, which finds
    these routes by this dependency); this is the check for a request it did not admit, and the
    write itself is checked again, with its size, when it is queued."""
    ctx.service.admit(caller)
    return caller


WriteCaller = Annotated[Principal, Depends(write_caller)]


async def single_query_values(request: Request) -> None:
    """Every query parameter at most once (422 ``request_invalid``): a repeated one would
    otherwise silently count only by its last value. Applied to every route (``build_app``)."""
    names = [name for name, _ in request.query_params.multi_items()]
    if len(names) != len(set(names)):
        repeated = sorted({name for name in names if names.count(name) > 1})
        raise ApiError("request_invalid", f"query parameter given more than once: {repeated}")
