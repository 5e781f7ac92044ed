"""Idempotency keys: every write names itself, and a retry gets the first answer.

Rules (``Idempotency-Key`` header, required on every write):

- Scope: the caller's participant and role (``Principal.scope``), so a retry after a key
  rotation is still recognised, and two participants never share keys.
- Same key, same request (method, path, query, ``Content-Type`` and body): the stored response,
  byte for byte, with ``Idempotency-Replayed: true``.
- Same key, different request: 409 ``idempotency_key_reused``.
- Same key while the first request is still running: 409 ``idempotency_request_in_progress``.
- At most once: ``begin`` claims the key in memory (under one lock) *before* it reads the stored
  record, and a request that finds a record gives its claim back and replays it. Two requests
  with one key can therefore never both run, whatever the interleaving (finding M5); and
  ``save`` never replaces a live record (the first answer stays), as a second line of defence.
- Stored: the answers that say what the request's content led to: 2xx, and the 4xx that are a
  decision on an authenticated, readable request (403 forbidden, 404 not found, 409 conflicts
  such as ``key_not_active``, 422 business rules). A retry with the same key gets that answer
  again, whatever has changed since.
- Not stored (``UNSTORED_STATUSES``, finding L3): the answers about the request's *framing*, not
  its content: 400 (the body cannot be read: not JSON, a malformed or oversized batch), 413
  (body too large), 415 (unsupported media type), 429, and the other transport-level 4xx. Nothing
  was done for them, so the corrected request may be retried with the same key and runs.
- A 5xx is not stored either: the request may be retried with the same key, which is safe
  because transfer and payment ids are idempotent by themselves.
- Records are kept ``idempotency_ttl_seconds`` (24 h), then pruned; an expired record is
  replaced by the next request with its key.
- Records stored before the fingerprint covered the ``Content-Type`` (no ``v2:`` prefix) are
  compared with the old fingerprint, so retries across the upgrade still replay.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from sco_settle.server.auth import Principal
from sco_settle.server.config import DatabaseKind
from sco_settle.server.db import StateDb
from sco_settle.server.errors import ApiError, api_error_for, problem_response, request_id_of

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotency-Replayed"
_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # Printable ASCII, no spaces.
_PRUNE_INTERVAL_SECONDS = 600
_PRUNE_ROWS_MAX = 10_000
_FINGERPRINT_VERSION = "v2:"
# Framing errors and transport limits: nothing was done, the corrected retry must run.
UNSTORED_STATUSES = frozenset({400, 408, 411, 413, 414, 415, 429, 431})


@dataclass(frozen=True)
class StoredResponse:
    fingerprint: str
    status: int
    media_type: str
    body: bytes


class IdempotencyStore:
    def __init__(self, db: StateDb, ttl_seconds: int) -> None:
        self.db = db
        # Where ``idempotent`` sends a response to be stored: the server routes it through its
        # writer thread (see ``LedgerService.record``); by default it is saved at once.
        self.sink: Callable[[str, str, StoredResponse], Future[None]] = self._save_now
        self.ttl_seconds = ttl_seconds
        self._running: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._pruned_at = 0.0

    def begin(
        self, scope: str, key: str, fingerprint: str, *, legacy_fingerprint: str | None = None
    ) -> StoredResponse | None:
        """The stored response to replay, or None after claiming the key (``release`` it).

        The claim comes first, under the lock, so no other request with this key can start
        between the read below and the operation; a found record gives the claim back.
        ``legacy_fingerprint`` matches records stored before fingerprints had a version.
        """
        with self._lock:
            if (scope, key) in self._running:
                raise ApiError(
                    "idempotency_request_in_progress", f"a request with key {key!r} is running"
                )
            self._running.add((scope, key))
        try:
            stored = self._stored(scope, key)
        except BaseException:
            self.release(scope, key)
            raise
        if stored is None:
            return None  # Claimed: the caller runs the operation.
        self.release(scope, key)
        matches = stored.fingerprint == fingerprint or (
            legacy_fingerprint is not None
            and not stored.fingerprint.startswith(_FINGERPRINT_VERSION)
            and stored.fingerprint == legacy_fingerprint
        )
        if not matches:
            raise ApiError(
                "idempotency_key_reused", f"key {key!r} was used for a different request"
            )
        return stored

    def _stored(self, scope: str, key: str) -> StoredResponse | None:
        rows = self.db.execute(
            "SELECT fingerprint, status, media_type, body, created_at FROM api_idempotency"
            " WHERE scope = ? AND idempotency_key = ?",
            (scope, key),
        )
        if not rows or rows[0][4] < time.time() - self.ttl_seconds:
            return None
        return StoredResponse(rows[0][0], int(rows[0][1]), rows[0][2], bytes(rows[0][3]))

    def save(self, records: list[tuple[str, str, StoredResponse]]) -> None:
        """Store responses, in one transaction (the server calls this on its writer thread).

        A live record with the same key is kept: the first answer wins. Only an expired one
        (older than the TTL, not pruned yet) is replaced.
        """
        now = int(time.time())
        with self.db.transaction() as execute:
            for scope, key, response in records:
                execute(
                    "INSERT INTO api_idempotency (scope, idempotency_key, fingerprint, status,"
                    " media_type, body, created_at) VALUES (?,?,?,?,?,?,?)"
                    " ON CONFLICT (scope, idempotency_key) DO UPDATE SET"
                    " fingerprint = excluded.fingerprint, status = excluded.status,"
                    " media_type = excluded.media_type, body = excluded.body,"
                    " created_at = excluded.created_at"
                    " WHERE api_idempotency.created_at < ?",
                    (
                        scope,
                        key,
                        response.fingerprint,
                        response.status,
                        response.media_type,
                        response.body,
                        now,
                        now - self.ttl_seconds,
                    ),
                )
        self._maybe_prune(now)

    def _save_now(self, scope: str, key: str, response: StoredResponse) -> Future[None]:
        done: Future[None] = Future()
        try:
            self.save([(scope, key, response)])
            done.set_result(None)
        except Exception as error:
            done.set_exception(error)
        return done

    def release(self, scope: str, key: str) -> None:
        with self._lock:
            self._running.discard((scope, key))

    def _maybe_prune(self, now: int) -> None:
        if now - self._pruned_at < _PRUNE_INTERVAL_SECONDS:
            return
        self._pruned_at = now
        with self.db.transaction() as execute:
            rows = execute(
                "SELECT scope, idempotency_key FROM api_idempotency WHERE created_at < ?"
                " ORDER BY created_at LIMIT ?",
                (now - self.ttl_seconds, _PRUNE_ROWS_MAX),
            )
            for scope, key in rows:
                execute(
                    "DELETE FROM api_idempotency WHERE scope = ? AND idempotency_key = ?",
                    (scope, key),
                )


def fingerprint(request: Request, body: bytes) -> str:
    """What makes two requests "the same": method, path, query, media type and body."""
    digest = hashlib.sha256()
    media_type = _normalized_media_type(request.headers.get("content-type", ""))
    for part in (request.method, request.url.path, request.url.query, media_type):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(body)
    return _FINGERPRINT_VERSION + digest.hexdigest()


def legacy_fingerprint(request: Request, body: bytes) -> str:
    """The fingerprint of records stored before it covered the media type (no version)."""
    digest = hashlib.sha256()
    for part in (request.method, request.url.path, request.url.query):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(body)
    return digest.hexdigest()


def _normalized_media_type(value: str) -> str:
    """``Application/XML; Charset=UTF-8`` -> ``application/xml;charset=utf-8``."""
    parts = (part.strip() for part in value.lower().split(";"))
    return ";".join(part for part in parts if part)


async def idempotent(
    request: Request,
    principal: Principal,
    store: IdempotencyStore,
    operation: Callable[[], Awaitable[Response]],
    *,
    redact: Callable[[bytes], bytes] | None = None,
) -> Response:
    """Run ``operation`` at most once per (scope, Idempotency-Key); replay its response.

    ``redact`` transforms the body before it is stored (and so what a replay shows): an issued
    API key's secret is shown once and never stored.
    """
    key = request.headers.get(HEADER)
    if key is None:
        raise ApiError("idempotency_key_required", f"writes need an {HEADER} header")
    if not _KEY.fullmatch(key):
        raise ApiError("idempotency_key_invalid", "1-255 printable ASCII characters, no spaces")
    body = await request.body()
    print_ = fingerprint(request, body)

    def begin() -> StoredResponse | None:
        legacy = legacy_fingerprint(request, body)
        return store.begin(principal.scope, key, print_, legacy_fingerprint=legacy)

    # A record in a local SQLite file is one primary-key read (~30 us, never waiting for the
    # writer): on the loop, it costs less than a worker thread's round trip (1-25 ms under load).
    local = store.db.kind is DatabaseKind.SQLITE
    stored = begin() if local else await run_in_threadpool(begin)
    if stored is not None:
        return Response(
            stored.body,
            status_code=stored.status,
            media_type=stored.media_type,
            headers={REPLAYED_HEADER: "true"},
        )
    keep: StoredResponse | None = None
    try:
        try:
            response = await operation()
        except Exception as error:
            mapped = api_error_for(error)
            if mapped is None or mapped.status >= 500:
                raise
            response = problem_response(mapped, request_id_of(request))
        if response.status_code < 500 and response.status_code not in UNSTORED_STATUSES:
            media_type = response.headers.get("content-type", "application/octet-stream")
            stored_body = bytes(response.body)
            if redact is not None and response.status_code < 300:
                stored_body = redact(stored_body)
            keep = StoredResponse(print_, response.status_code, media_type, stored_body)
        if keep is not None:
            await asyncio.wait_for(asyncio.wrap_future(store.sink(principal.scope, key, keep)), 300)
    finally:
        store.release(principal.scope, key)
    return response
