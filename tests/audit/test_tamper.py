"""``sco-settle verify --audit`` finds every kind of tampering, on SQLite and PostgreSQL: rows
edited, deleted, inserted or reordered behind the application's back, in the chain itself and in
the ledger, payment and key tables it explains; and an untouched database verifies clean."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from sco_settle.audit.chain import AuditKind, Checkpoint, entry_hash
from sco_settle.audit.verify import FindingKind
from sco_settle.cli.audit import verify_database
from sco_settle.cli.main import app


def findings(db, checkpoint=None):
    report = verify_database(db.url, db.schema, checkpoint)
    return {(f.kind, f.seq) for f in report.findings}, report


def kinds(db, checkpoint=None):
    return {kind for kind, _ in findings(db, checkpoint)[0]}


def last_batch_seq(db):
    kind = AuditKind.LEDGER_BATCH.value
    return db.run("SELECT max(seq) FROM {L}audit_log WHERE kind = ?", (kind,))[0][0]


def test_an_untouched_database_verifies_clean_and_explains_every_row(audited_db):
    found, report = findings(audited_db)
    assert found == set(), report.findings
    counts = {
        name: audited_db.run(f"SELECT count(*) FROM {{{prefix}}}{name}")[0][0]
        for name, prefix in (
            ("accounts", "L"),
            ("transfers", "L"),
            ("pending_resolutions", "L"),
            ("payment_events", "L"),
            ("api_keys", "A"),
        )
    }
    assert report.rows_checked == {
        "accounts": counts["accounts"],
        "transfers": counts["transfers"],
        "resolutions": counts["pending_resolutions"],
        "payment_events": counts["payment_events"],
        "keys": counts["api_keys"],
        "netting_cycles": 0,
    }
    assert counts["pending_resolutions"] == 2 and counts["api_keys"] == 3
    assert counts["payment_events"] > 3 and counts["transfers"] > 50
    kinds_seen = {row[0] for row in audited_db.run("SELECT kind FROM {L}audit_log")}
    assert kinds_seen == {
        "ledger_batch",
        "payment_records",
        "key_created",
        "key_rotated",
        "key_revoked",
    }


def test_an_edited_transfer_is_found_in_its_batch(audited_db):
    audited_db.run("UPDATE {L}transfers SET amount = amount + 1 WHERE id = ?", (_id(903),))
    found, _ = findings(audited_db)
    assert {kind for kind, _ in found} == {FindingKind.LEDGER_ROWS_CHANGED}
    batch = audited_db.run(
        "SELECT seq, payload FROM {L}audit_log WHERE kind = 'ledger_batch' ORDER BY seq"
    )
    stamp = audited_db.run("SELECT timestamp FROM {L}transfers WHERE id = ?", (_id(903),))[0][0]
    (seq,) = [s for s, p in batch if _covers(json.loads(p), stamp)]
    assert found == {(FindingKind.LEDGER_ROWS_CHANGED, seq)}


def test_a_deleted_transfer_is_found(audited_db):
    audited_db.run("DELETE FROM {L}transfers WHERE id = ?", (_id(901),))
    assert kinds(audited_db) == {FindingKind.LEDGER_ROWS_CHANGED}


def test_a_transfer_or_account_without_an_entry_is_unexplained(audited_db):
    audited_db.run(
        "INSERT INTO {L}transfers (timestamp, id, debit_account, credit_account, amount, flags,"
        " pending_id, timeout, code, ref, currency)"
        " SELECT timestamp + 1000000, ?, debit_account, credit_account, 1, 0, NULL, 0, 1, '',"
        " currency FROM {L}transfers WHERE id = ?",
        (_id(990), _id(903)),
    )
    audited_db.run(
        "INSERT INTO {L}accounts SELECT ?, participant, currency, kind, flags, credit_limit,"
        " code, ref, timestamp + 1000001, 0, 0, 0, 0 FROM {L}accounts WHERE timestamp ="
        " (SELECT min(timestamp) FROM {L}accounts)",
        (_id(991),),
    )
    found, report = findings(audited_db)
    assert found == {(FindingKind.LEDGER_ROW_UNEXPLAINED, None)}
    details = " ".join(f.detail for f in report.findings)
    assert f"transfer {990}" in details and f"account {991}" in details


def test_reordered_transfers_are_found(audited_db):
    # Swap the amounts of two transfers of one batch: same rows, same count, other content.
    first, second = audited_db.run(
        "SELECT id, amount FROM {L}transfers WHERE amount > 0 ORDER BY timestamp LIMIT 2"
    )
    audited_db.run("UPDATE {L}transfers SET amount = ? WHERE id = ?", (second[1] + 1, first[0]))
    audited_db.run("UPDATE {L}transfers SET amount = ? WHERE id = ?", (first[1], second[0]))
    assert kinds(audited_db) == {FindingKind.LEDGER_ROWS_CHANGED}


def test_an_edited_entry_is_found(audited_db):
    seq = last_batch_seq(audited_db)
    audited_db.run("UPDATE {L}audit_log SET actor = 'someone' WHERE seq = ?", (seq,))
    found, _ = findings(audited_db)
    assert found == {(FindingKind.ENTRY_EDITED, seq)}


def test_an_entry_rewritten_with_a_fresh_hash_breaks_the_next_link(audited_db):
    seq = last_batch_seq(audited_db) - 1
    kind, _, payload, prev = audited_db.run(
        "SELECT kind, actor, payload, prev_hash FROM {L}audit_log WHERE seq = ?", (seq,)
    )[0]
    forged = entry_hash(seq, kind, "someone", payload, prev)
    audited_db.run(
        "UPDATE {L}audit_log SET actor = 'someone', hash = ? WHERE seq = ?", (forged, seq)
    )
    found, _ = findings(audited_db)
    assert found == {(FindingKind.ENTRY_OUT_OF_CHAIN, seq + 1)}


def test_a_deleted_entry_is_found_and_its_rows_are_unexplained(audited_db):
    seq = last_batch_seq(audited_db)
    audited_db.run("DELETE FROM {L}audit_log WHERE seq = ?", (seq,))
    found, _ = findings(audited_db)
    assert (FindingKind.ENTRIES_MISSING, seq + 1) in found
    assert (FindingKind.ENTRY_OUT_OF_CHAIN, seq + 1) in found
    assert (FindingKind.LEDGER_ROW_UNEXPLAINED, None) in found


def test_an_inserted_entry_is_found(audited_db):
    seq = last_batch_seq(audited_db)
    rows = audited_db.run("SELECT seq FROM {L}audit_log WHERE seq >= ? ORDER BY seq DESC", (seq,))
    for (later,) in rows:  # Make room, from the end (the seq is the primary key).
        audited_db.run("UPDATE {L}audit_log SET seq = seq + 1 WHERE seq = ?", (later,))
    head = audited_db.run("SELECT hash FROM {L}audit_log WHERE seq = ?", (seq - 1,))[0][0]
    payload = '{"note":"forged"}'
    forged = entry_hash(seq, "configuration", "intruder", payload, head)
    audited_db.run(
        "INSERT INTO {L}audit_log (seq, kind, actor, payload, prev_hash, hash)"
        " VALUES (?, 'configuration', 'intruder', ?, ?, ?)",
        (seq, payload, head, forged),
    )
    assert FindingKind.ENTRY_EDITED in kinds(audited_db)  # The moved entries' seqs are hashed.


def test_reordered_entries_are_found(audited_db):
    seq = last_batch_seq(audited_db)
    audited_db.run("UPDATE {L}audit_log SET seq = -1 WHERE seq = ?", (seq,))
    audited_db.run("UPDATE {L}audit_log SET seq = ? WHERE seq = ?", (seq, seq - 1))
    audited_db.run("UPDATE {L}audit_log SET seq = ? WHERE seq = -1", (seq - 1,))
    found, _ = findings(audited_db)
    assert {(FindingKind.ENTRY_EDITED, seq - 1), (FindingKind.ENTRY_EDITED, seq)} <= found


def test_a_truncated_tail_is_found_against_an_exported_checkpoint(audited_db, tmp_path):
    runner = CliRunner()
    exported = runner.invoke(
        app, ["audit", "checkpoint", "--db", audited_db.url, "--schema", audited_db.schema]
    )
    assert exported.exit_code == 0, exported.output
    mark = Checkpoint.from_dict(json.loads(exported.stdout))
    assert mark.seq > 5
    # The last entries are key entries: removing them leaves every ledger row explained.
    audited_db.run("DELETE FROM {L}audit_log WHERE seq > ?", (mark.seq - 2,))
    audited_db.run("DELETE FROM {A}api_keys WHERE participant = 'BKCHCNBJ'")
    assert kinds(audited_db) == set()  # Without the checkpoint nothing shows...
    assert kinds(audited_db, mark) == {FindingKind.CHECKPOINT_MISMATCH}  # ...with it, it does.
    path = tmp_path / "checkpoint.json"
    path.write_text(exported.stdout)
    args = ["verify", "--db", audited_db.url, "--schema", audited_db.schema, "--audit"]
    failed = runner.invoke(app, [*args, "--checkpoint", str(path)])
    assert failed.exit_code == 1
    assert "checkpoint_mismatch" in failed.stdout and "truncated" in failed.stdout


def test_edited_deleted_and_inserted_payment_events_are_found(audited_db):
    audited_db.run("UPDATE {L}payment_events SET detail = 'nothing' WHERE payment_id = 'p1'")
    audited_db.run(
        "DELETE FROM {L}payment_events WHERE payment_id = 'p2' AND seq ="
        " (SELECT max(seq) FROM {L}payment_events WHERE payment_id = 'p2')"
    )
    audited_db.run(
        "INSERT INTO {L}payment_events (payment_id, seq, status, at, detail)"
        " VALUES ('p9', 1, 'settled', 1, 'forged')"
    )
    found, report = findings(audited_db)
    assert found == {
        (FindingKind.PAYMENT_EVENTS_CHANGED, None),
        (FindingKind.PAYMENT_EVENTS_UNEXPLAINED, None),
    }
    details = [f.detail for f in report.findings]
    assert [d.split(":")[0] for d in details] == ["payment p1", "payment p2", "payment p9"]


def test_an_unrevoked_or_forged_key_is_found(audited_db):
    audited_db.run("UPDATE {A}api_keys SET revoked_at = NULL WHERE participant = 'BKCHCNBJ'")
    audited_db.run(
        "INSERT INTO {A}api_keys SELECT '00000000000000ff', participant, 'network_operator',"
        " secret_hash, signing_secret, label, created_at, NULL, NULL, NULL, NULL"
        " FROM {A}api_keys WHERE participant = 'BKCHCNBJ'"
    )
    assert kinds(audited_db) == {FindingKind.ROW_CHANGED, FindingKind.ROW_UNEXPLAINED}


def test_the_command_line_passes_a_clean_database_and_fails_a_tampered_one(audited_db):
    runner = CliRunner()
    args = ["verify", "--db", audited_db.url, "--schema", audited_db.schema, "--audit"]
    clean = runner.invoke(app, args)
    assert clean.exit_code == 0, clean.output
    assert "verify --audit: OK" in clean.stdout and "verify: OK" in clean.stdout
    audited_db.run("UPDATE {L}transfers SET ref = 'x' WHERE id = ?", (_id(902),))
    tampered = runner.invoke(app, args)
    assert tampered.exit_code == 1
    assert "ledger_rows_changed" in tampered.stdout


def _id(number: int) -> bytes:
    return number.to_bytes(16, "big")


def _covers(payload: dict, stamp: int) -> bool:
    low, high = payload["timestamps"]
    return low <= stamp <= high
