"""``sco-settle dashboard``: one command from nothing to the dashboard in a browser.

It composes what exists, in order:

1. a database: a SQLite ``--db`` that does not exist yet is made as a demo, one simulated day of
   SCO trade payments (``sim.run.run_simulation``: the network installed and funded, routed and
   converted payments, FX income), so that no view is empty; an existing file is used as it is
   (a simulation's ``--db``, ``sco-settle init``, a server's); one that another process is
   writing (a simulation still running) is waited for, up to ``--wait`` seconds;
2. a network-operator API key, labelled ``DASHBOARD_KEY_LABEL``: created at start, printed once,
   and revoked when the command stops (also a key a killed run left behind, at the next start),
   so the key lives only as long as the server it signs in to;
3. ``sco-settle serve`` on that database.

The key is printed, never put in a URL: a URL is kept in browser history and in access logs, a
key must not be (``docs/dashboard.md``, "One command").
"""

from __future__ import annotations

import signal
import time
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sco_settle.cli.serve import _fail, _key_store, serve

if TYPE_CHECKING:
    from sco_settle.server.keys import IssuedKey, KeyStore

DASHBOARD_KEY_LABEL = "sco-settle dashboard (revoked when it stops)"
# The demo's day: seed 7 at 2 % of the calibrated daily value, about 90 payments in 27 currencies
# (a few seconds). The calibration, the workload and the opening balances are the simulator's
# ASSUMPTIONS (``docs/simulator.md``), not facts about SCO trade.
DEMO_SEED = 7
DEMO_SCALE = Fraction(1, 50)
WAIT_POLL_SECONDS = 0.5
KEY_PAGE = 1000


def register(app: typer.Typer) -> None:
    """Add the ``dashboard`` command to the ``sco-settle`` app."""
    app.command("dashboard")(dashboard)


def dashboard(
    db: Annotated[
        str,
        typer.Option(
            "--db",
            help="sqlite:///PATH (made as a demo when absent) or postgresql://user@host/db.",
        ),
    ] = "sqlite:///sco.db",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    operator: Annotated[
        str, typer.Option(help="BIC the network-operator key is issued to.")
    ] = "PBOCCNBJ",
    mode: Annotated[str, typer.Option(help='Settlement mode: "rtgs", "dns" or "union".')] = "rtgs",
    demo: Annotated[
        bool, typer.Option(help="Make a missing SQLite database as a simulated day of payments.")
    ] = True,
    wait: Annotated[
        float,
        typer.Option(
            min=0,
            max=24 * 3600,
            help="Seconds to wait for a process writing the database (a running simulation).",
        ),
    ] = 0,
    schema: Annotated[str, typer.Option(help="PostgreSQL schema of the ledger.")] = "sco_settle",
) -> None:
    """The dashboard in one command: a demo database when there is none, an operator key
    (printed; revoked when this stops), and the server. Open the printed address."""
    from sco_settle.server import ConfigError, parse_database_url
    from sco_settle.server.config import DatabaseKind

    try:
        database = parse_database_url(db, schema=schema)
    except ConfigError as error:
        _fail(str(error))
        return
    if database.kind is DatabaseKind.SQLITE:
        assert database.path is not None
        if not database.path.exists() and demo:
            _make_demo(database.path, mode)
        elif database.path.exists():
            _wait_for_writer(database.path, wait)
    store = _key_store(db, schema)
    try:
        issued = _operator_key(store, operator)
    finally:
        store.db.close()
    _print_sign_in(host, port, issued)
    # uvicorn shuts down gracefully on SIGTERM, then raises it again under the handler found
    # before it started: this one turns it into an exit that runs the ``finally`` (the revocation).
    previous = signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        serve(db=db, port=port, host=host, mode=mode, schema=schema)
    finally:
        signal.signal(signal.SIGTERM, previous)
        _revoke(db, schema, issued.record.key_id)


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _make_demo(path: Path, mode: str) -> None:
    """One simulated day of SCO trade payments into the new SQLite file ``path``."""
    from sco_settle.payments.model import PaymentStatus
    from sco_settle.payments.modes import Mode
    from sco_settle.sim.run import SimOptions, run_simulation

    if mode not in {m.value for m in Mode}:
        _fail(f"--mode must be one of {', '.join(Mode)}, not {mode!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    typer.echo(
        f"No database at {path}: making a demo, one simulated day of SCO trade payments"
        f" (seed {DEMO_SEED}, {DEMO_SCALE.numerator * 100 // DEMO_SCALE.denominator} % of the"
        " calibrated value; the workload is the simulator's assumption, docs/simulator.md)."
    )
    options = SimOptions(days=1, seed=DEMO_SEED, mode=Mode(mode), scale=DEMO_SCALE, db=path)
    result = run_simulation(options)
    settled = sum(1 for final in result.finals.values() if final.status is PaymentStatus.SETTLED)
    typer.echo(f"Demo made: {len(result.finals)} payments, {settled} settled; {result.verify_text}")


def _wait_for_writer(path: Path, wait_seconds: float) -> None:
    """Return once no other process holds ``path`` open for writing (the ledger's single-writer
    lock, taken and released here by opening the store), waiting at most ``wait_seconds``."""
    from sco_settle.storage import SqliteStore, StoreLockedError

    deadline = time.monotonic() + wait_seconds
    told = False
    while True:
        try:
            SqliteStore(path).close()
            return
        except StoreLockedError:
            if time.monotonic() >= deadline:
                _fail(
                    f"{path} is being written by another process (a simulation still running?);"
                    " start the dashboard when it ends, or give --wait SECONDS"
                )
            if not told:
                typer.echo(f"{path} is being written by another process; waiting for it to end.")
                told = True
            time.sleep(WAIT_POLL_SECONDS)


def _operator_key(store: KeyStore, operator: str) -> IssuedKey:
    """A new network-operator key for this run, after revoking any a killed run left active."""
    from sco_settle.network import load_network
    from sco_settle.server.keys import KeyStatus, Role, holder_problem

    problem = holder_problem(load_network("sco"), operator, Role.NETWORK_OPERATOR)
    if problem is not None:
        _fail(problem)
    now = int(time.time())
    after = ""
    while True:
        records = store.list(after=after, limit=KEY_PAGE)
        for record in records:
            if record.label == DASHBOARD_KEY_LABEL and record.status(now) is KeyStatus.ACTIVE:
                store.revoke(record.key_id)
        if len(records) < KEY_PAGE:
            break
        after = records[-1].key_id
    return store.create(operator, Role.NETWORK_OPERATOR, label=DASHBOARD_KEY_LABEL)


def _print_sign_in(host: str, port: int, issued: IssuedKey) -> None:
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    typer.echo(f"Dashboard: http://{shown_host}:{port}/dashboard")
    typer.echo("Sign in with this network-operator key (revoked when this command stops):")
    typer.echo(f"  {issued.api_key}")


def _revoke(db: str, schema: str, key_id: str) -> None:
    store = _key_store(db, schema)
    try:
        store.revoke(key_id)
    finally:
        store.db.close()
    typer.echo(f"Revoked the dashboard key {key_id}.")
