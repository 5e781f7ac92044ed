"""``/v1/accounts``: accounts with balances, their transfers, and their daily statements.

A participant sees its own accounts, a currency operator those in its currencies, the network
operator and auditors all. An account the caller may not see is answered exactly like one that
does not exist (404 ``account_not_found``, same title, and a detail that only echoes the request).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from sco_settle.domain.account import Account
from sco_settle.domain.balances import Balances, Counters
from sco_settle.domain.ids import ID_MAX
from sco_settle.gateway.statements import (
    DayOutOfRange,
    PageOutOfRange,
    Statement,
    day_bounds,
    read_statement,
    statement_camt_053,
    statement_json,
)
from sco_settle.ledger.jsonl import account_to_json, transfer_to_json
from sco_settle.server.auth import Principal
from sco_settle.server.errors import ApiError
from sco_settle.server.routes.common import (
    INT64_MAX,
    After,
    AppContext,
    Caller,
    Context,
    Limit,
    QueryDay,
    QueryInt,
    decode_int_cursor,
    json_response,
    page,
    problems,
)
from sco_settle.server.schemas import Account as AccountSchema
from sco_settle.server.schemas import AccountPage, TransferPage
from sco_settle.server.schemas import Statement as StatementSchema

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])
CAMT_053 = "camt.053"


def account_json(account: Account, counters: Counters) -> dict[str, Any]:
    balances = Balances.of_account(account, counters)
    found = account_to_json(account, balances.counters)
    found["balance_posted_minor"] = balances.posted_minor
    found["available_minor"] = balances.available_minor
    return found


def visible_account(ctx: AppContext, caller: Principal, account_id: str) -> int:
    """The account's id if it exists and the caller may see it; else the one 404 for both."""
    published = ctx.service.published
    found_id: int | None = None
    if account_id.isascii() and account_id.isdigit() and len(account_id) <= 40:
        found_id = int(account_id)
    else:
        found_id = published.by_ref.get(account_id)
    account = published.accounts.get(found_id) if found_id is not None else None
    if account is None or not caller.may_read_account(account):
        raise ApiError("account_not_found", f"no account {account_id[:100]!r}")
    return account.id


@router.get("", operation_id="listAccounts", response_model=AccountPage, responses=problems(400))
async def list_accounts(
    caller: Caller,
    ctx: Context,
    limit: Limit = 100,
    after: After = None,
    participant: Annotated[str | None, Query(max_length=11)] = None,
    currency: Annotated[str | None, Query(max_length=3)] = None,
) -> Response:
    """The accounts the caller may see, ordered by id; optionally one participant's or
    currency's."""
    published = ctx.service.published
    start = decode_int_cursor("accounts", after, maximum=ID_MAX)
    if caller.role.value == "participant":
        ids: tuple[int, ...] = published.by_participant.get(caller.participant, ())
    else:
        ids = published.sorted_ids
    items: list[dict[str, Any]] = []
    last = None
    for account_id in ids:
        if account_id <= start:
            continue
        account = published.accounts[account_id]
        if not caller.may_read_account(account):
            continue
        if participant is not None and account.participant != participant:
            continue
        if currency is not None and account.currency != currency:
            continue
        if len(items) == limit:
            return json_response(page(items, last, "accounts"))
        items.append(account_json(account, published.balances[account_id]))
        last = account_id
    return json_response(page(items, None, "accounts"))


@router.get(
    "/{account_id}",
    operation_id="getAccount",
    response_model=AccountSchema,
    responses=problems(404),
)
async def get_account(account_id: str, caller: Caller, ctx: Context) -> Response:
    """One account with its balances, as committed (durable) now."""
    found = ctx.service.published.get(visible_account(ctx, caller, account_id))
    assert found is not None
    return json_response(account_json(*found))


@router.get(
    "/{account_id}/transfers",
    operation_id="listAccountTransfers",
    response_model=TransferPage,
    responses=problems(400, 404),
)
async def list_account_transfers(
    account_id: str, caller: Caller, ctx: Context, limit: Limit = 100, after: After = None
) -> Response:
    """Transfers debiting or crediting the account, oldest first (by ledger timestamp)."""
    found_id = visible_account(ctx, caller, account_id)
    # The cursor is a timestamp; the page starts after it (``start + 1`` must fit 64 bits).
    start = decode_int_cursor("transfers", after, maximum=INT64_MAX - 1)

    def read() -> list[Any]:
        with ctx.service.read_stores.store() as store:
            return list(
                store.get_account_transfers(found_id, timestamp_min=start + 1, limit=limit + 1)
            )

    transfers = await run_in_threadpool(read)
    chosen = transfers[:limit]
    more = len(transfers) > limit
    return json_response(
        page(
            [transfer_to_json(t) for t in chosen],
            chosen[-1].timestamp if more else None,
            "transfers",
        )
    )


@router.get(
    "/{account_id}/statement",
    operation_id="getAccountStatement",
    response_model=StatementSchema,
    responses={
        **problems(400, 404),
        200: {
            "description": "The statement: JSON, or camt.053 XML with format=camt.053",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Statement"}},
                "application/xml": {"schema": {"type": "string"}},
            },
        },
    },
)
async def get_statement(
    account_id: str,
    caller: Caller,
    ctx: Context,
    date: Annotated[
        dt.date | None, Query(description="UTC day, YYYY-MM-DD; default: today"), QueryDay
    ] = None,
    format: Annotated[Literal["json", "camt.053"], Query()] = "json",
    page: Annotated[
        int,
        Query(ge=1, le=2**31, description="Page, from 1; each holds at most entries_max entries"),
        QueryInt,
    ] = 1,
) -> Response:
    """Booked (posted) entries of one UTC day, with opening and closing balances, in pages of at
    most ``statement_entries_max`` entries (the same pages in JSON and camt.053)."""
    found_id = visible_account(ctx, caller, account_id)
    day = date or dt.datetime.now(dt.UTC).date()
    try:
        day_bounds(day)  # Before any work: a day outside the timestamp range is a 400.
    except DayOutOfRange as error:
        raise ApiError("date_out_of_range", str(error)) from None
    if format == CAMT_053:
        xml = await run_in_threadpool(_camt_053, ctx, found_id, day, page)
        return Response(xml, media_type="application/xml")
    found = await run_in_threadpool(_statement, ctx, found_id, day, page)
    return json_response(statement_json(found))


def _statement(ctx: AppContext, account_id: int, day: dt.date, page: int) -> Statement:
    """One page of the statement, from the published account and a read-only store (so a
    statement never waits for the writer)."""
    account = ctx.service.published.accounts[account_id]
    with ctx.service.read_stores.store() as store:
        try:
            return read_statement(
                store, account, day, page=page, entries_max=ctx.config.statement_entries_max
            )
        except PageOutOfRange as error:
            raise ApiError("not_found", str(error)) from None


def _camt_053(ctx: AppContext, account_id: int, day: dt.date, page: int) -> bytes:
    found = _statement(ctx, account_id, day, page)
    servicer = ctx.network.settlement_agents.get(found.account.currency)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return statement_camt_053(found, now=now, servicer_bic=servicer)
