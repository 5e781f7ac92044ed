"""Live updates: the writer's news of each recorded batch of payments, as server-sent events.

The ledger service calls ``LiveHub.publish`` on its writer thread after each durable record of
payment outcomes (``server.service.PublishingRecords``). ``publish`` only hands the batch's
parties over to the event loop, so the writer never waits for a browser. On the loop, each open
event stream whose caller may see one of those payments (``Principal.may_read_payment``, the
API's own rule) is woken; it sends one small ``change`` event, and the page then fetches its
own view again. The event carries no data: a participant learns nothing from it but that
something it may see has changed, and only when it may see it.

Limits: at most ``STREAMS_MAX`` open streams in all and ``STREAMS_PER_SESSION_MAX`` per session
(more browser tabs get 429); a stream lasts at most ``STREAM_SECONDS_MAX``, then the browser
reconnects by itself (after ``RETRY_MS``). The bounded life keeps a server's graceful shutdown
short: uvicorn waits for open responses, and an event stream never ends on its own.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field

from sco_settle.payments.model import Payment
from sco_settle.server.auth import Principal

STREAMS_MAX = 1000
STREAMS_PER_SESSION_MAX = 8
STREAM_SECONDS_MAX = 20.0
KEEPALIVE_SECONDS = 10.0
RETRY_MS = 500

# What a stream's caller may see of a payment: (debtor agent, creditor agent, currency,
# creditor currency), the arguments of ``Principal.may_read_payment``.
Parties = tuple[str, str, str, str]


@dataclass(eq=False)
class Stream:
    principal: Principal
    session: str  # the session's digest, for the per-session bound
    loop: asyncio.AbstractEventLoop
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class StreamsFull(Exception):
    """No room for another stream (in all, or for this session)."""


class LiveHub:
    def __init__(self) -> None:
        self._streams: set[Stream] = set()
        self._loops: tuple[asyncio.AbstractEventLoop, ...] = ()
        self._lock = threading.Lock()

    # -- the writer thread ------------------------------------------------------------------

    def publish(self, payments: list[Payment]) -> None:
        """Called on the writer thread: hand the payments' parties to the streams' loops."""
        loops = self._loops
        if not loops or not payments:
            return
        parties = {
            (p.debtor_agent, p.creditor_agent, p.currency, p.creditor_currency) for p in payments
        }
        for loop in loops:
            if not loop.is_closed():
                loop.call_soon_threadsafe(self._wake, parties)

    # -- the event loop ---------------------------------------------------------------------

    def _wake(self, parties: Iterable[Parties]) -> None:
        chosen = tuple(parties)
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            if any(stream.principal.may_read_payment(*one) for one in chosen):
                stream.changed.set()

    def open(self, principal: Principal, session: str) -> Stream:
        loop = asyncio.get_running_loop()
        with self._lock:
            if len(self._streams) >= STREAMS_MAX:
                raise StreamsFull("too many dashboard event streams are open")
            if sum(s.session == session for s in self._streams) >= STREAMS_PER_SESSION_MAX:
                raise StreamsFull("too many dashboard event streams are open for this session")
            stream = Stream(principal, session, loop)
            self._streams.add(stream)
            self._loops = tuple({s.loop for s in self._streams})
        return stream

    def close(self, stream: Stream) -> None:
        with self._lock:
            self._streams.discard(stream)
            self._loops = tuple({s.loop for s in self._streams})

    def __len__(self) -> int:
        return len(self._streams)


async def events(
    hub: LiveHub,
    stream: Stream,
    still_signed_in: Callable[[], bool],
    *,
    seconds_max: float = STREAM_SECONDS_MAX,
) -> AsyncIterator[bytes]:
    """The text/event-stream body: ``retry``, then a ``change`` event each time something the
    caller may see was recorded, keep-alive comments in between; ends with the session, or
    after ``seconds_max`` (the browser reconnects)."""
    deadline = time.monotonic() + seconds_max
    sent = 0
    try:
        yield f"retry: {RETRY_MS}\n: connected\n\n".encode()
        while still_signed_in():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                await asyncio.wait_for(stream.changed.wait(), min(left, KEEPALIVE_SECONDS))
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            stream.changed.clear()
            sent += 1
            yield f"event: change\nid: {sent}\ndata: {{}}\n\n".encode()
    finally:
        hub.close(stream)
