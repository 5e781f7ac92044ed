"""The app factory: ``create_app(config)`` opens the ledger and returns the ASGI app.

``build_app()`` without a context builds the same routes with nothing attached: that is how the
OpenAPI document is produced without a database (``openapi_document``), and how the copy in the
repository (``openapi.json``) is regenerated::

    python -m sco_settle.server.app > openapi.json
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from starlette.responses import Response

from sco_settle.events.background import start_for_server
from sco_settle.server import schemas
from sco_settle.server.admission import AdmissionMiddleware, quota_routes, write_slots
from sco_settle.server.auth import Authenticator
from sco_settle.server.config import ServerConfig
from sco_settle.server.dashboard import router as dashboard_router
from sco_settle.server.db import StateDb
from sco_settle.server.errors import install_handlers
from sco_settle.server.idempotency import IdempotencyStore
from sco_settle.server.keys import KeyStore
from sco_settle.server.logging import RequestLogMiddleware
from sco_settle.server.routes import ROUTERS
from sco_settle.server.routes.common import (
    AppContext,
    Caller,
    json_response,
    problems,
    single_query_values,
    write_caller,
)

API_VERSION = "1.0.0"
_DESCRIPTION = """\
SCO Settle: national-currency settlement between banks of SCO states.

Every endpoint but `GET /health` needs an API key (`Authorization: Bearer scos_...`) or a signed
request (`X-SCOS-*` headers). Every write needs an `Idempotency-Key`. Errors are RFC 9457
problem details with a machine-readable `code`. Lists are paged with `limit` and `after`
(the previous page's `next_cursor`). See docs/api.md.
"""
# Schemas used by raw-body routes (parsed by the ledger's own codec) or only by problems.
_EXTRA_SCHEMAS = (schemas.Problem, schemas.TransferBatch, schemas.PaymentOutcome)


def build_app(context: AppContext | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The audit checkpoints and the event publisher (docs/audit-and-events.md).
        background = None
        if context is not None:
            participants = context.network.participants_by_bic
            background = await start_for_server(context.config, participants)
        yield
        if background is not None:
            await background.close()
        if context is not None:
            close_context(context)

    app = FastAPI(
        title="SCO Settle API",
        version=API_VERSION,
        description=_DESCRIPTION,
        openapi_url=None,  # Served below, behind authentication.
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        dependencies=[Depends(single_query_values)],
    )
    if context is not None:
        app.state.context = context
    install_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.include_router(dashboard_router)  # /dashboard: pages, not in the OpenAPI document

    @app.get("/openapi.json", include_in_schema=False, responses=problems())
    async def openapi(caller: Caller) -> Response:
        return json_response(app.openapi())

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    body_bytes_max = context.config.body_bytes_max if context else 16 * 1024 * 1024
    if context is not None:  # Inside the log middleware: added first (see ``admission``).
        app.state.write_slots = write_slots(context.config)
        app.add_middleware(
            AdmissionMiddleware,
            authenticator=context.authenticator,
            config=context.config,
            admit=context.service.admit,
            quota_routes=quota_routes(ROUTERS, write_caller),
            slots=app.state.write_slots,
        )
    app.add_middleware(RequestLogMiddleware, body_bytes_max=body_bytes_max)
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is not None:
        return app.openapi_schema
    document = FastAPI.openapi(app)
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for model in _EXTRA_SCHEMAS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components.setdefault(model.__name__, schema)
    # Validation errors are problems too (FastAPI would document its own shape).
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    app.openapi_schema = document
    return document


def openapi_document() -> dict[str, Any]:
    return build_app().openapi()


def openapi_text() -> str:
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"


def create_app(config: ServerConfig) -> FastAPI:
    """Open the ledger described by ``config`` (installing its network into an empty one) and
    return the app serving it. Closing happens at the app's shutdown (lifespan)."""
    return build_app(open_context(config))


def open_context(config: ServerConfig) -> AppContext:
    from sco_settle.network import load_network
    from sco_settle.payments.network_view import load_rates
    from sco_settle.server.service import LedgerService

    network = load_network(config.network)
    rates = load_rates(config.rates or config.network)
    state_db = StateDb(config.database, readers_max=config.read_connections_max)
    service = LedgerService(config, network, rates)
    service.state_db = state_db
    try:
        service.start()
    except BaseException:
        state_db.close()
        raise
    keys = KeyStore(state_db)

    def currencies_of(bic: str) -> frozenset[str]:
        return frozenset(code for code, agent in network.settlement_agents.items() if agent == bic)

    idempotency = IdempotencyStore(state_db, config.idempotency_ttl_seconds)
    idempotency.sink = service.record
    service.idempotency = idempotency
    return AppContext(
        config=config,
        network=network,
        service=service,
        state_db=state_db,
        keys=keys,
        authenticator=Authenticator(keys, config, currencies_of),
        idempotency=idempotency,
    )


def close_context(context: AppContext) -> None:
    context.service.close()
    context.state_db.close()


if __name__ == "__main__":
    sys.stdout.write(openapi_text())
