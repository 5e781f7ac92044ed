"""The dashboard: ``/dashboard``, pages for people over the API's own reads (``docs/dashboard.md``).

Sign-in with an API key (a server-side session behind a ``Secure; HttpOnly; SameSite=Strict``
cookie), views of corridors (a table and a map of SCO states), liquidity (with what netting and
the LSM saved), payments (with their ISO 20022 messages), netting cycles and rejections with the
API's visibility rules, and live updates by server-sent events.
"""

from sco_settle.server.dashboard.routes import router

__all__ = ["router"]
