"""Publish the outbox to NATS JetStream: at least once, each message once in the stream.

The loop: read the entries above the recorded progress, publish their messages (``Nats-Msg-Id``
``sco-<seq>-<n>``), wait for every acknowledgement, then record the last seq. Any failure (NATS
down, restarting, a timeout) leaves the progress where it was; the next round publishes the
same messages again, and JetStream drops the copies it already holds (its duplicate window is
set to ``NatsSettings.duplicate_window_seconds``). A consumer that must survive copies older than
the window drops a message id it has seen (the id is stable forever).

The stream ``SCO_EVENTS`` holds ``sco.events.>``. For each participant the publisher keeps a
durable pull consumer ``P_<BIC>`` filtered to ``sco.events.<BIC>.>``; a participant's NATS user
may only pull from and acknowledge on its own consumer (``events.access``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import nats
from nats.js import api
from nats.js.errors import NotFoundError

from sco_settle.events.messages import SUBJECT_PREFIX, EventMessage
from sco_settle.events.outbox import Outbox

__all__ = [
    "STREAM",
    "NatsSettings",
    "consumer_name",
    "ensure_stream",
    "publish_pending",
    "run_publisher",
]

logger = logging.getLogger("sco_settle.events")
STREAM = "SCO_EVENTS"
_ENTRIES_PER_ROUND = 200  # Entries read per round: bounds memory and the work lost to a failure.
_IN_FLIGHT_MAX = 256  # Publishes awaiting their acknowledgement at once.


@dataclass(frozen=True, slots=True)
class NatsSettings:
    url: str = "nats://127.0.0.1:4222"
    user: str | None = None
    password: str | None = None
    stream: str = STREAM
    duplicate_window_seconds: float = 24 * 3600.0
    timeout_seconds: float = 5.0


def consumer_name(participant: str) -> str:
    return f"P_{participant}"


async def connect(settings: NatsSettings) -> Any:
    options: dict[str, Any] = {"servers": [settings.url], "max_reconnect_attempts": -1}
    if settings.user is not None:
        options.update(user=settings.user, password=settings.password)
    return await nats.connect(**options)


async def ensure_stream(js: Any, settings: NatsSettings, participants: Iterable[str]) -> None:
    """Create (or update) the stream and each participant's durable consumer."""
    config = api.StreamConfig(
        name=settings.stream,
        subjects=[f"{SUBJECT_PREFIX}.>"],
        storage=api.StorageType.FILE,
        duplicate_window=settings.duplicate_window_seconds,
    )
    try:
        await js.stream_info(settings.stream)
        await js.update_stream(config)
    except NotFoundError:
        await js.add_stream(config)
    for participant in sorted(set(participants)):
        await js.add_consumer(
            settings.stream,
            api.ConsumerConfig(
                durable_name=consumer_name(participant),
                filter_subject=f"{SUBJECT_PREFIX}.{participant}.>",
                ack_policy=api.AckPolicy.EXPLICIT,
                deliver_policy=api.DeliverPolicy.ALL,
            ),
        )


async def _publish(js: Any, settings: NatsSettings, messages: list[EventMessage]) -> int:
    """Publish and await every acknowledgement; the number JetStream found to be copies."""
    copies = 0
    for start in range(0, len(messages), _IN_FLIGHT_MAX):
        acks = await asyncio.gather(
            *(
                js.publish(
                    m.subject,
                    json.dumps(m.body, sort_keys=True).encode(),
                    timeout=settings.timeout_seconds,
                    stream=settings.stream,
                    headers={"Nats-Msg-Id": m.msg_id},
                )
                for m in messages[start : start + _IN_FLIGHT_MAX]
            )
        )
        copies += sum(1 for ack in acks if ack.duplicate)
    return copies


async def publish_pending(
    outbox: Outbox, js: Any, settings: NatsSettings, *, start: int | None = None
) -> tuple[int, int]:
    """Publish every entry above the recorded progress (or from seq ``start`` on: a replay);
    (messages published, of which copies). Progress moves forward only."""
    after = await asyncio.to_thread(outbox.published) if start is None else start - 1
    published = copies = 0
    while True:
        batches = await asyncio.to_thread(outbox.read, after, _ENTRIES_PER_ROUND)
        if not batches:
            return published, copies
        messages = [m for batch in batches for m in batch.messages]
        copies += await _publish(js, settings, messages)
        published += len(messages)
        after = batches[-1].seq
        await asyncio.to_thread(outbox.mark_published, after)


async def run_publisher(
    outbox: Outbox,
    settings: NatsSettings,
    participants: Iterable[str],
    stop: asyncio.Event,
    *,
    poll_seconds: float = 0.2,
) -> None:
    """Publish until ``stop`` is set, reconnecting and retrying after any NATS failure."""
    chosen = sorted(set(participants))
    delay = poll_seconds
    while not stop.is_set():
        nc = None
        try:
            nc = await connect(settings)
            js = nc.jetstream(timeout=settings.timeout_seconds)
            await ensure_stream(js, settings, chosen)
            while not stop.is_set():
                await publish_pending(outbox, js, settings)
                delay = poll_seconds
                await _sleep(stop, poll_seconds)
        except Exception as error:  # NATS down or restarting: keep the progress, retry.
            logger.warning("event publisher: %r; retrying", error, extra={"event": "events_retry"})
            delay = min(delay * 2, 5.0)
            await _sleep(stop, delay)
        finally:
            if nc is not None and not nc.is_closed:
                await nc.close()


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
