"""The network service: an authenticated REST API over one ledger process.

``create_app(ServerConfig(parse_database_url("sqlite:///sco.db")))`` gives the ASGI app;
``sco-settle serve`` runs it under uvicorn. See docs/api.md.

The web framework is imported on first use of ``create_app``/``openapi_document`` only, so that
``sco-settle keys ...`` starts quickly.
"""

from __future__ import annotations

from typing import Any

from sco_settle.server.config import ConfigError, ServerConfig, parse_database_url

__all__ = ["ConfigError", "ServerConfig", "create_app", "openapi_document", "parse_database_url"]


def __getattr__(name: str) -> Any:
    if name in ("create_app", "openapi_document"):
        from sco_settle.server import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
