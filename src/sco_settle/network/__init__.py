"""Network files: the countries, participants, links and swap lines of a settlement network.

``load_network("sco")`` loads the shipped SCO reference network; ``Network.ledger_accounts()`` and
``Network.opening_transfers()`` give what a ledger needs to start with it. The file format is
described in docs/reference/network.md.
"""

from sco_settle.network.loader import NetworkError, load_network, parse_network
from sco_settle.network.model import (
    AccountEntry,
    CorrespondentLink,
    CountryEntry,
    Network,
    ParticipantEntry,
    StatusPeriod,
    SwapLine,
    account_id_for_key,
)

__all__ = [
    "AccountEntry",
    "CorrespondentLink",
    "CountryEntry",
    "Network",
    "NetworkError",
    "ParticipantEntry",
    "StatusPeriod",
    "SwapLine",
    "account_id_for_key",
    "load_network",
    "parse_network",
]
