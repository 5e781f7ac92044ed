"""``sco-settle events publish|replay|nats-config``: the event stream from the command line.

``publish`` publishes what the outbox holds beyond its recorded progress (as the server's
publisher does) and stops; ``replay --from SEQ`` publishes every entry from SEQ on again (the
stable message ids let JetStream drop what it already holds); ``nats-config`` writes a
nats-server configuration with one user per participant and the passwords it issued.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Annotated

import typer

from sco_settle.events.access import PUBLISHER_USER, nats_server_config
from sco_settle.events.outbox import Outbox
from sco_settle.events.publisher import STREAM, NatsSettings, connect, ensure_stream
from sco_settle.events.publisher import publish_pending as publish_outbox

events_app = typer.Typer(help="The event stream on NATS JetStream.", no_args_is_help=True)

DbUrl = Annotated[
    str, typer.Option("--db", help="SQLite database file, or postgresql://user@host:port/db.")
]
SchemaOption = Annotated[str, typer.Option(help="PostgreSQL schema of the ledger.")]
NatsUrl = Annotated[str, typer.Option("--nats", help="NATS server URL.")]
UserOption = Annotated[
    str | None, typer.Option(help="NATS user (default: $SCO_SETTLE_EVENTS_NATS_USER).")
]
NetworkOption = Annotated[str, typer.Option(help='Network name ("sco") or a YAML file.')]


def _settings(nats: str, user: str | None) -> NatsSettings:
    return NatsSettings(
        url=nats,
        user=user or os.environ.get("SCO_SETTLE_EVENTS_NATS_USER"),
        password=os.environ.get("SCO_SETTLE_EVENTS_NATS_PASSWORD"),
    )


def _participants(network: str) -> list[str]:
    from sco_settle.network import load_network

    return sorted(load_network(network).participants_by_bic)


async def _run(db: str, schema: str, settings: NatsSettings, network: str, start: int | None):
    outbox = Outbox(db, schema=schema)
    nc = await connect(settings)
    try:
        js = nc.jetstream(timeout=settings.timeout_seconds)
        await ensure_stream(js, settings, _participants(network))
        return await publish_outbox(outbox, js, settings, start=start)
    finally:
        await nc.close()
        outbox.close()


def _report(published: int, copies: int) -> None:
    sys.stdout.write(json.dumps({"published": published, "already_in_stream": copies}) + "\n")


@events_app.command("publish")
def publish_command(
    db: DbUrl,
    nats: NatsUrl = "nats://127.0.0.1:4222",
    schema: SchemaOption = "sco_settle",
    user: UserOption = None,
    network: NetworkOption = "sco",
) -> None:
    """Publish every entry beyond the recorded progress, then stop."""
    _report(*asyncio.run(_run(db, schema, _settings(nats, user), network, None)))


@events_app.command("replay")
def replay_command(
    db: DbUrl,
    start: Annotated[int, typer.Option("--from", min=1, help="The first audit seq to publish.")],
    nats: NatsUrl = "nats://127.0.0.1:4222",
    schema: SchemaOption = "sco_settle",
    user: UserOption = None,
    network: NetworkOption = "sco",
) -> None:
    """Publish every entry from seq ``--from`` on again (copies are dropped by JetStream)."""
    _report(*asyncio.run(_run(db, schema, _settings(nats, user), network, start)))


@events_app.command("nats-config")
def nats_config_command(
    out: Annotated[Path, typer.Option(help="Where to write the nats-server configuration.")],
    credentials: Annotated[
        Path, typer.Option(help="Where to write the issued passwords (JSON; keep it secret).")
    ],
    network: NetworkOption = "sco",
    port: Annotated[int, typer.Option(help="The port nats-server listens on.")] = 4222,
    store_dir: Annotated[str, typer.Option(help="JetStream's storage directory.")] = (
        "/var/lib/nats"
    ),
) -> None:
    """Write a nats-server configuration: a ``publisher`` user, and one user per participant
    that may read its own events only (docs/audit-and-events.md)."""
    users = [PUBLISHER_USER, *_participants(network)]
    passwords = {user: secrets.token_urlsafe(24) for user in users}
    text = nats_server_config(passwords, stream=STREAM, port=port, store_dir=store_dir)
    for path, content in ((out, text), (credentials, json.dumps(passwords, indent=2) + "\n")):
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(content, encoding="utf-8")
    sys.stdout.write(f"wrote {out} ({len(users)} users) and {credentials}\n")


def register(app: typer.Typer) -> None:
    app.add_typer(events_app, name="events")
