"""The writer's grouping rules (group commit), without HTTP."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from types import SimpleNamespace

import httpx

from sco_settle.domain.transfer import Transfer, TransferFlags
from sco_settle.network import load_network
from sco_settle.payments.network_view import load_rates
from sco_settle.server import ServerConfig, parse_database_url
from sco_settle.server.app import build_app, close_context, open_context
from sco_settle.server.auth import Principal
from sco_settle.server.keys import Role
from sco_settle.server.service import UNUSABLE_ID, LedgerService, _Job

PENDING, POST, VOID = (
    int(TransferFlags.PENDING),
    int(TransferFlags.POST_PENDING),
    int(TransferFlags.VOID_PENDING),
)


def service(tmp_path, **limits) -> LedgerService:
    config = ServerConfig(parse_database_url(f"sqlite:///{tmp_path}/g.db"), **limits)
    return LedgerService(config, load_network("sco"), load_rates("sco"))


def names(groups):
    return [[job.payload for job in group] for group in groups]


def test_groups_keep_arrival_order_per_kind_and_end_at_open_chains(tmp_path):
    jobs = [
        _Job("transfers", "t1", size=3),
        _Job("payments", "p1"),
        _Job("transfers", "t2", size=2, chain_open=True),
        _Job("transfers", "t3", size=1),
        _Job("record", "r1"),
        _Job("quote", "q1"),
        _Job("transfers", "t4", size=1),
        _Job("quote", "q2"),
        _Job("payments", "p2"),
    ]
    groups = service(tmp_path)._groups(jobs)
    assert names(groups) == [["t1", "t2"], ["t3", "t4"], ["p1", "p2"], ["r1"], ["q1"], ["q2"]]


def test_groups_respect_the_event_limit(tmp_path):
    writer = service(tmp_path, group_events_max=4, group_payments_max=2)
    jobs = [_Job("transfers", f"t{n}", size=2) for n in range(5)]
    jobs += [_Job("payments", f"p{n}") for n in range(3)]
    jobs.append(replace(jobs[0], payload="big", size=4))
    assert names(writer._groups(jobs)) == [
        ["t0", "t1"],
        ["t2", "t3"],
        ["t4"],
        ["big"],
        ["p0", "p1"],
        ["p2"],
    ]


def test_a_pending_transfer_is_judged_by_the_one_the_ledger_will_resolve(tmp_path):
    """Requests merged into one ledger batch: a participant cannot resolve another's pending
    transfer created by an earlier request of the same group, nor hijack a stored one by
    reusing its id."""
    writer = service(tmp_path)
    mine, theirs = 11, 22
    writer.published.debitable_by_participant = {
        "AAAACNBJ": frozenset({mine}),
        "BBBBCNBJ": frozenset({theirs}),
    }
    stored = {500: Transfer(500, theirs, mine, 5, PENDING)}
    writer.ledger = SimpleNamespace(
        store=SimpleNamespace(get_transfers=lambda ids: {i: stored[i] for i in ids if i in stored})
    )
    a = Principal("k1", "AAAACNBJ", Role.PARTICIPANT, frozenset())
    b = Principal("k2", "BBBBCNBJ", Role.PARTICIPANT, frozenset())
    created = {}
    for transfer in writer._usable_transfers(b, [Transfer(600, theirs, mine, 5, PENDING)], created):
        created.setdefault(transfer.id, transfer)
    usable = writer._usable_transfers(
        a,
        [
            Transfer(1, pending_id=600, flags=POST),  # b's, from an earlier merged request
            Transfer(500, mine, theirs, 5, PENDING),  # reuses a stored id: "exists" in the ledger
            Transfer(2, pending_id=500, flags=VOID),  # so this still names b's stored transfer
            Transfer(700, mine, theirs, 5, PENDING),
            Transfer(3, pending_id=700, flags=POST),  # a's own, earlier in the batch
        ],
        created,
    )
    assert [t.pending_id for t in usable if t.flags & (POST | VOID)] == [
        UNUSABLE_ID,
        UNUSABLE_ID,
        700,
    ]


def test_a_failed_commit_stops_writes_until_restart(tmp_path):
    asyncio.run(failed_commit_stops_writes(tmp_path))


async def failed_commit_stops_writes(tmp_path):
    config = ServerConfig(parse_database_url(f"sqlite:///{tmp_path}/fail.db"))
    context = open_context(config)
    key = context.keys.create("BKCHCNBJ", Role.PARTICIPANT)
    headers = {"Authorization": f"Bearer {key.api_key}"}
    transport = httpx.ASGITransport(app=build_app(context), raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://sco") as http:
            own = (await http.get("/v1/accounts/settlement:BKCHCNBJ:CNY", headers=headers)).json()

            def disk_full(changes):
                raise OSError("disk full")

            context.service.store.commit = disk_full
            body = {
                "transfers": [
                    {
                        "id": "77",
                        "debit_account": own["id"],
                        "credit_account": own["id"],
                        "amount": 1,
                        "flags": ["pending"],
                    }
                ]
            }
            body["transfers"][0]["credit_account"] = str(int(own["id"]) + 1)
            first = await http.post(
                "/v1/transfer-batches", json=body, headers=headers | {"Idempotency-Key": "f-1"}
            )
            assert first.status_code == 500 and first.json()["code"] == "internal_error"
            later = await http.post(
                "/v1/transfer-batches", json=body, headers=headers | {"Idempotency-Key": "f-2"}
            )
            assert later.status_code == 503 and later.json()["code"] == "ledger_unavailable"
            health = await http.get("/health")
            assert health.status_code == 503 and health.json()["status"] == "failed"
            # Reads still answer, from what was committed.
            again = await http.get(f"/v1/accounts/{own['id']}", headers=headers)
            assert again.json() == own
    finally:
        close_context(context)
