"""Settlement modes: the parts of the engine that decide *when* accepted payments settle.

Every mode implements ``SettlementMode`` and is registered under its name; the engine, the
server and the simulator use only this contract (``PaymentEngine.run_cycle(selection)``), never
the mode's identity. Adding a mode means adding one module that defines a class with this
contract and registering it (``register``), plus its name in ``Mode`` for configuration.

- ``rtgs`` (``payments.rtgs``): each payment settles gross at once when its route has liquidity,
  else it waits in the queue; a cycle is a pass of the liquidity-saving mechanism.
- ``dns`` (``payments.dns``): payments are held; a cycle nets them and settles the net positions.
- ``union`` (``payments.union``): the SCO clearing union; central banks clear cross-currency
  payments in a unit of account within swing limits, in cycles netted as ``dns`` nets.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from sco_settle.payments.model import Payment, PaymentOutcome, PaymentStatus
from sco_settle.payments.queue import Selection

if TYPE_CHECKING:
    from sco_settle.payments.engine import PaymentEngine

# A payment's life so far, in order: (status, detail).
Events = list[tuple[PaymentStatus, str]]
# What the engine records for one payment: (payment, outcome, queue sequence or None, events).
Entry = tuple[Payment, PaymentOutcome, int | None, Events]


class Mode(enum.StrEnum):
    """The registered settlement modes' names (for configuration and the command line)."""

    RTGS = "rtgs"
    DNS = "dns"
    UNION = "union"


@dataclass
class CycleReport:
    """What one cycle did. ``gross_minor`` / ``net_minor`` per currency: the value of the
    settled payments' legs, and the net debits actually moved (netting modes only)."""

    kind: str
    number: int = 0  # this engine's cycles, counted from 1 (restarts with the process)
    settled: int = 0
    rejected: int = 0
    deferred: int = 0
    gross_minor: dict[str, int] = field(default_factory=dict)
    net_minor: dict[str, int] = field(default_factory=dict)
    outcomes: list[PaymentOutcome] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "cycle": self.number,
            "settled": self.settled,
            "rejected": self.rejected,
            "deferred": self.deferred,
            "gross_minor": dict(sorted(self.gross_minor.items())),
            "net_minor": dict(sorted(self.net_minor.items())),
        }


class SettlementMode(Protocol):
    name: ClassVar[str]  # its registered name
    cycle_kind: ClassVar[str]  # what its cycles are called in reports ("lsm", "dns")
    runs_when_idle: ClassVar[bool]  # run a cycle whenever the queue is not empty (on ticks)
    # queued payments hold liquidity reservations (``payments.reservations``)
    reserves_liquidity: ClassVar[bool]

    def on_accepted(
        self, engine: PaymentEngine, payment: Payment, events: Events
    ) -> PaymentOutcome | None:
        """A validated, screened payment: its outcome now (held, ...), or None to have the
        engine route and settle it gross at once."""
        ...

    def after_batch(self, engine: PaymentEngine, settled_any: bool) -> None:
        """After a batch of new payments was recorded."""
        ...

    def run_cycle(
        self, engine: PaymentEngine, selection: Selection
    ) -> tuple[CycleReport, list[Entry]]:
        """Settle what it can of the selected queued payments (already past expiry)."""
        ...


_REGISTRY: dict[str, Callable[[], SettlementMode]] = {}


def register(name: str, factory: Callable[[], SettlementMode]) -> None:
    _REGISTRY[name] = factory


def mode_for(name: str) -> SettlementMode:
    """A fresh instance of the mode registered under ``name``."""
    if str(name) not in _REGISTRY:  # The shipped modes register themselves when imported.
        import sco_settle.payments.dns
        import sco_settle.payments.rtgs
        import sco_settle.payments.union  # noqa: F401  (each registers itself)
    try:
        return _REGISTRY[str(name)]()
    except KeyError:
        raise ValueError(f"no settlement mode {name!r}; known: {sorted(_REGISTRY)}") from None
