"""Uploads of announced size (FTP ALLO) are one PutObject streamed as bytes arrive."""

from __future__ import annotations

import ftplib
import io
import os
import threading
import time
import tracemalloc
from datetime import timedelta

import pytest

from billing.core.errors import Cam2DriveError
from billing.core.models import utcnow
from billing.entitlement import upload_entitlement
from gateway.janitor import run_janitor
from tests.support.stack import Stack, announce, keep_sending
from tests.support.wait import wait_for

MiB = 1024 * 1024


def stor_announced(ftp: ftplib.FTP, name: str, data: bytes, announced: int) -> str:
    """ALLO, STOR and the data, as a Dahua recorder sends a clip; the final reply."""
    conn = announce(ftp, name, announced)
    conn.sendall(data)
    conn.close()
    try:
        return ftp.voidresp()
    except ftplib.Error as err:
        return str(err)


def test_an_announced_clip_is_one_put_sent_as_it_arrives(stack: Stack) -> None:
    """No part buffer and no budget: memory is a few network chunks, and the
    clip is stored whole, by one PutObject (no multipart upload ever opens)."""
    dev = stack.device()
    data = os.urandom(3 * MiB)
    ent = upload_entitlement(stack.engine, dev.device_id)
    warm = stack.pipeline.start(ent, "warm.mp4", expected_size=MiB)  # makes the S3 client
    warm.write(data[:MiB])
    warm.commit()
    upload = stack.pipeline.start(ent, "clip.mp4", expected_size=len(data))
    budget = stack.pipeline.budget
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        for at in range(0, len(data), 64 * 1024):
            upload.write(data[at : at + 64 * 1024])
        peak = tracemalloc.get_traced_memory()[1] - start
        upload.commit()
    finally:
        tracemalloc.stop()
    assert upload._stream is not None and upload._part is None and upload._upload_id is None
    assert upload._futures == []  # no part was sent: no multipart upload was opened
    assert peak < MiB, peak  # the pipe and one joined send; buffered holds all 3 MB
    assert budget.used == 0 and budget.waits == 0
    entry = stack.entries(dev)["clip.mp4"]
    assert entry.size == len(data)
    assert stack.store.open_range(entry.key).read() == data
    stack.assert_consistent(dev)


def test_over_ftp_a_clip_is_stored_only_when_its_size_is_what_alloc_said(stack: Stack) -> None:
    dev = stack.device()
    data = os.urandom(3 * MiB)
    with stack.ftp(dev) as ftp:
        assert stor_announced(ftp, "ok.dav", data, len(data)).startswith("226")
        # short: the recorder died mid-clip
        reply = stor_announced(ftp, "short.dav", data[: MiB + 5000], len(data))
        assert reply.startswith("426") and f"of the {len(data)} bytes announced" in reply
        # long: more than announced is not cut to fit
        reply = stor_announced(ftp, "long.dav", data, 2 * MiB)
        assert reply.startswith("426"), reply
        assert ftp.nlst() == ["ok.dav"]
        ftp.voidcmd("TYPE I")  # nlst() left it ASCII
        with ftp.transfercmd("RETR ok.dav") as conn:
            back = b"".join(iter(lambda: conn.recv(65536), b""))
        ftp.voidresp()
    assert back == data
    wait_for(lambda: stack.drive(dev).reserved_bytes == 0, what="reservations released")
    stack.assert_consistent(dev)  # S3 holds exactly the one clip


def test_a_quota_refusal_comes_before_the_stream_starts(stack: Stack) -> None:
    dev = stack.device(capacity=f"{2 * MiB}B", on_full="reject")
    with stack.ftp(dev) as ftp:
        ftp.voidcmd("TYPE I")
        ftp.voidcmd(f"ALLO {int(1.5 * MiB)}")
        ftp.storbinary("STOR a.dav", io.BytesIO(os.urandom(int(1.5 * MiB))))
        reply = stor_announced(ftp, "b.dav", os.urandom(int(1.5 * MiB)), int(1.5 * MiB))
        assert reply.startswith("552"), reply
        assert ftp.nlst() == ["a.dav"]
    stack.assert_consistent(dev)


def test_a_stalled_stream_is_broken_and_stores_nothing(stack: Stack) -> None:
    """A session that stops feeding its stream (and is never aborted) does not
    hold a thread and an S3 request for ever: after the stall limit the
    request breaks, the next write fails, and an abort leaves nothing."""
    stack.pipeline.stream_stall = 1.0
    dev = stack.device()
    ent = upload_entitlement(stack.engine, dev.device_id)
    upload = stack.pipeline.start(ent, "stalled.dav", expected_size=2 * MiB)
    upload.write(os.urandom(64 * 1024))
    assert stack.drive(dev).reserved_bytes == 2 * MiB  # announced size, reserved up front
    time.sleep(1.5)
    with pytest.raises(Cam2DriveError):
        for _ in range(8):  # writes spaced past the stall limit: each finds it broken
            upload.write(os.urandom(64 * 1024))  # or, on a busy machine, stalls it anew
            time.sleep(1.2)
    upload.abort()
    assert stack.entries(dev) == {} and stack.s3_keys(dev) == {}
    stack.assert_consistent(dev)


def test_s3_down_mid_stream_gives_451_and_stores_nothing(ostack: Stack) -> None:
    dev = ostack.device()
    with ostack.ftp(dev) as ftp:
        conn = announce(ftp, "clip.dav", 20 * MiB)
        conn.sendall(os.urandom(2 * MiB))
        wait_for(lambda: ostack.drive(dev).reserved_bytes == 20 * MiB, what="reservation")
        ostack.seaweed.stop()
        assert keep_sending(ftp, conn, 18).startswith("451")
    ostack.seaweed.start()
    wait_for(lambda: ostack.drive(dev).reserved_bytes == 0, what="reservation released")
    assert ostack.entries(dev) == {}
    assert run_janitor(ostack.pipeline, now=utcnow() + timedelta(hours=1)).errors == 0
    ostack.assert_consistent(dev)


def test_a_session_killed_mid_stream_leaves_no_object(stack: Stack) -> None:
    """The client's connections vanish mid-clip: the upload is aborted, the
    broken request stores nothing, the reservation goes back."""
    dev = stack.device()
    ftp = stack.ftp(dev)
    conn = announce(ftp, "clip.dav", 8 * MiB)
    conn.sendall(os.urandom(3 * MiB))
    wait_for(lambda: stack.drive(dev).reserved_bytes == 8 * MiB, what="reservation")
    conn.close()
    ftp.sock.close()
    wait_for(lambda: stack.drive(dev).reserved_bytes == 0, what="reservation released")
    assert stack.entries(dev) == {}
    stack.assert_consistent(dev)
    assert not [t for t in threading.enumerate() if t.name == "s3-stream" and t.is_alive()]
