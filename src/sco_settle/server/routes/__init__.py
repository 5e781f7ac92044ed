"""HTTP routes, one module per resource. Handlers only translate: they parse, check what the
caller may do, hand the work to the ledger service, and render the answer."""

from sco_settle.server.routes import (
    accounts,
    cycles,
    end_of_day,
    fx_quotes,
    health,
    iso,
    keys,
    participants,
    payments,
    quotes,
    reports,
    swap_lines,
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
    fx_quotes.router,
    swap_lines.router,
    end_of_day.router,
    cycles.router,
    reports.router,
    keys.router,
)

__all__ = ["ROUTERS"]
