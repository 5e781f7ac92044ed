"""Dashboard sessions: an opaque random id in a cookie, everything else on the server.

Sign-in takes an API key once (verified by ``server.auth.Authenticator``, exactly as the API
verifies it) and keeps the key's ``Principal`` under a new session id. The browser holds only
that id, in a ``Secure; HttpOnly; SameSite=Strict`` cookie scoped to ``/dashboard``; the key
itself is never stored, echoed or logged.

Invariants:

- A session id is 256 random bits (``secrets``); the store keeps only its SHA-256, so a copy of
  the store's memory does not hold usable cookies.
- A session ends at the first of: sign-out, ``SESSION_SECONDS_MAX`` after sign-in,
  ``SESSION_IDLE_SECONDS_MAX`` without a request, and its key no longer being active (checked on
  every request by the routes, so revoking a key ends its sessions at their next request).
- The store holds at most ``SESSIONS_MAX`` sessions; beyond, the oldest is dropped (its holder
  signs in again). Memory stays bounded whatever signs in.
- State-changing requests (sign-in, sign-out) come from our own pages only: ``same_origin``
  checks ``Origin`` (or ``Referer``) and ``Sec-Fetch-Site`` on top of the SameSite cookie.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from sco_settle.server.auth import Principal

COOKIE_NAME = "sco_dashboard"
COOKIE_PATH = "/dashboard"
SESSION_SECONDS_MAX = 8 * 3600  # a working day: then sign in again
SESSION_IDLE_SECONDS_MAX = 30 * 60
SESSIONS_MAX = 10_000
SESSION_ID_BYTES = 32


@dataclass
class Session:
    principal: Principal
    created_at: float
    seen_at: float


class SessionStore:
    """Sessions by the SHA-256 of their id, oldest first (bounded; see the module)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sessions_max: int = SESSIONS_MAX,
        seconds_max: float = SESSION_SECONDS_MAX,
        idle_seconds_max: float = SESSION_IDLE_SECONDS_MAX,
    ) -> None:
        assert sessions_max >= 1 and seconds_max > 0 and idle_seconds_max > 0
        self.clock = clock
        self.sessions_max = sessions_max
        self.seconds_max = seconds_max
        self.idle_seconds_max = idle_seconds_max
        self._sessions: OrderedDict[bytes, Session] = OrderedDict()
        self._lock = threading.Lock()

    def create(self, principal: Principal) -> str:
        """A new session for ``principal``; returns its id (the cookie's value)."""
        session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
        now = self.clock()
        with self._lock:
            self._sessions[_digest(session_id)] = Session(principal, now, now)
            while len(self._sessions) > self.sessions_max:
                self._sessions.popitem(last=False)
        return session_id

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id (and mark it used now), or None."""
        if not session_id or len(session_id) > 128:
            return None
        digest = _digest(session_id)
        now = self.clock()
        with self._lock:
            found = self._sessions.get(digest)
            if found is None:
                return None
            if (
                now - found.created_at >= self.seconds_max
                or now - found.seen_at >= self.idle_seconds_max
            ):
                del self._sessions[digest]
                return None
            found.seen_at = now
            return found

    def delete(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._sessions.pop(_digest(session_id), None)

    def __len__(self) -> int:
        return len(self._sessions)


def _digest(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).digest()


def cookie_header(session_id: str, max_age: int = SESSION_SECONDS_MAX) -> str:
    """The ``Set-Cookie`` value for a session id (``max_age`` 0 and an empty id: clear it)."""
    return (
        f"{COOKIE_NAME}={session_id}; Path={COOKIE_PATH}; Max-Age={max_age}; Secure; HttpOnly;"
        " SameSite=Strict"
    )


def same_origin(headers: Mapping[str, str], scheme: str) -> bool:
    """Whether a state-changing request comes from a page of this server.

    The browser says where a request comes from in ``Origin`` (every POST from a form or
    ``fetch``), else ``Referer``; one of them must name this server (scheme, host and port as
    the request reached us). ``Sec-Fetch-Site``, when sent, must be ``same-origin``. A request
    that says nothing of its origin is refused: a browser always says it, so only a script
    outside a browser would not, and it has the API for its work.
    """
    host = headers.get("host", "")
    if not host:
        return False
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site != "same-origin":
        return False
    expected = f"{scheme}://{host}".lower()
    origin = headers.get("origin")
    if origin is not None:
        return origin.lower() == expected
    referer = headers.get("referer")
    if referer is None:
        return False
    parts = urlsplit(referer)
    return f"{parts.scheme}://{parts.netloc}".lower() == expected
