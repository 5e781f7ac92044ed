"""``sco-settle serve`` and ``sco-settle keys ...``: parsing and printing only.

The server lives in ``sco_settle.server``; keys in ``sco_settle.server.keys``. Mounted by
``cli/main.py`` with ``register(app)``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:  # Imported where used, so that the other commands start fast.
    from sco_settle.server.config import ServerConfig
    from sco_settle.server.ha import HaNode, HaSettings
    from sco_settle.server.keys import IssuedKey, KeyStore

DbUrlOption = Annotated[
    str,
    typer.Option(
        "--db", help="sqlite:///PATH (or a plain path) or postgresql://user@host:port/database."
    ),
]
SchemaOption = Annotated[
    str,
    typer.Option("--schema", help="PostgreSQL schema of the ledger (API tables: <schema>_api)."),
]
NetworkOption = Annotated[str, typer.Option(help='Network name ("sco") or a YAML file.')]

keys_app = typer.Typer(
    help="API keys: create (shown once), list, revoke, rotate.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add ``serve`` and the ``keys`` commands to the ``sco-settle`` app."""
    app.command("serve")(serve)
    app.add_typer(keys_app, name="keys")


def _fail(message: str) -> None:
    sys.stderr.write(f"sco-settle: {' '.join(message.split())}\n")
    raise typer.Exit(1)


def serve(
    db: DbUrlOption,
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    network: NetworkOption = "sco",
    payment_records: Annotated[
        Path | None,
        typer.Option(
            "--payment-records",
            "--journal",  # Its name before the records moved into the ledger's database.
            help="Keep the payment records in this SQLite file instead of the ledger's database"
            " (for deployments that kept them apart before).",
        ),
    ] = None,
    schema: SchemaOption = "sco_settle",
    mode: Annotated[str, typer.Option(help='Settlement mode: "rtgs", "dns" or "union".')] = "rtgs",
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    operating_day: Annotated[
        bool,
        typer.Option(
            "--operating-day",
            help="Business calendars: payments settle only while both currencies are open, and"
            " each currency's business day is closed after its end of day (tranches unwound,"
            " statements written).",
        ),
    ] = False,
    statements_dir: Annotated[
        Path | None,
        typer.Option(help="With --operating-day: write each closed day's camt.053 here."),
    ] = None,
    ha: Annotated[
        bool,
        typer.Option(
            "--ha",
            help="High availability (PostgreSQL, docs/deployment-ha.md): write only while this"
            " process holds the writer lock, else wait as a hot standby; after losing the"
            " primary, answer 503 and reconnect to the promoted standby.",
        ),
    ] = False,
    reconnect_delay_max: Annotated[
        float,
        typer.Option(
            help="With --ha: the longest wait between reconnection attempts (s).", min=0.1
        ),
    ] = 1.0,
) -> None:
    """Serve the REST API (JSON-lines logs on stderr). An empty ledger gets the network's
    accounts and opening balances first."""
    import uvicorn

    from sco_settle.payments.modes import Mode
    from sco_settle.server import ConfigError, ServerConfig, create_app, parse_database_url
    from sco_settle.server.logging import configure_logging

    if mode not in {m.value for m in Mode}:
        _fail(f"--mode must be one of {', '.join(Mode)}, not {mode!r}")
    settings = _ha_settings(reconnect_delay_max) if ha else None
    try:
        config = ServerConfig(
            parse_database_url(_ha_url(db, settings), schema=schema),
            network=network,
            payment_records_path=payment_records,
            mode=Mode(mode),
            operating_day=operating_day,
            statements_dir=statements_dir,
            host=host,
            port=port,
            log_level=log_level.upper(),
        )
    except ConfigError as error:
        _fail(str(error))
        return
    configure_logging(config.log_level)
    if settings is not None:
        app: Any = _ha_node(config, settings)
    else:
        try:
            app = create_app(config)
        except Exception as error:
            _fail_on_database_error(error)
            raise
    import logging

    logging.getLogger("sco_settle.server").info(
        "serving",
        extra={
            "event": "serving",
            "db": config.database.describe(),
            "host": host,
            "port": port,
            "mode": mode,
            "ha": ha,
        },
    )
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=30,
        lifespan="on",
    )


def _ha_settings(reconnect_delay_max: float) -> HaSettings:
    from sco_settle.server.ha import HaSettings, ReconnectPolicy

    first = min(0.1, reconnect_delay_max)
    return HaSettings(reconnect=ReconnectPolicy(first, reconnect_delay_max))


def _ha_url(db: str, settings: HaSettings | None) -> str:
    """``--db`` as given; with ``--ha``, a PostgreSQL URL with libpq's failover parameters."""
    if settings is None:
        return db
    if not db.strip().startswith(("postgresql://", "postgres://")):
        _fail("--ha needs a PostgreSQL database (--db postgresql://host1:port1,host2:port2/db)")
    from sco_settle.server.ha import failover_url

    try:
        return failover_url(db.strip(), settings)
    except Exception as error:  # psycopg.ProgrammingError: libpq cannot parse it
        _fail(f"--db: {error}")
        raise


def _ha_node(config: ServerConfig, settings: HaSettings) -> HaNode:
    from sco_settle.server.app import close_context, create_app
    from sco_settle.server.ha import HaNode

    return HaNode(config, settings, create_app, lambda app: close_context(app.state.context))


def _fail_on_database_error(error: Exception) -> None:
    """A database that cannot be reached is a one-line error, not a traceback."""
    if type(error).__module__.split(".")[0] == "psycopg":
        _fail(f"PostgreSQL: {error}")


def _key_store(db: str, schema: str) -> KeyStore:
    from sco_settle.server import ConfigError, parse_database_url
    from sco_settle.server.db import StateDb
    from sco_settle.server.keys import KeyStore

    try:
        database = parse_database_url(db, schema=schema)
    except ConfigError as error:
        _fail(str(error))
    try:
        return KeyStore(StateDb(database))
    except Exception as error:
        _fail_on_database_error(error)
        raise


def _print_issued(issued: IssuedKey) -> None:
    record = issued.record
    typer.echo(f"key id:          {record.key_id}")
    typer.echo(f"participant:     {record.participant}")
    typer.echo(f"role:            {record.role.value}")
    typer.echo(f"api key:         {issued.api_key}")
    typer.echo(f"signing secret:  {issued.signing_secret}")
    typer.echo("Store both now: they are shown once and cannot be shown again.")


@keys_app.command("create")
def keys_create(
    db: DbUrlOption,
    participant: Annotated[str, typer.Option(help="The key holder's BIC.")],
    role: Annotated[
        str, typer.Option(help="participant, currency_operator, network_operator or auditor.")
    ] = "participant",
    label: Annotated[str, typer.Option(help="A note for the key list.")] = "",
    network: NetworkOption = "sco",
    schema: SchemaOption = "sco_settle",
) -> None:
    """Create a key and print it (with its signing secret) once."""
    from sco_settle.network import load_network
    from sco_settle.server.keys import Role, holder_problem

    try:
        chosen = Role(role)
    except ValueError:
        _fail(f"unknown role {role!r}; choose one of {', '.join(r.value for r in Role)}")
        return
    problem = holder_problem(load_network(network), participant, chosen)
    if problem is not None:
        _fail(problem)
    _print_issued(_key_store(db, schema).create(participant, chosen, label=label))


@keys_app.command("list")
def keys_list(db: DbUrlOption, schema: SchemaOption = "sco_settle") -> None:
    """Every key with its status (never a secret)."""
    store = _key_store(db, schema)
    now = int(time.time())
    after = ""
    typer.echo(f"{'key id':<17} {'participant':<12} {'role':<18} {'status':<8} created / expires")
    while True:
        records = store.list(after=after, limit=1000)
        for record in records:
            expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.expires_at or 0))
            created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created_at))
            typer.echo(
                f"{record.key_id:<17} {record.participant:<12} {record.role.value:<18}"
                f" {record.status(now).value:<8} {created}"
                + (f" / {expires}" if record.expires_at else "")
            )
        if len(records) < 1000:
            return
        after = records[-1].key_id


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (16 hex digits).")],
    db: DbUrlOption,
    schema: SchemaOption = "sco_settle",
) -> None:
    """Revoke a key: refused from the server's next request on."""
    from sco_settle.server.keys import UnknownKeyError

    try:
        record = _key_store(db, schema).revoke(key_id)
    except UnknownKeyError:
        _fail(f"no key {key_id!r}")
        return
    typer.echo(f"revoked {record.key_id} ({record.participant}, {record.role.value})")


@keys_app.command("rotate")
def keys_rotate(
    key_id: Annotated[str, typer.Argument(help="The key id (16 hex digits).")],
    db: DbUrlOption,
    grace_seconds: Annotated[
        int, typer.Option(help="How long the old key stays valid.", min=0, max=30 * 24 * 3600)
    ] = 24 * 3600,
    schema: SchemaOption = "sco_settle",
) -> None:
    """Issue a successor key (printed once); the old one expires after the grace period."""
    from sco_settle.server.keys import KeyNotActiveError, UnknownKeyError

    try:
        issued = _key_store(db, schema).rotate(key_id, grace_seconds=grace_seconds)
    except UnknownKeyError:
        _fail(f"no key {key_id!r}")
        return
    except KeyNotActiveError as error:
        _fail(str(error))
        return
    _print_issued(issued)
    typer.echo(f"The old key {key_id} stays valid for {grace_seconds} s unless revoked.")
