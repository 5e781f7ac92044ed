"""The payment records as the API shows them: a payment with its events, pages of the payments
a caller may see, and totals per corridor.

Everything is read through the ``PaymentQueries`` port (``payments.records``), on read-only
sessions of the records' store, never on the writer's. A SQLite session serves one request
thread; PostgreSQL sessions are costlier, so a few are shared by all threads, each used by one
thread at a time. This module only shapes what the port returns into the API's JSON.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sco_settle.gateway.iso import applied_rate_of
from sco_settle.payments.model import Payment, PaymentOutcome, PaymentStatus
from sco_settle.payments.records import (
    PaymentFilter,
    PaymentQueries,
    RecordedPayment,
    payment_fields,
)

EVENTS_SHOWN_MAX = 1000  # Events of one payment in its detail.


class PaymentReader:
    """Read-only sessions (from ``open_session``) and the JSON the routes answer with.

    ``per_thread``: one session per request thread (SQLite); else a pool of at most
    ``sessions_max`` sessions (PostgreSQL), where a request waits for a free one.
    """

    def __init__(
        self,
        open_session: Callable[[], PaymentQueries],
        *,
        per_thread: bool,
        sessions_max: int,
    ) -> None:
        self._open_session = open_session
        self._per_thread = per_thread
        self._local = threading.local()
        self._pool: queue.Queue[PaymentQueries] = queue.Queue()
        self._slots = threading.BoundedSemaphore(sessions_max)
        self._opened: list[PaymentQueries] = []
        self._lock = threading.Lock()

    def _new_session(self) -> PaymentQueries:
        session = self._open_session()
        with self._lock:
            self._opened.append(session)
        return session

    @contextmanager
    def _session(self) -> Iterator[PaymentQueries]:
        if self._per_thread:
            session = getattr(self._local, "session", None)
            if session is None:
                session = self._local.session = self._new_session()
            yield session
            return
        with self._slots:
            try:
                session = self._pool.get_nowait()
            except queue.Empty:
                session = self._new_session()
            try:
                yield session
            finally:
                self._pool.put(session)

    def get(self, payment_id: str) -> dict[str, Any] | None:
        """The payment's JSON with its events, or None."""
        with self._session() as session:
            found = session.payment(payment_id)
            if found is None:
                return None
            events = session.events(payment_id, limit=EVENTS_SHOWN_MAX)
        shown = payment_json(found)
        shown["events"] = [
            {"status": event.status, "at": event.at, "detail": event.detail} for event in events
        ]
        return shown

    def page(
        self, visible: PaymentFilter, *, after: int, limit: int, status: str | None = None
    ) -> list[tuple[int, dict[str, Any]]]:
        """The visible payments after the cursor ``after``, each with its own cursor."""
        with self._session() as session:
            found = session.list_payments(
                visible,
                after=after,
                limit=limit,
                status=PaymentStatus(status) if status is not None else None,
            )
        return [(recorded.seq, payment_json(recorded)) for recorded in found]

    def corridors(
        self, visible: PaymentFilter, *, received_min: int, received_max: int
    ) -> list[dict[str, Any]]:
        with self._session() as session:
            totals = session.corridors(
                visible, received_min=received_min, received_max=received_max
            )
        return [dataclasses.asdict(row) for row in totals]

    def close(self) -> None:
        with self._lock:
            for session in self._opened:
                session.close()
            self._opened.clear()


def outcome_fields(outcome: PaymentOutcome, payment: Payment | None = None) -> dict[str, Any]:
    """A payment's outcome as the API shows it (in answers to writes and in reads).

    ``amount_sent_minor``: debited from the debtor agent, in the payment's currency (0: not
    known). ``applied_rate`` (a decimal string, creditor currency per unit of the payment's
    currency) only for a payment settled or returned across currencies, and only with its
    ``payment`` at hand; the pacs.002 states the same rate (``gateway.iso.applied_rate_of``).
    """
    fields: dict[str, Any] = {
        "payment_id": outcome.payment_id,
        "status": outcome.status.value,
        "reason": outcome.reason.value if outcome.reason else None,
        "reason_text": outcome.reason_text,
        "amount_delivered_minor": outcome.amount_delivered_minor,
        "amount_sent_minor": outcome.amount_sent_minor,
        "amount_returned_minor": outcome.amount_returned_minor,
        "route": list(outcome.route),
        "transfer_ids": [str(i) for i in outcome.transfer_ids],
        "settled_at": outcome.settled_at,
    }
    rate = applied_rate_of(payment, outcome) if payment is not None else None
    if rate is not None:
        fields["applied_rate"] = format(rate, "f")
    return fields


def payment_json(recorded: RecordedPayment) -> dict[str, Any]:
    """A payment as the API shows it: its outcome and the instruction it came from."""
    instruction = payment_fields(recorded.payment)
    del instruction["payment_id"]
    return {
        **outcome_fields(recorded.outcome, recorded.payment),
        "received_at": recorded.received_at,
        "instruction": dict(sorted(instruction.items())),
    }
