"""Install a network into a ledger: its accounts, then its opening balances (idempotently)."""

from __future__ import annotations

from sco_settle.ledger import BATCH_EVENTS_MAX, Ledger
from sco_settle.network.model import Network

_ACCEPTED = ("ok", "exists")  # Installing twice is harmless: the ids are derived from keys.


class NetworkInstallError(RuntimeError):
    """The ledger refused a network account or opening transfer (names which, and why)."""


def install_network(ledger: Ledger, network: Network) -> dict[str, int]:
    accounts = network.ledger_accounts()
    transfers = network.opening_transfers()
    for start in range(0, len(accounts), BATCH_EVENTS_MAX):
        accounts_batch = accounts[start : start + BATCH_EVENTS_MAX]
        account_results = ledger.create_accounts(accounts_batch)
        for account, account_result in zip(accounts_batch, account_results, strict=True):
            if account_result not in _ACCEPTED:
                raise NetworkInstallError(f"network account {account.ref}: {account_result}")
    for start in range(0, len(transfers), BATCH_EVENTS_MAX):
        transfers_batch = transfers[start : start + BATCH_EVENTS_MAX]
        transfer_results = ledger.create_transfers(transfers_batch)
        for transfer, transfer_result in zip(transfers_batch, transfer_results, strict=True):
            if transfer_result not in _ACCEPTED:
                raise NetworkInstallError(f"opening transfer {transfer.ref}: {transfer_result}")
    return {"accounts": len(accounts), "transfers": len(transfers)}
