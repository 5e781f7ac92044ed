"""Structured logs: one JSON object per line, every request with its request id.

What is never logged: API keys and signing secrets, the ``Authorization`` and ``X-SCOS-*``
headers, request and response bodies, query strings (cursors encode ids), and full account
numbers: a logged path has every IBAN and every run of 8+ digits masked to its last 4 characters
(``…1234``). An API key (anything starting ``scos_``) is masked whole wherever it appears, and in
a path so is any run of 24+ characters of the base64url alphabet that is not all digits or an
IBAN (a signing secret, a hex or base64 token a careless client put there). The route template
(``/v1/accounts/{account_id}``) is logged alongside.

``X-Request-Id``: taken from the request when it is 1-128 of ``[A-Za-z0-9._-]``, else made up;
always returned on the response and written into problem bodies and log lines.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import re
import secrets
import sys
import time
from typing import Any, TextIO

from sco_settle.server.errors import ApiError, problem_body

LOGGER_NAME = "sco_settle.server"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_IBAN = re.compile(r"\b[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}\b")
_DIGITS = re.compile(r"[0-9]{8,}")
_API_KEY = re.compile(r"scos_[A-Za-z0-9_-]*", re.IGNORECASE)
_TOKEN = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{24,}(?![A-Za-z0-9_-])")
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"color_message"}
# Request ids made up here: random per process, then a counter (cheaper than uuid4 per request).
_REQUEST_ID_PREFIX = secrets.token_hex(6)
_request_numbers = itertools.count(1)


def mask(text: str) -> str:
    """Mask API keys whole, and IBANs and long digit runs (account and transfer ids) to their
    last 4 characters."""
    text = _API_KEY.sub("scos_…", text)
    text = _IBAN.sub(lambda m: "…" + m.group(0)[-4:], text)
    return _DIGITS.sub(lambda m: "…" + m.group(0)[-4:], text)


def mask_path(path: str) -> str:
    """``mask``, and also every secret-like token: a path has no long words of its own (unlike
    a message or a traceback, whose identifiers stay readable)."""
    return mask(_TOKEN.sub(_mask_token, _API_KEY.sub("scos_…", path)))


def _mask_token(match: re.Match[str]) -> str:
    found = match.group(0)
    if found.isdigit() or _IBAN.fullmatch(found):
        return found  # An id or an IBAN: masked to its last 4 characters below.
    return "…"


class JsonLinesFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": mask(record.getMessage()),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_"):
                line[name] = value
        if record.exc_info:
            line["exception"] = mask(self.formatException(record.exc_info))
        return json.dumps(line, default=str, ensure_ascii=False)


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """JSON lines on ``stream`` (stderr) for the server's and uvicorn's loggers."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLinesFormatter())
    for name in (LOGGER_NAME, "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
    logging.getLogger("uvicorn.access").disabled = True  # It logs raw paths and queries.


class RequestLogMiddleware:
    """Pure ASGI: request id in and out, the body size limit, one log line per request, and a
    problem answer for any exception nothing else handled."""

    def __init__(self, app: Any, *, body_bytes_max: int) -> None:
        self.app = app
        self.body_bytes_max = body_bytes_max
        self.logger = logging.getLogger(LOGGER_NAME)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        status = {"code": 0, "started": False}

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["started"] = True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        too_large = _declared_length(scope) > self.body_bytes_max
        received = 0

        async def limited_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.body_bytes_max:
                    raise _BodyTooLarge
            return dict(message)

        try:
            if too_large:
                raise _BodyTooLarge
            await self.app(scope, limited_receive, send_with_id)
        except _BodyTooLarge:
            error = ApiError("body_too_large", f"bodies are limited to {self.body_bytes_max} bytes")
            await _send_problem(send_with_id, error, request_id, status)
        except Exception as error:
            self.logger.error(
                "unhandled error",
                exc_info=error,
                extra={"event": "error", "request_id": request_id},
            )
            await _send_problem(
                send_with_id, ApiError("internal_error", "see the server log"), request_id, status
            )
        finally:
            self._log(scope, request_id, status["code"], started)

    def _log(self, scope: dict[str, Any], request_id: str, status: int, started: float) -> None:
        route = scope.get("route")
        principal = scope.get("state", {}).get("principal")
        self.logger.info(
            "request",
            extra={
                "event": "request",
                "request_id": request_id,
                "method": scope.get("method", ""),
                "path": mask_path(scope.get("path", "")),
                "route": getattr(route, "path", None),
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                "key_id": getattr(principal, "key_id", None),
                "participant": getattr(principal, "participant", None),
                "role": getattr(getattr(principal, "role", None), "value", None),
            },
        )


class _BodyTooLarge(Exception):
    pass


async def _send_problem(send: Any, error: ApiError, request_id: str, status: dict) -> None:
    if status["started"]:
        return  # Too late for a problem: the client sees a cut connection.
    body = problem_body(error.code, error.detail, request_id, {})
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _request_id(scope: dict[str, Any]) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if _REQUEST_ID.fullmatch(text):
                return text
            break
    return f"{_REQUEST_ID_PREFIX}{next(_request_numbers):010x}"


def _declared_length(scope: dict[str, Any]) -> int:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0
