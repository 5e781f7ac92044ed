"""``/v1/keys``: the network operator issues, lists, revokes and rotates API keys.

A new key's secret and signing secret are in the creation (or rotation) answer only; they are
never shown again. The same operations exist offline: ``sco-settle keys ...``.

Rotation is one transaction (successor and the predecessor's expiry together), and a key is
rotated at most once: rotating a key that already has a successor is 409 ``key_already_rotated``
(rotate the successor instead), a revoked or expired one 409 ``key_not_active``.
"""

from __future__ import annotations

import json
import time
from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from sco_settle.server.auth import Principal
from sco_settle.server.errors import ApiError
from sco_settle.server.idempotency import idempotent
from sco_settle.server.keys import (
    IssuedKey,
    KeyAlreadyRotatedError,
    KeyNotActiveError,
    Role,
    UnknownKeyError,
    holder_problem,
    is_key_id,
)
from sco_settle.server.routes.common import (
    WRITE_PROBLEMS,
    After,
    Caller,
    Context,
    Limit,
    decode_cursor,
    idempotency_header_doc,
    json_response,
    page,
    problems,
)
from sco_settle.server.schemas import ApiKey, KeyCreate, KeyPage, KeyRotate
from sco_settle.server.schemas import IssuedKey as IssuedKeySchema

router = APIRouter(prefix="/v1/keys", tags=["keys"])
KeyId = Annotated[str, Path(max_length=64)]
_WRITE_DOC = {"parameters": [idempotency_header_doc()]}


def issued_json(issued: IssuedKey) -> dict[str, object]:
    return {
        "key": issued.record.public(int(time.time())),
        "api_key": issued.api_key,
        "signing_secret": issued.signing_secret,
    }


def _redact(body: bytes) -> bytes:
    """The answer as kept for idempotent replays: without the secrets, which are shown once."""
    found = json.loads(body)
    found["api_key"] = ""
    found["signing_secret"] = ""
    return json.dumps(found, separators=(",", ":")).encode()


def _operator(caller: Principal) -> None:
    caller.require(Role.NETWORK_OPERATOR)


@router.get("", operation_id="listApiKeys", response_model=KeyPage, responses=problems(400, 403))
async def list_keys(
    caller: Caller, ctx: Context, limit: Limit = 100, after: After = None
) -> Response:
    _operator(caller)
    start = decode_cursor("keys", after) or ""
    records = await run_in_threadpool(ctx.keys.list, after=start, limit=limit + 1)
    now = int(time.time())
    chosen = records[:limit]
    more = len(records) > limit
    return json_response(
        page([r.public(now) for r in chosen], chosen[-1].key_id if more else None, "keys")
    )


@router.post(
    "",
    operation_id="createApiKey",
    status_code=201,
    response_model=IssuedKeySchema,
    responses=problems(*WRITE_PROBLEMS),
    openapi_extra=_WRITE_DOC,
)
async def create_key(body: KeyCreate, request: Request, caller: Caller, ctx: Context) -> Response:
    """Issue a key; its secrets are in this answer only (and in its idempotent replay)."""

    async def operation() -> Response:
        _operator(caller)
        problem = holder_problem(ctx.network, body.participant, body.role)
        if problem is not None:
            raise ApiError("participant_role_invalid", problem)
        issued = await run_in_threadpool(
            lambda: ctx.keys.create(
                body.participant, body.role, label=body.label, actor=f"key:{caller.key_id}"
            )
        )
        return json_response(issued_json(issued), 201)

    return await idempotent(request, caller, ctx.idempotency, operation, redact=_redact)


@router.post(
    "/{key_id}/revoke",
    operation_id="revokeApiKey",
    response_model=ApiKey,
    responses=problems(*WRITE_PROBLEMS, 404),
    openapi_extra=_WRITE_DOC,
)
async def revoke_key(key_id: KeyId, request: Request, caller: Caller, ctx: Context) -> Response:
    """Revoke now: the key is refused from the next request on."""

    async def operation() -> Response:
        _operator(caller)
        if not is_key_id(key_id):
            raise ApiError("key_not_found", f"no key {key_id!r}")
        try:
            actor = f"key:{caller.key_id}"
            record = await run_in_threadpool(lambda: ctx.keys.revoke(key_id, actor=actor))
        except UnknownKeyError:
            raise ApiError("key_not_found", f"no key {key_id!r}") from None
        return json_response(record.public(int(time.time())))

    return await idempotent(request, caller, ctx.idempotency, operation)


@router.post(
    "/{key_id}/rotate",
    operation_id="rotateApiKey",
    status_code=201,
    response_model=IssuedKeySchema,
    responses=problems(*WRITE_PROBLEMS, 404),
    openapi_extra=_WRITE_DOC,
)
async def rotate_key(
    key_id: KeyId, body: KeyRotate, request: Request, caller: Caller, ctx: Context
) -> Response:
    """Issue a successor; the old key stays valid for ``grace_seconds`` (or until revoked)."""

    async def operation() -> Response:
        _operator(caller)
        if not is_key_id(key_id):
            raise ApiError("key_not_found", f"no key {key_id!r}")
        try:
            issued = await run_in_threadpool(
                lambda: ctx.keys.rotate(
                    key_id, grace_seconds=body.grace_seconds, actor=f"key:{caller.key_id}"
                )
            )
        except UnknownKeyError:
            raise ApiError("key_not_found", f"no key {key_id!r}") from None
        except KeyAlreadyRotatedError as error:  # Before its base class, KeyNotActiveError.
            raise ApiError("key_already_rotated", str(error)) from None
        except KeyNotActiveError as error:
            raise ApiError("key_not_active", str(error)) from None
        return json_response(issued_json(issued), 201)

    return await idempotent(request, caller, ctx.idempotency, operation, redact=_redact)
