"""Small files committed in one statement after their PutObject (PostgreSQL).

A session's previous commit records the key its next small file takes (an
intent: a 0-byte reservation), so the PutObject needs no statement before
it. These tests hold the promises that makes: one statement per snapshot;
a node that dies between the PutObject and the statement leaves the janitor
a row naming the object; refusals after the PutObject leave no object; a
session's intents go when it ends. SQLite keeps reserve, put, commit.
"""

from __future__ import annotations

import ftplib
import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select

from billing.core.errors import NotEntitled, QuotaExceeded, StorageUnavailable
from billing.core.models import Reservation, utcnow
from billing.entitlement import upload_entitlement
from gateway.ingest import SessionIntents
from gateway.janitor import run_janitor
from tests.support.sftp import sftp_connect
from tests.support.stack import Stack, put
from tests.support.wait import wait_for


@contextmanager
def statements(stack: Stack) -> Iterator[list[str]]:
    sent: list[str] = []

    def count(conn, cursor, stmt, *args) -> None:  # type: ignore[no-untyped-def]
        sent.append(" ".join(stmt.split())[:40])

    event.listen(stack.engine, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        event.remove(stack.engine, "before_cursor_execute", count)


def reservations(stack: Stack, drive_id: int) -> int:
    table = Reservation.__table__  # type: ignore[attr-defined]
    with stack.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(table).where(table.c.drive_id == drive_id)
            ).scalar_one()
        )


def store(stack: Stack, ent, intents: SessionIntents, path: str, data: bytes) -> None:  # type: ignore[no-untyped-def]
    upload = stack.pipeline.start(ent, path, None, intents)
    upload.write(data)
    upload.commit()


def test_a_snapshot_is_one_statement_after_its_put(stack: Stack) -> None:
    dev = stack.device()
    ledger = stack.pipeline.ledger
    ledger.mkdir(dev.drive_id, "jpg")
    ent = upload_entitlement(stack.engine, dev.device_id)
    intents = SessionIntents(ledger)
    store(stack, ent, intents, "jpg/0.jpg", b"first")  # the session's first: opens an intent
    with statements(stack) as sent:
        store(stack, ent, intents, "jpg/1.jpg", b"x" * 130_000)
        one = list(sent)
        sent.clear()
        store(stack, ent, intents, "jpg/1.jpg", b"y" * 1000)  # replaces it: old object deleted
        replace = list(sent)
    if ledger.commits_after_put:
        assert len(one) == 1 and len(replace) == 1, (one, replace)
        assert reservations(stack, dev.drive_id) == 1  # the next file's intent, 0 bytes
    else:  # SQLite: the reservation's transaction, then the commit's
        assert len(one) >= 2 and intents.take() is None
    assert {p: e.size for p, e in stack.entries(dev).items() if not e.is_dir} == {
        "jpg/0.jpg": 5,
        "jpg/1.jpg": 1000,
    }
    intents.close()
    assert reservations(stack, dev.drive_id) == 0
    stack.assert_consistent(dev)


def test_a_node_dead_between_put_and_commit_leaves_nothing(stack: Stack) -> None:
    dev = stack.device()
    ledger = stack.pipeline.ledger
    ent = upload_entitlement(stack.engine, dev.device_id)
    intents = SessionIntents(ledger)
    store(stack, ent, intents, "kept.jpg", b"kept")
    intent = intents.take()
    if not ledger.commits_after_put:
        assert intent is None  # SQLite reserves before every PutObject
        return
    assert intent is not None
    stack.store.put(intent.key, bytearray(b"orphan"))  # ... and the node dies here
    assert intent.key in stack.s3_keys(dev)
    assert run_janitor(stack.pipeline).released_reservations == 0  # lease still valid
    report = run_janitor(
        stack.pipeline,
        now=utcnow() + timedelta(seconds=stack.settings.reservation_lease_seconds + 1),
    )
    assert report.released_reservations == 1 and report.released_bytes == 0
    assert reservations(stack, dev.drive_id) == 0
    assert set(stack.s3_keys(dev)) == {stack.entries(dev)["kept.jpg"].key}
    stack.assert_consistent(dev)


def test_refusals_after_the_put_leave_no_object(stack: Stack) -> None:
    """Full drive, blocked device, a folder never made: the two-step path decides."""
    dev = stack.device(capacity="1000B", on_full="reject")
    ent = upload_entitlement(stack.engine, dev.device_id)
    intents = SessionIntents(stack.pipeline.ledger)
    store(stack, ent, intents, "a.jpg", b"a" * 900)
    with pytest.raises(QuotaExceeded, match="full"):
        store(stack, ent, intents, "b.jpg", b"b" * 200)
    store(stack, ent, intents, "new/folder/c.jpg", b"c" * 100)  # exactly full; parents made
    assert stack.entries(dev)["new/folder"].is_dir
    stack.set_status(dev, "suspended")
    with pytest.raises(NotEntitled):
        store(stack, ent, intents, "d.jpg", b"d")
    stack.assert_consistent(dev)
    assert {p: e.size for p, e in stack.entries(dev).items() if not e.is_dir} == {
        "a.jpg": 900,
        "new/folder/c.jpg": 100,
    }
    intents.close()
    assert reservations(stack, dev.drive_id) == 0


def test_an_intent_the_janitor_took(stack: Stack) -> None:
    """Stale and gone: a new one is made. Fresh but gone (the janitor raced a
    slow PutObject): the file is refused, as if S3 had failed, and not kept."""
    dev = stack.device()
    ledger = stack.pipeline.ledger
    ent = upload_entitlement(stack.engine, dev.device_id)
    intents = SessionIntents(ledger)
    store(stack, ent, intents, "0.jpg", b"0")
    if not ledger.commits_after_put:
        assert intents.take() is None
        return
    intent = intents.take()
    assert intent is not None
    ledger.release(intent.rid)
    stale = type(intent)(intent.rid, intent.key, time.monotonic() - ledger.lease.total_seconds())
    intents.give(stale)
    store(stack, ent, intents, "1.jpg", b"1")  # renewing finds nothing: a new intent
    gone = intents.take()
    assert gone is not None
    ledger.release(gone.rid)
    intents.give(gone)
    with pytest.raises(StorageUnavailable, match="outlived its reservation"):
        store(stack, ent, intents, "2.jpg", b"2")
    assert sorted(p for p in stack.entries(dev)) == ["0.jpg", "1.jpg"]
    stack.assert_consistent(dev)


def test_sessions_give_their_intents_back(stack: Stack) -> None:
    dev = stack.device()
    with stack.ftp(dev) as ftp:
        for i in range(3):
            put(ftp, f"{i}.jpg", b"snapshot")
        held = reservations(stack, dev.drive_id)
        assert held == (1 if stack.pipeline.ledger.commits_after_put else 0)
    wait_for(lambda: reservations(stack, dev.drive_id) == 0, what="intents given back")
    stack.assert_consistent(dev)


def test_sftp_sessions_give_their_intents_back(stack: Stack) -> None:
    import asyncio

    dev = stack.device()
    port = stack.start_sftp()

    async def session() -> int:
        async with (
            sftp_connect(port, dev.username, dev.password) as conn,
            conn.start_sftp_client() as sftp,
        ):
            for i in range(3):
                async with sftp.open(f"/{i}.jpg", "wb") as f:
                    await f.write(b"snapshot")
            return reservations(stack, dev.drive_id)

    held = asyncio.run(session())
    assert held == (1 if stack.pipeline.ledger.commits_after_put else 0)
    wait_for(lambda: reservations(stack, dev.drive_id) == 0, what="intents given back")
    assert len(stack.entries(dev)) == 3
    stack.assert_consistent(dev)


def test_ftp_replies_are_unchanged(stack: Stack) -> None:
    """What a recorder sees: 226 for each snapshot, 552 when full, no object left."""
    dev = stack.device(capacity="100B", on_full="reject")
    with stack.ftp(dev) as ftp:
        assert put(ftp, "a.jpg", b"a" * 60).startswith("226")
        with pytest.raises(ftplib.error_perm, match="^552"):
            ftp.storbinary("STOR b.jpg", io.BytesIO(b"b" * 60))
        assert put(ftp, "c.jpg", b"c" * 40).startswith("226")
    stack.assert_consistent(dev)
