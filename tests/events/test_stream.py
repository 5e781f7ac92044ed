"""The event stream: what it carries rebuilds every balance, each message is in the stream
once, a participant reads only its own events, and all of it holds across a SIGKILL of the
server and a restart of NATS."""

from __future__ import annotations

import json

import nats
import pytest

from sco_settle.events.outbox import Outbox
from sco_settle.events.publisher import STREAM, connect, consumer_name, ensure_stream
from sco_settle.events.publisher import publish_pending as publish_outbox
from sco_settle.storage import SqliteStore
from tests.audit.conftest import populate

from .conftest import (
    PARTICIPANTS,
    connect_as,
    fetch_all,
    ledger_balances,
    rebuild_balances,
    run,
)


def test_the_outbox_messages_rebuild_every_balance_of_the_ledger(tmp_path, sco_view):
    """Without NATS: the messages of every entry, added up per account, are the ledger's
    balances (pending and posted, with a post and an expiry among them)."""
    db = tmp_path / "outbox.db"
    populate(str(db), "sco_settle", sco_view)
    outbox = Outbox(str(db))
    try:
        messages = [m for batch in outbox.read(0, 10_000) for m in batch.messages]
        store = SqliteStore(db, readonly=True)
        expected = {
            stored.account.id: list(stored.balance())
            for stored in store.iter_accounts()
            if any(stored.balance())
        }
        store.close()
    finally:
        outbox.close()
    rebuilt = rebuild_balances([_Raw(m.body) for m in messages])
    assert {k: v for k, v in rebuilt.items() if any(v)} == expected
    assert len({m.msg_id for m in messages}) == len(messages)
    types = {m.body["type"] for m in messages}
    assert types == {"transfer", "pending_expired", "payment_status"}
    for message in messages:
        body = message.body
        currency = body["creditor_currency" if body.get("role") == "creditor" else "currency"]
        assert message.subject == f"sco.events.{body['participant']}.{currency}"


def test_publishing_twice_keeps_one_copy_and_participants_read_only_their_own(
    tmp_path, sco_view, nats_server
):
    db = tmp_path / "stream.db"
    populate(str(db), "sco_settle", sco_view)
    settings = nats_server.settings()

    async def publish(start=None):
        outbox = Outbox(str(db))
        nc = await connect(settings)
        try:
            js = nc.jetstream()
            await ensure_stream(js, settings, PARTICIPANTS)
            return await publish_outbox(outbox, js, settings, start=start)
        finally:
            await nc.close()
            outbox.close()

    published, copies = run(publish())
    assert published > 100 and copies == 0
    assert run(publish()) == (0, 0)  # The progress was recorded: nothing left to publish.
    replayed, copies = run(publish(start=1))  # A replay: every id is already in the stream.
    assert replayed == published and copies == published
    store = SqliteStore(db, readonly=True)
    try:
        for participant in PARTICIPANTS:
            received = run(fetch_all(nats_server, participant))
            bodies = [json.loads(m.data) for m in received]
            assert {b["participant"] for b in bodies} <= {participant}
            assert len({m.headers["Nats-Msg-Id"] for m in received}) == len(received)
            rebuilt = rebuild_balances(received)
            assert {k: v for k, v in rebuilt.items() if any(v)} == ledger_balances(
                store, participant
            )
    finally:
        store.close()
    run(_cannot_read_another_participants_events(nats_server, "HSBKKZKX", "BKCHCNBJ"))


async def _cannot_read_another_participants_events(server, me: str, other: str) -> None:
    errors: list[Exception] = []

    async def on_error(error: Exception) -> None:
        errors.append(error)

    nc = await connect_as(server, me, error_cb=on_error)
    try:
        # Core NATS: subscribing to the other's subjects is refused by the server.
        live = await nc.subscribe(f"sco.events.{other}.>")
        await nc.flush(timeout=2)
        await _wait_for(lambda: errors)
        assert any("permissions violation" in str(e).lower() for e in errors), errors
        with pytest.raises((nats.errors.TimeoutError, TimeoutError)):
            await live.next_msg(timeout=0.5)
        # JetStream: pulling from the other's consumer gets nothing (the request is refused).
        js = nc.jetstream(timeout=2)
        theirs = await js.pull_subscribe_bind(consumer_name(other), stream=STREAM)
        with pytest.raises((nats.errors.TimeoutError, TimeoutError)):
            await theirs.fetch(1, timeout=1)
        # Nor may it make a consumer of its own over the other's subjects.
        with pytest.raises((nats.errors.TimeoutError, TimeoutError, nats.js.errors.Error)):
            await js.add_consumer(
                STREAM, durable_name="SPY", filter_subject=f"sco.events.{other}.>"
            )
        # Nor listen on another participant's inbox.
        errors.clear()
        await nc.subscribe(f"_INBOX_{other}.>")
        await nc.flush(timeout=2)
        await _wait_for(lambda: errors)
        assert any("permissions violation" in str(e).lower() for e in errors), errors
    finally:
        await nc.close()


async def _wait_for(condition, seconds: float = 3.0) -> None:
    import asyncio

    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)


class _Raw:
    """A message body as a NATS message would carry it."""

    def __init__(self, body: dict) -> None:
        self.data = json.dumps(body).encode()
