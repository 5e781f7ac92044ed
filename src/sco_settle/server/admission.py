"""Admission control: what is decided about an API request before FastAPI routes it and before
its body is read or parsed (a pure ASGI middleware, ``AdmissionMiddleware``).

Every request to ``/v1/...`` that carries credentials (``Authorization`` or ``X-SCOS-*``) goes
through these steps, in order; the first that refuses answers with a problem and nothing else is
done for the request:

1. **Failure limits** (``Authenticator.refusal``). A key id the request names, or its client
   address, whose failure bucket is empty is answered 429 ``too_many_authentication_failures``
   here, on the event loop: no worker thread, no database read, no hash, no body read, no
   routing. Such a refusal costs the server ~0.6 ms of CPU, about half of what it cost as a
   routed request (the rest is uvicorn's HTTP parsing and the outer middlewares).
2. **Authentication** (``Authenticator.authenticate``: it reads the key's row). A bearer
   request's body is not read for it; a signed request's body is read first (the signature
   covers it) and then handed on to the app unchanged. With the key table in a SQLite file the
   read is done on the event loop: a primary-key read of a WAL database takes ~30 us and never
   waits for the writer, while a worker thread's round trip took 1-25 ms under load (the thread
   must win the interpreter from the writer twice). A legacy (argon2) key, and the key table
   in PostgreSQL (a network round trip), are verified in a worker thread.
3. **Write quota** (``LedgerService.admit``). A write to a route that draws on the write quotas
   (one that depends on ``routes.common.write_caller``: transfer batches, payments, payment
   batches, ISO 20022 messages, cancellations, returns, re-prioritisations) is refused 429
   ``rate_limited`` here, before its body is read, if its participant or key is out of quota or
   its participant's share of the writer's queue is full. (The route checks again, with the
   write's size, when it queues it.)
4. **Write slots.** A write (any method but GET, HEAD and OPTIONS) takes one of its
   participant's ``write_requests_per_participant_max`` slots before the app runs, that is
   before its body is received, parsed and validated, and gives it back when it is answered.
   Further writes of that participant wait for a slot, in arrival order, without their bodies
   being read; beyond ``write_requests_waiting_per_participant_max`` waiting, a write is answered
   429 ``rate_limited``. So a participant that opens many connections and sends big batches on
   all of them has only its slots' worth parsed and queued at any time; the others wait in the
   kernel's socket buffers, at no cost.

**Refusals are answered late.** A failed authentication that counts as a guess (a wrong secret
or signature, an unknown, revoked or expired key id: ``WrongCredentials``) is answered after
``refusal_delay_seconds``, the same delay whatever the cause (so the timing of a 401 tells
nothing about the key id); a 429 of the steps above when its ``Retry-After`` has passed, but
after at least that delay and at most ``refusal_delay_max_seconds``: the client may not retry
sooner anyway. The wait holds no thread and no CPU, only the connection: a client that retries
at once, on however many connections, gets at most one answer per connection and delay, and
spends its time waiting instead of taking the CPU from the others (64 connections sending wrong
secrets in a closed loop made ~350 requests/s without the delay). At most
``refusals_delayed_max`` answers wait at once; beyond, they are answered at once, which is still
the cheap refusal of step 1 or 3.

The caller found in step 2 is handed to the app in the request's scope: the ``principal``
dependency (``routes.common``) takes it from there instead of authenticating again. Requests
without credentials, and every other path (``/health``, the dashboard, ``/openapi.json``), go to
the app as they are, which authenticates them as before (401 ``credentials_missing`` where a key
is needed). Every limit is a ``ServerConfig`` field ("Admission limits").
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers

from sco_settle.server.auth import (
    Authenticator,
    NeedsWorkerThread,
    Principal,
    SignedRequest,
    WrongCredentials,
)
from sco_settle.server.config import DatabaseKind, ServerConfig
from sco_settle.server.errors import ApiError, RateLimitedError, api_error_for, problem_response

# Where the authenticated caller is left for the app (``routes.common.principal``).
ADMITTED = "admitted_principal"
GUARDED_PREFIX = "/v1/"
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SIGNING_HEADERS = ("x-scos-key-id", "x-scos-timestamp", "x-scos-nonce", "x-scos-signature")


class WriteSlots:
    """Concurrent writes per name (a participant): at most ``per_name_max`` at once, the others
    waiting in arrival order, at most ``waiting_max`` of them (then ``acquire`` raises 429).

    Safe to use from several event loops (a test may serve one app from two): a waiter of
    another loop is woken through that loop.
    """

    def __init__(self, per_name_max: int, waiting_max: int) -> None:
        assert per_name_max >= 1 and waiting_max >= 0
        self.per_name_max = per_name_max
        self.waiting_max = waiting_max
        self._active: dict[str, int] = {}
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}
        self._lock = threading.Lock()

    def active(self, name: str) -> int:
        with self._lock:
            return self._active.get(name, 0)

    def waiting(self, name: str) -> int:
        with self._lock:
            return len(self._waiting.get(name, ()))

    async def acquire(self, name: str) -> None:
        with self._lock:
            active = self._active.get(name, 0)
            queue = self._waiting.get(name)
            if active < self.per_name_max and not queue:
                self._active[name] = active + 1
                return
            if len(queue or ()) >= self.waiting_max:
                raise ApiError(
                    "rate_limited",
                    f"{active} writes of {name} are running and {len(queue or ())} waiting"
                    f" (at most {self.per_name_max} and {self.waiting_max})",
                    headers={"Retry-After": "1"},
                )
            granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.setdefault(name, deque()).append(granted)
        try:
            await granted
        except asyncio.CancelledError:
            with self._lock:
                queue = self._waiting.get(name)
                if queue is not None and granted in queue:
                    queue.remove(granted)
                    if not queue:
                        del self._waiting[name]
                    raise
            if granted.done() and not granted.cancelled():
                self.release(name)  # Handed over just before the cancellation: pass it on.
            raise

    def release(self, name: str) -> None:
        """Give a slot back: to the first waiter of ``name``, else free it."""
        with self._lock:
            queue = self._waiting.get(name)
            if queue:
                granted = queue.popleft()
                if not queue:
                    del self._waiting[name]
                _hand_over(granted, self, name)  # The slot stays counted: it changes hands.
                return
            active = self._active.get(name, 0) - 1
            if active > 0:
                self._active[name] = active
            else:
                self._active.pop(name, None)


def write_slots(config: ServerConfig) -> WriteSlots:
    return WriteSlots(
        config.write_requests_per_participant_max,
        config.write_requests_waiting_per_participant_max,
    )


def _hand_over(granted: asyncio.Future[None], slots: WriteSlots, name: str) -> None:
    def grant() -> None:
        if granted.done():  # Cancelled meanwhile: the slot goes to the next one.
            slots.release(name)
        else:
            granted.set_result(None)

    loop = granted.get_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        loop.call_soon(grant)
    else:
        loop.call_soon_threadsafe(grant)


class AdmissionMiddleware:
    """Pure ASGI; see the module docs. Sits inside ``RequestLogMiddleware`` (which gives the
    request its id, bounds its body and logs it)."""

    def __init__(
        self,
        app: Any,
        *,
        authenticator: Authenticator,
        config: ServerConfig,
        admit: Callable[[Principal], None],
        quota_routes: Sequence[tuple[re.Pattern[str], frozenset[str]]],
        slots: WriteSlots | None = None,
    ) -> None:
        """``admit``: raises ``RateLimitedError`` for a caller out of write quota or queue
        share (``LedgerService.admit``); ``quota_routes``: the (path pattern, methods) of the
        routes that draw on the quotas (``quota_routes``); ``slots``: the write slots (by
        default new ones, as ``config`` says)."""
        self.app = app
        self.authenticator = authenticator
        self.admit = admit
        self.quota_routes = tuple(quota_routes)
        self.delay_seconds = config.refusal_delay_seconds
        self.delay_max_seconds = max(config.refusal_delay_max_seconds, self.delay_seconds)
        self.delayed_max = config.refusals_delayed_max
        self.slots = slots or write_slots(config)
        # A local SQLite key table is read on the loop (see the module docs).
        self.quick = authenticator.keys.db.kind is DatabaseKind.SQLITE
        self._delayed = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith(GUARDED_PREFIX):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        signed = any(name in headers for name in _SIGNING_HEADERS)
        if "authorization" not in headers and not signed:
            await self.app(scope, receive, send)  # The app answers credentials_missing.
            return
        client = scope.get("client")
        host = str(client[0]) if client else ""
        refused = self.authenticator.refusal(headers, host)
        if refused is not None:
            await self._answer_late(scope, receive, send, refused)
            return
        body: bytes | None = None
        if signed:  # The signature covers the body: read it now, hand it on below.
            body = await _read_body(receive)
            if body is None:
                return  # The client went away.
        state = scope.setdefault("state", {})
        request = SignedRequest(
            scope["method"], _target(scope), body or b"", host, str(state.get("request_id", ""))
        )
        try:
            caller = await self._authenticate(headers, request)
        except Exception as error:
            problem = api_error_for(error)
            if problem is None or problem.code == "internal_error":
                raise
            if isinstance(error, WrongCredentials) or problem.status == 429:  # Refusals.
                await self._answer_late(scope, receive, send, problem)
            else:
                await _answer(scope, receive, send, problem)
            return
        state[ADMITTED] = caller
        state["principal"] = caller  # For the request's log line.
        app_receive = receive if body is None else _replaying(body, receive)
        if scope["method"] in _READ_METHODS:
            await self.app(scope, app_receive, send)
            return
        try:
            if self._draws_on_quota(scope):
                self.admit(caller)
            await self.slots.acquire(caller.participant)
        except RateLimitedError as error:
            retry = {"Retry-After": str(error.retry_after_seconds)}
            await self._answer_late(
                scope, receive, send, ApiError("rate_limited", error.detail, headers=retry)
            )
            return
        except ApiError as error:
            await self._answer_late(scope, receive, send, error)
            return
        try:
            await self.app(scope, app_receive, send)
        finally:
            self.slots.release(caller.participant)

    async def _authenticate(self, headers: Headers, request: SignedRequest) -> Principal:
        if self.quick:
            try:
                return self.authenticator.authenticate(headers, request, quick=True)
            except NeedsWorkerThread:
                pass
        return await run_in_threadpool(self.authenticator.authenticate, headers, request)

    def _draws_on_quota(self, scope: dict[str, Any]) -> bool:
        path, method = scope.get("path", ""), scope["method"]
        return any(
            method in methods and pattern.match(path) for pattern, methods in self.quota_routes
        )

    def delay_of(self, error: ApiError) -> float:
        """How long a refusal waits: the fixed delay, or a 429's ``Retry-After`` (capped)."""
        if self.delay_seconds <= 0:
            return 0.0
        retry_after = error.headers.get("Retry-After", "") if error.status == 429 else ""
        if not retry_after.isdigit():
            return self.delay_seconds
        return max(self.delay_seconds, min(float(retry_after), self.delay_max_seconds))

    async def _answer_late(self, scope: Any, receive: Any, send: Any, error: ApiError) -> None:
        """A refusal, answered after its delay (at once when too many answers are already
        waiting)."""
        delay = self.delay_of(error)
        if delay > 0 and self._delayed < self.delayed_max:
            self._delayed += 1
            try:
                await asyncio.sleep(delay)
            finally:
                self._delayed -= 1
        await _answer(scope, receive, send, error)


def quota_routes(
    routers: Iterable[Any], dependency: Callable[..., Any]
) -> list[tuple[re.Pattern[str], frozenset[str]]]:
    """(path pattern, methods) of every route of ``routers`` that depends, at any depth, on
    ``dependency`` (``routes.common.write_caller``): the writes that draw on the quotas."""
    found = []
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute) and _depends_on(route.dependant, dependency):
                found.append((route.path_regex, frozenset(route.methods or ())))
    return found


def _depends_on(dependant: Any, dependency: Callable[..., Any]) -> bool:
    return any(
        sub.call is dependency or _depends_on(sub, dependency) for sub in dependant.dependencies
    )


async def _answer(scope: Any, receive: Any, send: Any, error: ApiError) -> None:
    request_id = str(scope.get("state", {}).get("request_id", ""))
    await problem_response(error, request_id)(scope, receive, send)


def _target(scope: dict[str, Any]) -> str:
    """The raw path and query, as a signature covers them."""
    target = scope.get("raw_path") or scope.get("path", "").encode()
    text = bytes(target).decode("latin-1")
    if scope.get("query_string"):
        text += "?" + scope["query_string"].decode("latin-1")
    return text


async def _read_body(receive: Any) -> bytes | None:
    """The whole body (its size is bounded by ``RequestLogMiddleware``), or None on a
    disconnect."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(body: bytes, receive: Any) -> Any:
    """A ``receive`` that gives the app the body read already, then the connection's events."""
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return dict(await receive())

    return replay
