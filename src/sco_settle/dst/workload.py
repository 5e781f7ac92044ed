"""The clients: the banks' systems that pay, retry, cancel and return, and the network operator
that adds liquidity. Every choice comes from the run's one random source.

Clients behave as the API asks of them, and as real ones misbehave within that contract:

- a request that got no answer (a timeout, a lost response, a 5xx, a 409 "in progress") is
  retried later with the same idempotency key and the same body;
- an answered request is sometimes sent again with its key (the client lost the answer on its
  side), and an answered payment is sometimes resubmitted under a new key (same payment id: the
  engine must answer its first outcome), or with other content (it must be refused DUPL);
- a debtor agent cancels a payment it was told is queued; a creditor agent returns a payment it
  was told settled to it.
"""

from __future__ import annotations

import dataclasses
import json
import random
from typing import Any

from sco_settle.domain.account_key import AccountKey
from sco_settle.domain.transfer import Transfer, TransferFlags
from sco_settle.dst.disk import SimClock
from sco_settle.dst.node import CANCEL, LIQUIDITY, PAY, RETURN, Reply, Request
from sco_settle.dst.world import World
from sco_settle.payments.model import AmountType, Payment, Priority
from sco_settle.payments.network_view import NetworkView

OPERATOR_SCOPE = "operator:network_operator"
LIQUIDITY_ID_BASE = 2_000_000  # client transfer ids (far below the engine's range)
GROUP_SIZES = (1, 1, 1, 2, 2, 3, 4)
NS_PER_MINUTE = 60 * 10**9


def scope_of(bic: str) -> str:
    return f"{bic}:participant"


class Clients:
    def __init__(self, rng: random.Random, world: World, view: NetworkView, clock: SimClock):
        self.rng = rng
        self.world = world
        self.view = view
        self.clock = clock
        self.sent = 0
        self.outstanding: dict[str, Request] = {}  # key -> a request not answered yet
        self.answered: list[Request] = []
        self._answered_keys: set[str] = set()
        self.paid: list[Payment] = []  # payments answered (for resubmissions)
        self.queued: dict[str, Payment] = {}  # payments a debtor agent was told wait
        self.settled: dict[str, Payment] = {}  # payments a creditor agent was told settled
        self.pending: list[int] = []  # pending liquidity transfers the operator was told exist

    # -- what is sent ---------------------------------------------------------------------------

    def group(self) -> list[Request]:
        return [self.one() for _ in range(self.rng.choice(GROUP_SIZES))]

    def one(self) -> Request:
        roll = self.rng.random()
        if self.outstanding and roll < 0.25:  # A retry: same key, same body.
            return self.outstanding[self.rng.choice(sorted(self.outstanding))]
        if self.answered and roll < 0.31:  # The answer was lost on the client's side.
            return self.rng.choice(self.answered)
        if self.paid and roll < 0.35:  # Resubmitted under a new key.
            return self._pay(self.rng.choice(self.paid))
        if self.paid and roll < 0.37:  # Another instruction under a used payment id.
            first = self.rng.choice(self.paid)
            return self._pay(dataclasses.replace(first, amount_minor=first.amount_minor + 1))
        if self.queued and roll < 0.44:
            return self._cancel(self.queued[self.rng.choice(sorted(self.queued))])
        if self.settled and roll < 0.50:
            return self._return(self.settled[self.rng.choice(sorted(self.settled))])
        if roll < 0.56:
            return self._request(LIQUIDITY, OPERATOR_SCOPE, self._liquidity())
        return self._pay(self._payment())

    def _pay(self, payment: Payment) -> Request:
        return self._request(PAY, scope_of(payment.debtor_agent), payment)

    def _cancel(self, payment: Payment) -> Request:
        payload = (payment.payment_id, payment.debtor_agent)
        return self._request(CANCEL, scope_of(payment.debtor_agent), payload)

    def _return(self, payment: Payment) -> Request:
        """The creditor agent returns all of it, under a new return id."""
        payload = (payment.payment_id, payment.creditor_agent, f"R{self.sent}")
        return self._request(RETURN, scope_of(payment.creditor_agent), payload)

    def _request(self, kind: str, scope: str, payload: Any) -> Request:
        self.sent += 1
        return Request(self.sent, kind, scope, f"k{self.sent}", payload)

    def _payment(self) -> Payment:
        rng = self.rng
        debtor, creditor = rng.sample(self.world.banks, 2)
        currency, creditor_currency = self.world.home[debtor], self.world.home[creditor]
        amount = int(10 ** rng.uniform(3, 9.5))
        now = self.clock()
        settle_from = now + rng.randint(1, 10) * NS_PER_MINUTE if rng.random() < 0.08 else 0
        settle_till = now + rng.randint(2, 30) * NS_PER_MINUTE if rng.random() < 0.08 else 0
        if settle_till and settle_from >= settle_till:
            settle_till = 0
        receive = currency != creditor_currency and rng.random() < 0.25
        return Payment(
            payment_id=f"{debtor}:P{self.sent + 1}",
            debtor_agent=debtor,
            creditor_agent=creditor,
            amount_minor=amount,
            currency=currency,
            creditor_currency=creditor_currency,
            priority=Priority.URGENT if rng.random() < 0.1 else Priority.NORMAL,
            amount_type=AmountType.RECEIVE if receive else AmountType.SEND,
            settle_from=settle_from,
            settle_till=settle_till,
        )

    def _liquidity(self) -> tuple[Transfer, ...]:
        """The operator funds a bank's settlement account from its currency's issuance: at
        once, or reserved (a pending transfer with a timeout) and later posted or voided."""
        number = LIQUIDITY_ID_BASE + self.sent + 1
        if self.pending and self.rng.random() < 0.4:
            pending_id = self.pending.pop(self.rng.randrange(len(self.pending)))
            post = self.rng.random() < 0.6
            resolve = TransferFlags.POST_PENDING if post else TransferFlags.VOID_PENDING
            return (Transfer(number, flags=int(resolve), pending_id=pending_id),)
        bic = self.rng.choice(self.world.banks)
        currency = self.world.home[bic]
        agent = self.world.network.currency_settlement_agent(currency)
        debit = self.view.account_id(AccountKey.issuance(agent, currency))
        credit = self.view.account_id(AccountKey.settlement(bic, currency))
        assert debit is not None and credit is not None, (bic, currency)
        amount = int(10 ** self.rng.uniform(5, 9))
        if self.rng.random() < 0.3:
            timeout_seconds = self.rng.randint(30, 1_800)
            pending = int(TransferFlags.PENDING)
            return (Transfer(number, debit, credit, amount, pending, timeout=timeout_seconds),)
        return (Transfer(number, debit, credit, amount),)

    # -- what comes back ------------------------------------------------------------------------

    def answer(self, request: Request, reply: Reply | None) -> None:
        """``reply``: what reached the client (None: nothing did)."""
        if reply is None or reply.status >= 500 or reply.status == 409:
            self.outstanding[request.key] = request
            return
        self.outstanding.pop(request.key, None)
        if request.key not in self._answered_keys:
            self._answered_keys.add(request.key)
            self.answered.append(request)
        body = json.loads(reply.body)
        if request.kind == PAY and reply.status in (200, 201) and body.get("reason") != "DUPL":
            self._learn(request.payload, body)
        elif request.kind in (CANCEL, RETURN) and body.get("payment"):
            self.queued.pop(request.payload[0], None)
        elif request.kind == LIQUIDITY:
            (transfer,) = request.payload
            if transfer.flags & TransferFlags.PENDING and body["results"] == ["ok"]:
                self.pending.append(transfer.id)

    def _learn(self, payment: Payment, outcome: dict[str, Any]) -> None:
        if payment not in self.paid:
            self.paid.append(payment)
        status = outcome.get("status")
        if status == "queued":
            self.queued[payment.payment_id] = payment
        else:
            self.queued.pop(payment.payment_id, None)
        if status == "settled" and not payment.returns:
            self.settled[payment.payment_id] = payment
