"""High availability on PostgreSQL: one writing server process among several, fenced when it
loses the database, and writing again on the promoted standby by itself (``serve --ha``).

The deployment this runs on (a primary, a synchronous standby and pg_auto_failover's monitor)
and why each part is there: docs/deployment-ha.md. Three parts here:

- ``failover_url``: the database URL with what failover needs from libpq, where the URL does not
  set it already: ``target_session_attrs=read-write`` (of the hosts listed, connect only to the
  one that takes writes: after a failover, the promoted standby), a connect timeout per host,
  TCP keepalives and a TCP user timeout (a dead peer is noticed in seconds, not hours).
- ``WriterLock``: a PostgreSQL session-level advisory lock that only the writing process holds.
  Another process waits for it as a hot standby (it polls ``pg_try_advisory_lock``, so that it
  can stop, and reconnect after a failover: an advisory lock lives in one server's memory and a
  promoted standby starts with none). The lock chooses the writer; the store's own lock and
  writer epoch (``storage.postgres``) make a second writer impossible, not merely unlikely: a
  writer opening the store bumps the epoch, and every commit of an older writer fails from then.
- ``HaNode``: the ASGI app the server runs in HA mode, and the thread behind it. Each *writer
  term* (see docs/GLOSSARY.md) takes the writer lock, opens the ledger afresh from what is
  durable on the current primary (``create_app``: recovery included, the store's epoch bumped)
  and serves it; requests go to that term's app. The term ends when the writer lock is lost
  (the primary died, or the session was ended) or the ledger service stopped on a failed commit;
  the node stops forwarding first, closes the term and takes the lock again, with backoff
  (``ReconnectPolicy``). Between terms every request but ``/health`` is answered 503
  ``ledger_unavailable`` with ``Retry-After`` and the node's role, at once.

Why nothing unproven is acknowledged across a failover: an answer is given only after its commit
returned, and with a synchronous standby (``synchronous_commit=on``, which the stores set, and
the formation's ``synchronous_standby_names``) a commit returns only once the standby has it. A
commit cut off by the primary's death raises, is not acknowledged, and the client's retry with
its idempotency key finds the effect on the new primary or makes it there (transfer and payment
ids are idempotency keys). Each term reloads the in-memory ledger from the new primary, so the
node never answers from state the new primary does not hold.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import threading
import uuid
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import psycopg
from psycopg.conninfo import conninfo_to_dict
from starlette.responses import Response

from sco_settle.server.config import ServerConfig
from sco_settle.server.errors import ApiError, problem_response
from sco_settle.storage.sqlite import StoreLockedError

__all__ = [
    "WRITER_LOCK_NAMESPACE",
    "HaNode",
    "HaSettings",
    "NodeRole",
    "ReconnectPolicy",
    "WriterLock",
    "failover_url",
    "is_connection_loss",
]

# Prefix of the writer lock's key, hashed with the schema. Not the store's own lock key
# (``storage.postgres``): the writer lock is taken before the store is opened, by another session.
WRITER_LOCK_NAMESPACE = "sco_settle.writer:"
logger = logging.getLogger("sco_settle.server")

ASGIApp = Callable[..., Any]


class NodeRole(enum.StrEnum):
    """What a server process in HA mode is doing now."""

    STANDBY = "standby"  # waiting for the writer lock (another process writes, or none can)
    OPENING = "opening"  # holds the writer lock, opening the ledger from the primary
    WRITER = "writer"  # serving: its writer term is open
    RECONNECTING = "reconnecting"  # its term ended (primary lost, fenced): taking the lock again
    FAILED = "failed"  # its term ended on something reconnecting cannot mend: see the log
    STOPPED = "stopped"  # shut down


@dataclass(frozen=True)
class ReconnectPolicy:
    """Exponential backoff between attempts to reach the database: ``delay_first_seconds``,
    then times ``factor`` each attempt, never more than ``delay_max_seconds``."""

    delay_first_seconds: float = 0.1
    delay_max_seconds: float = 1.0
    factor: float = 2.0

    def __post_init__(self) -> None:
        assert 0 < self.delay_first_seconds <= self.delay_max_seconds, self
        assert self.factor >= 1, self.factor

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 0)."""
        assert attempt >= 0, attempt
        growth = self.factor ** min(attempt, 64)  # Bounded: no float overflow after many tries.
        return min(self.delay_max_seconds, self.delay_first_seconds * growth)


@dataclass(frozen=True)
class HaSettings:
    reconnect: ReconnectPolicy = ReconnectPolicy()
    # How often a writer checks that it still holds the writer lock and its service runs, and a
    # standby retries the lock: the longest a lost primary goes unnoticed without writes.
    check_interval_seconds: float = 0.2
    connect_timeout_seconds: int = 2  # per host listed (libpq ``connect_timeout``)
    retry_after_seconds: int = 1  # the Retry-After of the 503 answered between terms


def failover_url(url: str, settings: HaSettings) -> str:
    """``url`` plus the libpq parameters failover needs (module docstring), each only where the
    URL does not set it itself."""
    wanted = {
        "target_session_attrs": "read-write",
        "connect_timeout": str(settings.connect_timeout_seconds),
        "keepalives": "1",
        "keepalives_idle": "5",
        "keepalives_interval": "1",
        "keepalives_count": "3",
        "tcp_user_timeout": "5000",  # ms unacknowledged on the wire before the connection drops
    }
    present = conninfo_to_dict(url)  # libpq's own parser: raises on a malformed URL
    missing = {name: value for name, value in wanted.items() if name not in present}
    if not missing:
        return url
    return url + ("&" if "?" in url else "?") + urlencode(missing)


def is_connection_loss(error: BaseException) -> bool:
    """True if ``error`` or one of its causes says the database was lost (the connection broke,
    the server went away, no host took writes) or this writer was fenced: what a new term on
    the current primary mends. False for anything else (a broken invariant, a bug)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, psycopg.OperationalError | StoreLockedError):
            return True  # StoreLockedError covers StoreFencedError, its subclass.
        current = current.__cause__ or current.__context__
    return False


class WriterLock:
    """The writer lock: a session-level advisory lock on its own connection. Held while that
    session lives; released when it ends, whether by ``release`` or by the process dying."""

    def __init__(self, dsn: str, schema: str, settings: HaSettings) -> None:
        self.dsn = dsn
        self.key = WRITER_LOCK_NAMESPACE + schema
        self.application_name = f"sco-settle writer-lock {schema}"
        self.settings = settings
        self._connection: psycopg.Connection[Any] | None = None
        self._taken = False  # pg_try_advisory_lock succeeded on the current connection

    @property
    def connected(self) -> bool:
        return self._connection is not None

    def try_take(self) -> bool:
        """Take the lock if it is free. True: this process holds it now. False: another session
        holds it, or the database cannot be reached (``connected`` tells which)."""
        assert not self._taken, "already taken: a second take would stack on the first"
        try:
            if self._connection is None:
                self._connection = psycopg.connect(
                    self.dsn,
                    autocommit=True,
                    connect_timeout=self.settings.connect_timeout_seconds,
                    application_name=self.application_name,
                )
                self._connection.execute("SET statement_timeout = '5s'")
            row = self._connection.execute(
                "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (self.key,)
            ).fetchone()
        except psycopg.Error as error:
            logger.info("writer lock: database not reachable (%s)", error, extra=_event("ha_db"))
            self.release()
            return False
        assert row is not None
        self._taken = bool(row[0])
        return self._taken

    def held(self) -> bool:
        """True if this session still holds the lock on a live server. Any failure to say so
        (the connection broke: the primary died, or the session was ended) is False."""
        if self._connection is None or not self._taken:
            return False
        try:
            row = self._connection.execute(_HELD_SQL, (self.key,)).fetchone()
        except psycopg.Error:
            self.release()
            return False
        return row is not None and bool(row[0])

    def release(self) -> None:
        connection, self._connection = self._connection, None
        self._taken = False
        if connection is None:
            return
        try:
            if not connection.broken:  # Freed now, not when the server notices the close.
                connection.execute("SELECT pg_advisory_unlock_all()")
        except psycopg.Error:
            pass
        finally:
            connection.close()


# An advisory lock on a bigint key shows in pg_locks as (classid, objid) = (high, low) 32 bits.
_HELD_SQL = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND pid = pg_backend_pid() AND objsubid = 1"
    " AND ((classid::bigint << 32) | objid::bigint) = hashtextextended(%s, 0))"
)


def _event(name: str, **fields: Any) -> dict[str, Any]:
    return {"event": name, **fields}


class _TermEnded(Exception):
    """Why a writer term ended, when it was not the service's own failure."""


class HaNode:
    """The server process in HA mode (module docstring): an ASGI app, and the thread that runs
    writer terms. ``open_app`` opens the ledger and returns the term's app (``create_app``);
    ``close_app`` closes it (``close_context`` of its context)."""

    def __init__(
        self,
        config: ServerConfig,
        settings: HaSettings,
        open_app: Callable[[ServerConfig], Any],
        close_app: Callable[[Any], None],
    ) -> None:
        self.config = config
        self.settings = settings
        self._open_app = open_app
        self._close_app = close_app
        self.role = NodeRole.STANDBY
        self.terms = 0  # writer terms this process has opened
        self.app: Any = None  # the open term's app, while ``role`` is WRITER
        self.writer_lock = WriterLock(config.database.dsn, config.database.schema, settings)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sco-settle-ha", daemon=True)

    # -- life ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._end_term(NodeRole.STOPPED)

    def _set_role(self, role: NodeRole) -> None:
        if role is not self.role:
            logger.info("node role: %s", role.value, extra=_event("ha_role", role=role.value))
        self.role = role

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set() and self.role is not NodeRole.FAILED:
            if not self._take_writer_lock():
                return
            if self._open_term():
                attempt = 0
                self._end_term(self._watch_term())
                continue
            failed = self.role is NodeRole.FAILED
            self._end_term(NodeRole.FAILED if failed else NodeRole.RECONNECTING)
            self._stop.wait(self.settings.reconnect.delay(attempt))
            attempt += 1

    def _take_writer_lock(self) -> bool:
        """Wait until this process holds the writer lock (True), or is stopped (False)."""
        attempt = 0
        while not self._stop.is_set():
            if self.writer_lock.try_take():
                return True
            if self.writer_lock.connected:  # Held by another process: a hot standby polls.
                attempt = 0
                self._stop.wait(self.settings.check_interval_seconds)
            else:
                self._stop.wait(self.settings.reconnect.delay(attempt))
                attempt += 1
        return False

    # -- writer terms -------------------------------------------------------------------------

    def _open_term(self) -> bool:
        """Open the ledger under the writer lock and start forwarding to it. False if opening
        failed (the role says whether retrying can help) or the lock was lost meanwhile."""
        self._set_role(NodeRole.OPENING)
        try:
            app = self._open_app(self.config)
        except Exception as error:
            retry = is_connection_loss(error)
            logger.log(
                logging.WARNING if retry else logging.CRITICAL,
                "writer term could not open the ledger",
                exc_info=error,
                extra=_event("ha_open_failed"),
            )
            if not retry:
                self._set_role(NodeRole.FAILED)
            return False
        self.app = app
        # An acknowledged answer must survive a failover like the write it answers for.
        app.state.context.state_db.always_durable()
        if not self.writer_lock.held():  # Lost while opening: never serve from it.
            return False
        self.terms += 1
        self._set_role(NodeRole.WRITER)
        logger.info(
            "writer term %d opened", self.terms, extra=_event("ha_term_opened", term=self.terms)
        )
        return True

    def _watch_term(self) -> NodeRole:
        """Wait until the open term must end; the role to end it with."""
        service = self.app.state.context.service
        while not self._stop.wait(self.settings.check_interval_seconds):
            failure = service.failure
            if failure is None and self.writer_lock.held():
                continue
            cause = failure if failure is not None else _TermEnded("the writer lock was lost")
            retry = is_connection_loss(cause) or failure is None
            logger.log(
                logging.WARNING if retry else logging.CRITICAL,
                "writer term %d ended",
                self.terms,
                exc_info=cause,
                extra=_event("ha_term_ended", term=self.terms),
            )
            return NodeRole.RECONNECTING if retry else NodeRole.FAILED
        return NodeRole.STOPPED

    def _end_term(self, role: NodeRole) -> None:
        """Stop forwarding (first: no request reaches the old term from now on), close the
        term's ledger (releasing the store's lock), then the writer lock."""
        self._set_role(role)
        app, self.app = self.app, None
        if app is not None:
            try:
                self._close_app(app)
            except Exception as error:  # Its connections are gone: nothing left to save.
                logger.warning("closing a writer term failed", exc_info=error)
        self.writer_lock.release()

    # -- ASGI ---------------------------------------------------------------------------------

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        app = self.app
        if app is not None and self.role is NodeRole.WRITER:
            await app(scope, receive, send)
            return
        if scope["type"] == "http":
            await self._unavailable(scope)(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1013})  # 1013: try again later

    async def _lifespan(self, receive: Any, send: Any) -> None:
        """The node's own lifespan; a term's app is opened and closed by the node, so its own
        lifespan is never run."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.to_thread(self.stop)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _unavailable(self, scope: Mapping[str, Any]) -> Response:
        """The answer between terms: 503 at once, never a wait for the database."""
        role = self.role
        retry = {"Retry-After": str(self.settings.retry_after_seconds)}
        if scope.get("path") == "/health":
            body = {"status": role.value, "mode": self.config.mode.value, "terms": self.terms}
            return Response(
                _json(body), status_code=503, media_type="application/json", headers=retry
            )
        detail = {
            NodeRole.STANDBY: "this server is a hot standby: another process writes",
            NodeRole.FAILED: "this server stopped; see its log",
        }.get(role, "this server is reconnecting to the database's primary; retry")
        problem = ApiError("ledger_unavailable", detail, headers=retry, extra={"role": role.value})
        return problem_response(problem, uuid.uuid4().hex)


def _json(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()
