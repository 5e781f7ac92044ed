"""Liquidity reservations for queued payments: what a payer's queue holds back of its account.

A queued RTGS payment waits for liquidity. While it waits, the liquidity that arrives for it must
not be spent past it: not by the payer's own transfers through ``/v1/transfer-batches``, nor by
anything else that debits the account outside the queue's order. So each payer's settlement
account carries one reservation, a *pending* ledger transfer from the account to its currency's
clearing account (two-phase: it counts against the account's available balance, and moves
nothing until posted; it is only ever voided).

Rule (stated once): the reservation of an account is the smaller of what the payer's queued
payments will debit from it (their fixed sent amounts) and what the account could pay (its
available balance plus credit limit, counting the reservation itself as available). So a
reservation never makes an account short, and grows as liquidity arrives until the queue's
head can settle. Payments with a fixed *received* amount in another currency reserve nothing
(their cost is known only on a route).

The engine releases (voids) the reservations of the accounts a batch or a cycle may debit before
it settles anything, and sets them again afterwards (``PaymentEngine``); each change is one
linked pair (void the old, make the new), so an account never holds two. Reservations never
expire by timeout; at start the engine adopts the ones the ledger holds open.

Pure: no I/O; the engine applies the transfers this module plans.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sco_settle.domain.ids import is_engine_id
from sco_settle.domain.transfer import Transfer, TransferFlags
from sco_settle.payments.model import AmountType, Payment
from sco_settle.payments.plan import LINKED, transfer_id_for

CODE_RESERVE = 15
_PENDING = int(TransferFlags.PENDING)
_VOID = int(TransferFlags.VOID_PENDING)


@dataclass(frozen=True)
class Reservation:
    """An open reservation: its pending transfer's id, account, clearing account and amount."""

    transfer_id: int
    account_id: int
    clearing_id: int
    amount: int


def reserved_amount(payment: Payment) -> int | None:
    """What ``payment`` will debit from its payer's account in its own currency (None: not
    known before it is routed: a fixed received amount in another currency)."""
    if payment.amount_type is AmountType.RECEIVE and payment.currency != payment.creditor_currency:
        return None
    return payment.amount_minor


def targets(
    queued: Iterable[tuple[int, int]], headroom: Mapping[int, int], held: Mapping[int, int]
) -> dict[int, int]:
    """Per account: the reservation the rule asks for. ``queued``: (account id, amount) per
    queued payment; ``headroom``: what each account could pay now (available + credit limit);
    ``held``: what each account's current reservation holds (it is available to itself)."""
    totals: dict[int, int] = {}
    for account_id, amount in queued:
        totals[account_id] = totals.get(account_id, 0) + amount
    return {
        account_id: min(total, max(headroom.get(account_id, 0) + held.get(account_id, 0), 0))
        for account_id, total in totals.items()
    }


def changes(
    current: Mapping[int, Reservation],
    wanted: Mapping[int, int],
    clearing_of: Mapping[int, int],
    stamp: str,
) -> tuple[list[Transfer], dict[int, Reservation]]:
    """The ledger transfers that take ``current`` to ``wanted`` (void the old reservation and
    make the new one, linked, per account that changes; accounts not in ``wanted`` are
    released), and the reservations that hold once they are applied. ``stamp`` makes the new
    transfers' ids unique (the engine passes the ledger clock)."""
    transfers: list[Transfer] = []
    after: dict[int, Reservation] = {}
    for account_id in sorted(set(current) | set(wanted)):
        old = current.get(account_id)
        amount = wanted.get(account_id, 0)
        if old is not None and old.amount == amount:
            after[account_id] = old
            continue
        pair: list[Transfer] = []
        if old is not None:
            pair.append(void(old))
        if amount > 0:
            new_id = transfer_id_for(f"reserve:{account_id}:{stamp}")
            clearing = clearing_of[account_id]
            pair.append(
                Transfer(new_id, account_id, clearing, amount, _PENDING, code=CODE_RESERVE,
                         ref="liquidity reserved for queued payments")
            )  # fmt: skip
            after[account_id] = Reservation(new_id, account_id, clearing, amount)
        if len(pair) == 2:
            pair[0] = pair[0]._replace(flags=pair[0].flags | LINKED)
        transfers += pair
    return transfers, after


def void(reservation: Reservation) -> Transfer:
    """The transfer that releases ``reservation`` (its id is derived from the reservation's)."""
    return Transfer(
        transfer_id_for(f"reserve-void:{reservation.transfer_id}"),
        pending_id=reservation.transfer_id,
        flags=_VOID,
        code=CODE_RESERVE,
    )


def adopt(open_pending: Iterable[Transfer]) -> dict[int, Reservation]:
    """The engine's reservations among the ledger's open pending transfers (at start)."""
    found: dict[int, Reservation] = {}
    for transfer in open_pending:
        if transfer.code == CODE_RESERVE and is_engine_id(transfer.id):
            found[transfer.debit_account] = Reservation(
                transfer.id, transfer.debit_account, transfer.credit_account, transfer.amount
            )
    return found
