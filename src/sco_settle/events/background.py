"""What the server runs beside its writer for the audit trail and the event stream.

- At start, a ``configuration`` entry: the settings the server runs with (the configuration
  change it makes), appended to the audit chain in a transaction of its own.
- Checkpoints: the chain's head (seq and hash) written to the server log every
  ``SCO_SETTLE_AUDIT_CHECKPOINT_SECONDS`` (default 60) when it moved, and at start and stop, as
  ``{"event": "audit_checkpoint", "audit_seq": ..., "audit_hash": ...}``. A log kept apart from
  the database then shows any later rewrite or truncation of the chain
  (``sco-settle verify --audit --checkpoint``).
- The event publisher, when ``SCO_SETTLE_EVENTS_NATS_URL`` is set (with
  ``SCO_SETTLE_EVENTS_NATS_USER`` and ``SCO_SETTLE_EVENTS_NATS_PASSWORD`` for the ``publisher``
  user of ``sco-settle events nats-config``).

All database work runs on the outbox's own thread (``events.outbox``), never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sco_settle.audit.chain import AuditKind, Checkpoint
from sco_settle.events.outbox import Outbox, configuration_payload
from sco_settle.events.publisher import NatsSettings, run_publisher

__all__ = [
    "Background",
    "nats_settings_from_environment",
    "start_background",
    "start_for_server",
]

logger = logging.getLogger("sco_settle.server.audit")
CHECKPOINT_SECONDS_DEFAULT = 60.0
SERVER_ACTOR = "server"
_T = TypeVar("_T")


def nats_settings_from_environment() -> NatsSettings | None:
    url = os.environ.get("SCO_SETTLE_EVENTS_NATS_URL")
    if not url:
        return None
    return NatsSettings(
        url=url,
        user=os.environ.get("SCO_SETTLE_EVENTS_NATS_USER"),
        password=os.environ.get("SCO_SETTLE_EVENTS_NATS_PASSWORD"),
    )


@dataclass
class Background:
    outbox: Outbox
    stop: asyncio.Event
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def close(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await _log_checkpoint(self.outbox, None)
        await asyncio.to_thread(self.outbox.close)


async def start_background(
    db: str,
    schema: str,
    settings: dict[str, Any],
    participants: Iterable[str],
    *,
    nats: NatsSettings | None = None,
    checkpoint_seconds: float | None = None,
) -> Background:
    """Record the configuration, then start the checkpoint log and (with ``nats``) the
    publisher. ``db``: the ledger's SQLite path or PostgreSQL DSN."""
    outbox = await asyncio.to_thread(Outbox, db, schema=schema)
    payload = configuration_payload(settings)
    await asyncio.to_thread(outbox.append, AuditKind.CONFIGURATION, SERVER_ACTOR, payload)
    seconds = checkpoint_seconds or float(
        os.environ.get("SCO_SETTLE_AUDIT_CHECKPOINT_SECONDS", CHECKPOINT_SECONDS_DEFAULT)
    )
    background = Background(outbox, asyncio.Event())
    background.tasks.append(asyncio.create_task(_checkpoints(outbox, background.stop, seconds)))
    if nats is not None:
        publisher = run_publisher(outbox, nats, participants, background.stop)
        background.tasks.append(asyncio.create_task(publisher))
    return background


async def _checkpoints(outbox: Outbox, stop: asyncio.Event, seconds: float) -> None:
    last: Checkpoint | None = None
    while not stop.is_set():
        try:
            last = await _log_checkpoint(outbox, last)
        except Exception as error:  # A read failing must not end the server: log, go on.
            logger.warning("audit checkpoint unreadable: %r", error)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)


async def _log_checkpoint(outbox: Outbox, last: Checkpoint | None) -> Checkpoint:
    head = await asyncio.to_thread(outbox.head)
    if head != last:
        logger.info(
            "audit checkpoint: seq %d",
            head.seq,
            extra={"event": "audit_checkpoint", "audit_seq": head.seq, "audit_hash": head.hash},
        )
    return head


async def start_for_server(config: Any, participants: Iterable[str]) -> Background:
    """``start_background`` for a server's ``ServerConfig`` (duck-typed: events sits below the
    server). The configuration entry holds every setting but the database's DSN, which may
    carry a password: of the database, its kind and schema or path."""
    database = config.database
    postgres = str(database.kind.value) == "postgres"
    settings = {name: value for name, value in vars(config).items() if name != "database"} | {
        "database_kind": str(database.kind.value)
    }
    if postgres:
        settings["database_schema"] = database.schema
    else:
        settings["database_path"] = str(database.path)
    db = database.dsn if postgres else str(database.path)
    return await start_background(
        db, database.schema, settings, participants, nats=nats_settings_from_environment()
    )
