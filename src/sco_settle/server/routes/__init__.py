"""HTTP routes, one module per resource. Handlers only translate: they parse, check what the
caller may do, hand the work to the ledger service, and render the answer."""

from sco_settle.server.routes import (
    accounts,
    cycles,
    health,
    iso,
    keys,
    participants,
    payments,
    quotes,
    reports,
    transfers,
)

ROUTERS = (
    health.router,
    participants.router,
    accounts.router,
    transfers.router,
    payments.router,
    payments.batch_router,
    iso.router,
    quotes.router,
    cycles.router,
    reports.router,
    keys.router,
)

__all__ = ["ROUTERS"]
