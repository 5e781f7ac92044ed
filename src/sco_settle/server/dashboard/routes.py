"""``/dashboard``: server-rendered pages over the API's reads, a sign-in, and live updates.

Handlers only translate, as the API's do: they resolve the session to the caller's
``Principal``, run a ``views`` function in the thread pool, and render its template. None of
these routes is in the OpenAPI document (``include_in_schema=False``): they are pages for
people, not part of the API's contract.

Every page answers with a strict Content-Security-Policy (scripts, styles, fonts and
connections from this server only; no frames), ``no-store`` caching (the pages hold private
data) and ``nosniff``. The chart library is plotly.js, served from the installed ``plotly``
Python package (``plotly.offline.get_plotlyjs``), so a page loads nothing from elsewhere.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import importlib.metadata
import re
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import jinja2
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from sco_settle.payments.model import PaymentStatus
from sco_settle.server.auth import Principal, SignedRequest
from sco_settle.server.dashboard import views
from sco_settle.server.dashboard.live import LiveHub, StreamsFull, events
from sco_settle.server.dashboard.sessions import (
    COOKIE_NAME,
    Session,
    SessionStore,
    cookie_header,
    same_origin,
)
from sco_settle.server.errors import ApiError, request_id_of
from sco_settle.server.keys import KeyStatus, Role
from sco_settle.server.routes.common import AppContext, context_of

router = APIRouter(prefix="/dashboard", include_in_schema=False)

_HERE = Path(__file__).resolve().parent
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(_HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
_STATIC = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}
SIGN_IN_BYTES_MAX = 4096
API_KEY_CHARS_MAX = 200
PAYMENT_ID_CHARS_MAX = 300
CURSOR_DIGITS_MAX = 19
MESSAGE_NAMES = frozenset({"in", "out", "debit", "credit"})  # ``messages.PaymentMessage.name``
CORRIDOR = re.compile(r"[A-Z]{2}-[A-Z]{2}")
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'"
    " 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self';"
    " object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# The views, in the order of the navigation: (path, title, roles that may open it; None: all).
VIEWS: tuple[tuple[str, str, tuple[Role, ...] | None], ...] = (
    ("corridors", "Corridors", None),
    ("map", "Map", None),
    ("liquidity", "Liquidity", None),
    ("payments", "Payments", None),
    ("cycles", "Cycles", views.CYCLE_ROLES),
    ("rejections", "Rejections", None),
)


@dataclass
class DashboardState:
    """Per app: the sessions and the live hub (the hub listens to the app's ledger service)."""

    sessions: SessionStore = field(default_factory=SessionStore)
    hub: LiveHub = field(default_factory=LiveHub)


def state_of(request: Request, ctx: AppContext) -> DashboardState:
    found: DashboardState | None = getattr(request.app.state, "dashboard", None)
    if found is None:  # On the event loop: no other request runs between the check and the set.
        found = request.app.state.dashboard = DashboardState()
        ctx.service.record_listeners.append(found.hub.publish)
    return found


# -- sessions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedIn:
    ctx: AppContext
    state: DashboardState
    session_id: str
    session: Session

    @property
    def caller(self) -> Principal:
        return self.session.principal


async def signed_in(request: Request) -> SignedIn | None:
    """The request's live session, or None. The key behind it must still be active: revoking
    or expiring a key ends its dashboard sessions at their next request, as for the API."""
    ctx = context_of(request)
    state = state_of(request, ctx)
    session_id = request.cookies.get(COOKIE_NAME)
    session = state.sessions.get(session_id)
    if session is None or session_id is None:
        return None
    record = await run_in_threadpool(ctx.keys.find_for_authentication, session.principal.key_id)
    if record is None or record.status(int(time.time())) is not KeyStatus.ACTIVE:
        state.sessions.delete(session_id)
        return None
    return SignedIn(ctx, state, session_id, session)


def _to_sign_in() -> Response:
    return _secured(RedirectResponse("/dashboard/sign-in", status_code=303))


@router.get("")
async def home(request: Request) -> Response:
    if await signed_in(request) is None:
        return _to_sign_in()
    return _secured(RedirectResponse("/dashboard/corridors", status_code=303))


@router.get("/sign-in")
async def sign_in_form(request: Request) -> Response:
    return _page("sign_in.html", None, "sign-in", title="Sign in", error=None)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    """Verify the posted API key exactly as the API does (``Authenticator.authenticate``:
    digests, failure limits, logging) and start a session for it."""
    ctx = context_of(request)
    state = state_of(request, ctx)
    if not same_origin(request.headers, request.url.scheme):
        return _message(None, 403, "Refused", "Sign in from the dashboard's own page.")
    body = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded" or len(body) > SIGN_IN_BYTES_MAX:
        return _message(None, 400, "Refused", "Send the sign-in form.")
    fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=4)
    api_key = (fields.get("api_key") or [""])[0].strip()
    if not api_key or len(api_key) > API_KEY_CHARS_MAX or not api_key.isprintable():
        return _sign_in_refused(401, "That API key was not accepted.")
    client = request.client.host if request.client else ""
    signed = SignedRequest("POST", "/dashboard/sign-in", b"", client, request_id_of(request))
    headers = {"authorization": f"Bearer {api_key}"}
    try:
        principal = await run_in_threadpool(ctx.authenticator.authenticate, headers, signed)
    except ApiError as error:
        if error.code == "too_many_authentication_failures":
            wait = error.headers.get("Retry-After", "1")
            return _sign_in_refused(429, f"Too many failed sign-ins. Try again in {wait} s.")
        if error.code == "server_busy":
            return _sign_in_refused(503, "The server is busy. Try again in a moment.")
        return _sign_in_refused(401, "That API key was not accepted.")
    state.sessions.delete(request.cookies.get(COOKIE_NAME))  # A fresh id at every sign-in.
    response = RedirectResponse("/dashboard/corridors", status_code=303)
    response.headers["Set-Cookie"] = cookie_header(state.sessions.create(principal))
    return _secured(response)


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    ctx = context_of(request)
    state = state_of(request, ctx)
    if not same_origin(request.headers, request.url.scheme):
        return _message(None, 403, "Refused", "Sign out from the dashboard's own page.")
    state.sessions.delete(request.cookies.get(COOKIE_NAME))
    response = RedirectResponse("/dashboard/sign-in", status_code=303)
    response.headers["Set-Cookie"] = cookie_header("", max_age=0)
    return _secured(response)


def _sign_in_refused(status: int, error: str) -> Response:
    return _page("sign_in.html", None, "sign-in", status=status, title="Sign in", error=error)


# -- views -----------------------------------------------------------------------------------


@router.get("/corridors")
async def corridors(request: Request) -> Response:
    found = await signed_in(request)
    if found is None:
        return _to_sign_in()
    try:
        period = Period.of(request)
    except ValueError:
        return _message(found, 400, "Corridors", Period.PROBLEM)
    data = await run_in_threadpool(
        views.corridors, found.ctx, found.caller, period.received_min, period.received_max
    )
    return _page(
        "corridors.html", found, "corridors", title="Corridors", day_from=period.day_from,
        day_to=period.day_to, **data,
    )  # fmt: skip


@router.get("/map")
async def corridor_map(request: Request) -> Response:
    found = await signed_in(request)
    if found is None:
        return _to_sign_in()
    selected = request.query_params.get("corridor", "")
    try:
        period = Period.of(request)
    except ValueError:
        return _message(found, 400, "Map", Period.PROBLEM)
    if selected and not CORRIDOR.fullmatch(selected):
        return _message(found, 400, "Map", "A corridor is two country codes: KZ-CN.")
    data = await run_in_threadpool(
        lambda: views.corridor_map(
            found.ctx, found.caller, period.received_min, period.received_max,
            selected=selected, period_query=period.query(),
        )
    )  # fmt: skip
    return _page(
        "map.html", found, "map", title="Map of corridors", day_from=period.day_from,
        day_to=period.day_to, **data,
    )  # fmt: skip


@dataclass(frozen=True)
class Period:
    """The days (UTC, both included) of a view's ``from`` and ``to``, as ledger times."""

    PROBLEM = "Dates are YYYY-MM-DD, from 1970 to 2262."
    day_from: str
    day_to: str
    received_min: int
    received_max: int

    @classmethod
    def of(cls, request: Request) -> Period:
        """Raises ValueError for a date that is not a day between 1970 and 2262."""
        day_from = request.query_params.get("from", "")
        day_to = request.query_params.get("to", "")
        received_min = _day_start(day_from) if day_from else 0
        received_max = _day_start(day_to) + 86_400 * 10**9 - 1 if day_to else 2**63 - 1
        return cls(day_from, day_to, received_min, received_max)

    def query(self) -> str:
        """The period as the start of a query string ("" or "from=...&to=...&")."""
        given = [(name, day) for name, day in (("from", self.day_from), ("to", self.day_to)) if day]
        return "".join(f"{name}={day}&" for name, day in given)


@router.get("/liquidity")
async def liquidity(request: Request) -> Response:
    found = await signed_in(request)
    if found is None:
        return _to_sign_in()
    data = await run_in_threadpool(views.liquidity, found.ctx, found.caller)
    return _page("liquidity.html", found, "liquidity", title="Liquidity", **data)


@router.get("/payments")
async def payments(request: Request) -> Response:
    found = await signed_in(request)
    if found is None:
        return _to_sign_in()
    query = request.query_params
    payment_id = query.get("id", "").strip()
    if payment_id:
        if len(payment_id) > PAYMENT_ID_CHARS_MAX:
            return _message(found, 404, "Payments", "No payment with that id.")
        return _secured(RedirectResponse(f"/dashboard/payments/{quote(payment_id, safe='')}", 303))
    status_text = query.get("status", "")
    try:
        status = PaymentStatus(status_text) if status_text else None
        before = _cursor(query.get("before"))
        after = _cursor(query.get("after"))
    except ValueError:
        return _message(found, 400, "Payments", "Unknown status or page.")
    page = await run_in_threadpool(
        lambda: views.payments(found.ctx, found.caller, status=status, before=before, after=after)
    )
    return _page(
        "payments.html", found, "payments", title="Payments", page=page,
        status_filter=status_text, statuses=[s.value for s in PaymentStatus],
    )  # fmt: skip


@router.get("/payments/{payment_id:path}/messages/{name}.xml")
async def payment_message(payment_id: str, name: str, request: Request) -> Response:
    """One ISO 20022 message of a payment, as an XML download (``messages.py``)."""
    found = await signed_in(request)
    if found is None:
        return _to_sign_in()
    shown = None
    if len(payment_id) <= PAYMENT_ID_CHARS_MAX and name in MESSAGE_NAMES:
        shown = await run_in_threadpool(
            views.payment_message, found.ctx, found.caller, payment_id, name
        )
    if shown is None:
        return _message(found, 404, "Message not found", "No such message of that payment.")
    filename = f"{shown.definition}-{payment_id}.xml".replace(":", "_")
    safe_name = "".join(c if c.isalnum() or c in "._-" else "_" for c in filename)
    disposition = f'attachment; filename="{safe_name}"'
    headers = {"Content-Disposition": disposition}
    return _secured(Response(shown.xml, media_type="application/xml", headers=headers))


@router.get("/payments/{payment_id:path}")
async def payment(payment_id: str, request: Request) -> Response:
    found = await signed_in(request)
    if found is None:
        return _to_sign_in()
    shown = None
    if len(payment_id) <= PAYMENT_ID_CHARS_MAX:
        shown = await run_in_threadpool(views.payment, found.ctx, found.caller, payment_id)
    if shown is None:  # Missing or not the caller's: one answer for both, as in the API.
        return _message(found, 404, "Payment not found", "No payment with that id.")
    return _page("payment.html", found, "payments", title="Payment", payment=shown)


@router.get("/cycles")
async def cycles(request: Request) -> Response:
    found = await signed_in(request)
    if found is None:
        return _to_sign_in()
    try:
        data = await run_in_threadpool(views.cycles, found.ctx, found.caller)
    except ApiError as error:
        if error.code != "forbidden":
            raise
        text = "Netting cycles are shown to operators, central banks and auditors."
        return _message(found, 403, "Cycles", text)
    return _page("cycles.html", found, "cycles", title="Netting cycles", **data)


@router.get("/rejections")
async def rejections(request: Request) -> Response:
    found = await signed_in(request)
    if found is None:
        return _to_sign_in()
    data = await run_in_threadpool(views.rejections, found.ctx, found.caller)
    return _page("rejections.html", found, "rejections", title="Rejections", **data)


# -- live updates ----------------------------------------------------------------------------


@router.get("/events")
async def live_events(request: Request) -> Response:
    """Server-sent events: ``change`` when something the caller may see was recorded."""
    found = await signed_in(request)
    if found is None:
        return _secured(Response("sign in first\n", 401, media_type="text/plain"))
    sessions, session_id = found.state.sessions, found.session_id
    try:
        stream = found.state.hub.open(found.caller, hashlib.sha256(session_id.encode()).hexdigest())
    except StreamsFull as error:
        return _secured(Response(f"{error}\n", 429, media_type="text/plain"))
    body = events(found.state.hub, stream, lambda: sessions.get(session_id) is not None)
    response = StreamingResponse(body, media_type="text/event-stream")
    response.headers["X-Accel-Buffering"] = "no"  # A proxy must pass each event on at once.
    return _secured(response)


# -- static files ----------------------------------------------------------------------------


@router.get("/static/plotly-{version}.min.js")
async def plotly_js(version: str, request: Request) -> Response:
    """plotly.js from the installed ``plotly`` package; cached for good (the URL names the
    version), gzip-compressed for browsers that take it."""
    name, text, packed = _plotly()
    if version != name:
        return Response("not found\n", 404, media_type="text/plain")
    headers = {
        "Cache-Control": "public, max-age=31536000, immutable",
        "X-Content-Type-Options": "nosniff",
        "Vary": "Accept-Encoding",
    }
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(packed, media_type="text/javascript", headers=headers)
    return Response(text, media_type="text/javascript", headers=headers)


@router.get("/static/{name}")
async def static(name: str) -> Response:
    if name not in _STATIC:
        return Response("not found\n", 404, media_type="text/plain")
    headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    return Response(
        (_HERE / "static" / name).read_bytes(), media_type=_STATIC[name], headers=headers
    )


@cache
def _plotly() -> tuple[str, bytes, bytes]:
    """(version, plotly.min.js, the same gzipped), read once from the installed package."""
    from plotly.offline import get_plotlyjs  # type: ignore[import-untyped]

    text = get_plotlyjs().encode()
    return _plotly_version(), text, gzip.compress(text, compresslevel=6, mtime=0)


@cache
def _plotly_version() -> str:
    return importlib.metadata.version("plotly")


def plotly_url() -> str:
    return f"/dashboard/static/plotly-{_plotly_version()}.min.js"


# -- rendering -------------------------------------------------------------------------------


def _page(
    template: str, found: SignedIn | None, view: str, *, status: int = 200, **values: Any
) -> Response:
    caller = found.caller if found is not None else None
    navigation = [
        {"path": path, "title": title}
        for path, title, roles in VIEWS
        if caller is not None and (roles is None or caller.role in roles)
    ]
    html = _TEMPLATES.get_template(template).render(
        caller=caller,
        navigation=navigation,
        view=view,
        plotly_url=plotly_url(),
        **values,
    )
    return _secured(HTMLResponse(html, status_code=status))


def _message(found: SignedIn | None, status: int, title: str, text: str) -> Response:
    return _page("message.html", found, "", status=status, title=title, text=text)


def _secured(response: Response) -> Response:
    for name, value in _SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _day_start(text: str) -> int:
    """A ``YYYY-MM-DD`` day's first nanosecond (UTC) on the ledger's clock."""
    if len(text) != 10:
        raise ValueError(text)
    day = dt.date.fromisoformat(text)
    if not dt.date(1970, 1, 1) <= day <= dt.date(2262, 4, 10):
        raise ValueError(text)
    return (day - dt.date(1970, 1, 1)).days * 86_400 * 10**9


def _cursor(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= CURSOR_DIGITS_MAX):
        raise ValueError(text)
    return int(text)
