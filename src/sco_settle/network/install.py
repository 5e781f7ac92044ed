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
        batch = accounts[start : start + BATCH_EVENTS_MAX]
        for account, result in zip(batch, ledger.create_accounts(batch), strict=True):
            if result not in _ACCEPTED:
                raise NetworkInstallError(f"network account {account.ref}: {result}")
    for start in range(0, len(transfers), BATCH_EVENTS_MAX):
        batch = transfers[start : start + BATCH_EVENTS_MAX]
        for transfer, result in zip(batch, ledger.create_transfers(batch), strict=True):
            if result not in _ACCEPTED:
                raise NetworkInstallError(f"opening transfer {transfer.ref}: {result}")
    return {"accounts": len(accounts), "transfers": len(transfers)}
