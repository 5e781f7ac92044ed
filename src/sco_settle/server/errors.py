"""Errors as RFC 9457 problem details, and the one table that maps domain errors to HTTP.

Every error response has media type ``application/problem+json`` and the members ``type``,
``title``, ``status``, ``detail`` and ``code`` (machine-readable, stable; see ``PROBLEMS``), plus
``request_id``. ``type`` is ``urn:sco-settle:problem:<code>``; docs/api.md lists every code.

Business outcomes are not errors: a refused transfer is a result code in a 200 batch answer, a
rejected payment a 201 outcome with its ISO 20022 reason. Problems are for requests that could not
be carried out at all.

Privacy rule: a resource the caller may not see is reported exactly as one that does not exist:
the same status, code, title and detail (which only echoes what the caller sent).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from sco_settle.ledger import BatchTooLargeError, InvariantViolation, LedgerClosedError
from sco_settle.ledger.jsonl import BatchFormatError
from sco_settle.storage.sqlite import StoreFormatError, StoreLockedError

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:sco-settle:problem:"

# code -> (HTTP status, title). The title is the same for every occurrence of a code.
PROBLEMS: dict[str, tuple[int, str]] = {
    # 400: the request cannot be read.
    "request_malformed": (400, "Request cannot be read"),
    "batch_format_invalid": (400, "Transfer batch is malformed"),
    "transfer_id_reserved": (400, "Transfer id is in the payment engine's reserved range"),
    "batch_too_large": (400, "Transfer batch has too many transfers"),
    "cursor_invalid": (400, "Pagination cursor is invalid"),
    "date_out_of_range": (400, "Date is outside the ledger's timestamp range"),
    "idempotency_key_required": (400, "Idempotency-Key header is required"),
    "idempotency_key_invalid": (400, "Idempotency-Key header is invalid"),
    # 401: who is calling is unknown.
    "credentials_missing": (401, "Credentials are missing"),
    "credentials_invalid": (401, "Credentials are invalid"),
    "signature_invalid": (401, "Request signature is invalid"),
    "signature_expired": (401, "Request timestamp is outside the allowed skew"),
    "nonce_replayed": (401, "Request nonce was already used"),
    # 403: the caller is known and may not do this.
    "forbidden": (403, "Operation not permitted for this key's role"),
    "debtor_agent_not_permitted": (403, "Debtor agent is not the caller's participant"),
    "currency_not_permitted": (403, "Currency is not operated by the caller"),
    # 404: not found, or not visible to the caller (indistinguishable on purpose).
    "not_found": (404, "No such resource"),
    "participant_not_found": (404, "Participant not found"),
    "account_not_found": (404, "Account not found"),
    "payment_not_found": (404, "Payment not found"),
    "fx_quote_not_found": (404, "FX quote not found"),
    "swap_line_not_found": (404, "No swap line between these central banks"),
    "cycle_not_found": (404, "Netting cycle not found"),
    "key_not_found": (404, "API key not found"),
    "method_not_allowed": (405, "Method not allowed"),
    # 409: conflicts with earlier requests.
    "idempotency_key_reused": (409, "Idempotency-Key was used with a different request"),
    "idempotency_request_in_progress": (409, "A request with this Idempotency-Key is running"),
    "key_not_active": (409, "API key is revoked or expired"),
    "key_already_rotated": (409, "API key was already rotated"),
    "payment_not_waiting": (409, "Payment is not waiting: it is settled, rejected or final"),
    "payment_not_returnable": (409, "Payment cannot be returned (again, or for that amount)"),
    "swap_line_refused": (409, "The swap-line agreement or the ledger does not allow this"),
    "body_too_large": (413, "Request body is too large"),
    "unsupported_media_type": (415, "Unsupported media type"),
    "request_invalid": (422, "Request parameters are invalid"),
    "fx_quote_refused": (422, "No firm FX quote can be given for this request now"),
    "participant_role_invalid": (422, "Participant cannot hold this role"),
    # 429: the caller (or someone using its key id or address) must slow down.
    "too_many_authentication_failures": (429, "Too many failed authentications; retry later"),
    "nonce_quota_exceeded": (429, "Too many signed requests with this key; retry later"),
    "rate_limited": (429, "Too many writes from this participant or key; retry later"),
    # 5xx: the server cannot serve the request now.
    "internal_error": (500, "Internal server error"),
    "ledger_unavailable": (503, "Ledger is unavailable"),
    "server_busy": (503, "Server is busy; retry later"),
    "nonce_cache_full": (503, "Too many signed requests in flight; retry later"),
}


class ApiError(Exception):
    """A request that cannot be carried out; rendered as a problem by ``problem_response``."""

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        assert code in PROBLEMS, code
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    @property
    def status(self) -> int:
        return PROBLEMS[self.code][0]


class ServiceUnavailableError(RuntimeError):
    """The ledger service stopped accepting work (a failed commit, a broken invariant).

    Its message never holds the cause (exception text can hold paths, SQL or the request data
    that broke the commit), and clients get a fixed detail anyway (``api_error_for``). The cause
    is in the writer's ``service_failed`` log record.
    """

    def __init__(
        self, message: str = "the ledger service stopped; an operator must restart it"
    ) -> None:
        super().__init__(message)


class QueueFullError(RuntimeError):
    """The writer's queue is at ``write_queue_max``."""


class RateLimitedError(RuntimeError):
    """A write refused before it was queued: its participant or key is over its write quota, or
    has its share of the writer's queue waiting (``ServerConfig``, "Fairness limits").

    Answered 429 ``rate_limited`` with ``Retry-After`` by its own handler (``install_handlers``),
    deliberately not through ``api_error_for``: nothing was carried out, so the answer is not
    stored under the request's ``Idempotency-Key`` and the same key can be retried.
    """

    def __init__(self, detail: str, retry_after_seconds: int) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after_seconds = max(1, int(retry_after_seconds))


# The table: domain exception -> problem code. Checked in order (first isinstance match wins).
DOMAIN_ERRORS: tuple[tuple[type[Exception], str], ...] = (
    (BatchFormatError, "batch_format_invalid"),
    (BatchTooLargeError, "batch_too_large"),
    (QueueFullError, "server_busy"),
    (LedgerClosedError, "ledger_unavailable"),
    (ServiceUnavailableError, "ledger_unavailable"),
    (StoreLockedError, "ledger_unavailable"),
    (StoreFormatError, "ledger_unavailable"),
    # The database went away (a failover, a restart): retry; ``server.ha`` reconnects.
    (psycopg.OperationalError, "ledger_unavailable"),
    (InvariantViolation, "internal_error"),
)

_RETRY_AFTER = {"server_busy": "1", "ledger_unavailable": "5", "nonce_cache_full": "1"}

logger = logging.getLogger("sco_settle.server")


def api_error_for(error: BaseException) -> ApiError | None:
    """The problem a domain exception maps to, or None if it is not a known domain error."""
    if isinstance(error, ApiError):
        return error
    for kind, code in DOMAIN_ERRORS:
        if isinstance(error, kind):
            # A server-side failure's text is for the log, not the client (paths, SQL, values).
            detail = str(error) if PROBLEMS[code][0] < 500 else _SERVER_DETAILS[code]
            return ApiError(code, detail)
    return None


_SERVER_DETAILS = {
    "internal_error": "see the server log",
    "ledger_unavailable": "the ledger is not accepting work; retry later, or see the server log",
    "server_busy": "too many writes are waiting; retry later",
}


def problem_body(code: str, detail: str, request_id: str, extra: Mapping[str, Any]) -> bytes:
    status, title = PROBLEMS[code]
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": request_id,
    }
    body.update(extra)
    return json.dumps(body, separators=(",", ":")).encode()


def problem_response(error: ApiError, request_id: str) -> Response:
    headers = dict(error.headers)
    if error.code in _RETRY_AFTER:
        headers.setdefault("Retry-After", _RETRY_AFTER[error.code])
    return Response(
        problem_body(error.code, error.detail, request_id, error.extra),
        status_code=error.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def request_id_of(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def _allowed_methods(request: Request) -> list[str]:
    from starlette.routing import Match

    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def install_handlers(app: FastAPI) -> None:
    """Every error path of the app answers with a problem."""

    async def on_api_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, ApiError)
        return problem_response(error, request_id_of(request))

    async def on_validation_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        errors = [
            {
                "loc": ".".join(str(part) for part in item.get("loc", ())),
                "message": str(item.get("msg", "")),
            }
            for item in error.errors()[:20]
        ]
        first = errors[0] if errors else {"loc": "", "message": "invalid"}
        detail = f"{first['loc']}: {first['message']}"
        problem = ApiError("request_invalid", detail, extra={"errors": errors})
        return problem_response(problem, request_id_of(request))

    async def on_http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
            error.status_code, "request_malformed"
        )
        detail = "no such endpoint" if code == "not_found" else str(error.detail)
        headers = dict(error.headers or {})
        if error.status_code == 405:  # Allow: every method of the path (RFC 9110), not one route's.
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return problem_response(ApiError(code, detail, headers=headers), request_id_of(request))

    async def on_unexpected(request: Request, error: Exception) -> Response:
        mapped = api_error_for(error)
        if mapped is None or mapped.code == "internal_error":
            logger.error(
                "unhandled error",
                exc_info=error,
                extra={"event": "error", "request_id": request_id_of(request)},
            )
            mapped = ApiError("internal_error", "see the server log")
        elif mapped.code == "ledger_unavailable" and not isinstance(error, ServiceUnavailableError):
            # The answer's detail is fixed, so the cause is kept here (a stopped writer's cause
            # was logged once, when it stopped).
            logger.warning(
                "ledger unavailable",
                exc_info=error,
                extra={"event": "ledger_unavailable", "request_id": request_id_of(request)},
            )
        return problem_response(mapped, request_id_of(request))

    async def on_rate_limited(request: Request, error: Exception) -> Response:
        assert isinstance(error, RateLimitedError)
        retry = {"Retry-After": str(error.retry_after_seconds)}
        problem = ApiError("rate_limited", error.detail, headers=retry)
        return problem_response(problem, request_id_of(request))

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RateLimitedError, on_rate_limited)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    # Other exceptions reach ``logging.RequestLogMiddleware``, which answers internal_error.
    for kind, _ in DOMAIN_ERRORS:
        app.add_exception_handler(kind, on_unexpected)
