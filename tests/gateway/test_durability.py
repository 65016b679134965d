"""Ack means durable: every failure before 226 leaves nothing visible and nothing counted."""

from __future__ import annotations

import ftplib
import io
import os
import subprocess
import sys
import textwrap
import time
from datetime import timedelta

import pytest

from billing.core.errors import NotFound, StorageUnavailable
from billing.core.models import utcnow
from gateway.janitor import run_janitor
from tests.support.stack import MiB, Stack, keep_sending
from tests.support.wait import wait_for

KILLED_CLIENT = textwrap.dedent("""
    import ftplib, os, sys, time
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", int(sys.argv[1]))
    ftp.login(sys.argv[2], sys.argv[3])
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("STOR clip.dav")
    conn.sendall(os.urandom(int(sys.argv[4])))
    print("sent", flush=True)
    time.sleep(120)
""")


@pytest.mark.parametrize("sent", [100_000, 7 * MiB])
def test_client_killed_mid_transfer(stack: Stack, sent: int) -> None:
    dev = stack.device()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            KILLED_CLIENT,
            str(stack.port),
            dev.username,
            dev.password,
            str(sent),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "sent"
    if sent > 5 * MiB:  # a part is in S3 already: a multipart upload is open
        wait_for(lambda: stack.drive(dev).reserved_bytes > 0, what="a reserved part")
    proc.kill()
    proc.wait()
    wait_for(lambda: stack.drive(dev).reserved_bytes == 0, what="reservation released")
    wait_for(lambda: stack.multipart_uploads(dev) == [], what="multipart aborted")
    assert stack.entries(dev) == {}
    stack.assert_consistent(dev)


@pytest.mark.parametrize("sent", [100_000, 7 * MiB])
def test_data_connection_reset_mid_file_stores_nothing(stack: Stack, sent: int) -> None:
    """A data connection reset (RST) rather than closed is not the end of a file,
    even with the control connection alive and no ALLO to count against."""
    import socket
    import struct

    dev = stack.device()
    with stack.ftp(dev) as ftp:
        ftp.voidcmd("TYPE I")
        conn = ftp.transfercmd("STOR cut.dav")
        conn.sendall(os.urandom(sent))
        if sent > 5 * MiB:
            wait_for(lambda: stack.drive(dev).reserved_bytes > 0, what="a reserved part")
        else:
            time.sleep(0.5)  # the gateway has read what was sent
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()  # linger 0: the kernel sends RST, not FIN
        with pytest.raises(ftplib.error_temp, match="426.*reset"):
            ftp.voidresp()
        wait_for(lambda: stack.drive(dev).reserved_bytes == 0, what="reservation released")
        assert ftp.nlst() == []
        assert ftp.storbinary("STOR ok.jpg", io.BytesIO(b"fine")).startswith("226")
    wait_for(lambda: stack.multipart_uploads(dev) == [], what="multipart aborted")
    stack.assert_consistent(dev)


def test_abor_mid_transfer(stack: Stack) -> None:
    dev = stack.device()
    with stack.ftp(dev) as ftp:
        ftp.voidcmd("TYPE I")
        conn = ftp.transfercmd("STOR clip.dav")
        conn.sendall(os.urandom(6 * MiB))
        wait_for(lambda: stack.drive(dev).reserved_bytes > 0, what="a reserved part")
        resp = ftp.abort()
        conn.close()
        assert resp.startswith("426")  # transfer aborted ...
        assert ftp.getresp().startswith("226")  # ... and ABOR done (RFC 959)
        wait_for(lambda: stack.drive(dev).reserved_bytes == 0, what="reservation released")
        assert ftp.nlst() == []
        # the session goes on
        ftp.storbinary("STOR ok.jpg", io.BytesIO(b"fine"))
        assert ftp.nlst() == ["ok.jpg"]
    stack.assert_consistent(dev)


def test_s3_down_gives_451_and_recovers_without_restart(ostack: Stack) -> None:
    dev = ostack.device()
    with ostack.ftp(dev) as ftp:
        ftp.storbinary("STOR before.jpg", io.BytesIO(b"before"))
        # stop S3 in the middle of a multipart upload
        ftp.voidcmd("TYPE I")
        conn = ftp.transfercmd("STOR clip.dav")
        conn.sendall(os.urandom(6 * MiB))
        wait_for(lambda: ostack.drive(dev).reserved_bytes > 0, what="a reserved part")
        ostack.seaweed.stop()
        assert keep_sending(ftp, conn, 8).startswith("451")
        # small files need S3 too: transient 451, not a crash
        with pytest.raises(ftplib.error_temp, match="^451"):
            ftp.storbinary("STOR during.jpg", io.BytesIO(b"during"))
        assert ftp.nlst() == ["before.jpg"]
    ostack.seaweed.start()
    with ostack.ftp(dev) as ftp:  # same gateway, no restart
        ftp.storbinary("STOR after.jpg", io.BytesIO(b"after"))
        assert sorted(ftp.nlst()) == ["after.jpg", "before.jpg"]
    # the failed multipart could not be aborted while S3 was down: the janitor does it
    report = run_janitor(ostack.pipeline, now=utcnow() + timedelta(hours=1))
    assert report.errors == 0
    ostack.assert_consistent(dev)
    assert ostack.drive(dev).committed_bytes == len(b"before") + len(b"after")


def test_janitor_releases_crashed_node_reservations(stack: Stack) -> None:
    """A node that died mid-upload: its lease expires, the janitor cleans up."""
    from billing.entitlement import upload_entitlement

    dev = stack.device()
    ent = upload_entitlement(stack.engine, dev.device_id)
    upload = stack.pipeline.start(ent, "crashed.dav")
    upload.write(os.urandom(6 * MiB))  # one part sent, multipart open
    wait_for(lambda: len(stack.multipart_uploads(dev)) == 1, what="multipart upload")
    # ... and the node is gone: nobody calls commit() or abort().
    assert stack.drive(dev).reserved_bytes == 5 * MiB
    assert run_janitor(stack.pipeline).released_reservations == 0  # lease still valid
    report = run_janitor(
        stack.pipeline,
        now=utcnow() + timedelta(seconds=stack.settings.reservation_lease_seconds + 1),
    )
    assert report.released_reservations == 1 and report.released_bytes == 5 * MiB
    stack.assert_consistent(dev)
    with pytest.raises(StorageUnavailable, match="reservation expired"):
        upload.commit()  # the lease is gone: the zombie cannot commit (451: send it again)
    stack.assert_consistent(dev)


def test_janitor_removes_unindexed_small_object_of_a_dead_node(stack: Stack) -> None:
    """A node died after its PutObject and before the index commit."""
    dev = stack.device()
    ledger = stack.pipeline.ledger
    key = f"{dev.prefix}deadbeef"
    rid = ledger.open_reservation(dev.drive_id, key, 6)
    assert rid is not None
    stack.store.put(key, b"orphan")
    assert key in stack.s3_keys(dev)
    run_janitor(
        stack.pipeline,
        now=utcnow() + timedelta(seconds=stack.settings.reservation_lease_seconds + 1),
    )
    stack.assert_consistent(dev)
    assert stack.s3_keys(dev) == {}


def test_database_connections_dropped_cost_one_451_then_recover(pg_url: str, seaweed) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL restarted or failed over: pooled connections are dead.

    Connections are not pinged at checkout (a round trip per transaction),
    so one STOR may meet a dead connection: it gets a transient 451 and
    stores nothing; SQLAlchemy then drops the pool and the next STOR works.
    """
    import psycopg

    stack = Stack(pg_url, seaweed, "c2d-pg-drop")
    try:
        dev = stack.device()
        with stack.ftp(dev) as ftp:
            for i in range(4):  # several pooled connections in use
                ftp.storbinary(f"STOR warm{i}.jpg", io.BytesIO(b"warm"))
            admin = pg_url.replace("postgresql+psycopg://", "postgresql://")
            with psycopg.connect(admin, autocommit=True) as conn:
                killed = conn.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchone()
            assert killed is not None and killed[0] >= 1
            replies = []
            for i in range(3):
                try:
                    replies.append(ftp.storbinary(f"STOR after{i}.jpg", io.BytesIO(b"after")))
                except ftplib.error_temp as exc:
                    replies.append(str(exc))
            assert all(r.startswith(("226", "451")) for r in replies), replies
            assert sum(r.startswith("451") for r in replies) <= 1, replies
            assert replies[-1].startswith("226")
            stored = {f"after{i}.jpg" for i, r in enumerate(replies) if r.startswith("226")}
            assert set(ftp.nlst()) == {f"warm{i}.jpg" for i in range(4)} | stored
        stack.assert_consistent(dev)
    finally:
        stack.close()


def test_a_commit_whose_reservation_is_gone_changes_nothing(stack: Stack) -> None:
    """The janitor released a slow upload's reservation; its commit must then
    neither index the file nor touch the file it would have replaced (on
    PostgreSQL one statement settles the reservation, the old file and the
    counters: all of it must come undone)."""
    dev = stack.device()
    ledger = stack.pipeline.ledger
    old_key, new_key = f"{dev.prefix}old", f"{dev.prefix}new"
    stack.store.put(old_key, bytearray(b"older"))
    rid = ledger.open_reservation(dev.drive_id, old_key, 5)
    assert rid is not None
    assert ledger.commit(rid, dev.drive_id, "cam/clip.dav", old_key, 5) is None
    rid = ledger.open_reservation(dev.drive_id, new_key, 7)
    assert rid is not None and stack.drive(dev).reserved_bytes == 7
    ledger.release(rid)
    with pytest.raises(NotFound, match="reservation expired"):
        ledger.commit(rid, dev.drive_id, "cam/clip.dav", new_key, 7)
    assert {p: e.key for p, e in stack.entries(dev).items() if not e.is_dir} == {
        "cam/clip.dav": old_key
    }
    stack.assert_consistent(dev)
    # and a commit that does replace it counts the drive once, returning the old key
    stack.store.put(new_key, bytearray(b"newer!!"))
    rid = ledger.open_reservation(dev.drive_id, new_key, 7)
    assert ledger.commit(rid, dev.drive_id, "cam/clip.dav", new_key, 7) == old_key  # type: ignore[arg-type]
    stack.store.delete([old_key])
    drive = stack.drive(dev)
    assert (drive.committed_bytes, drive.object_count) == (7, 1)
    stack.assert_consistent(dev)
