"""The FTP gateway's event loop: one thread for every session, waits on the pool."""

from __future__ import annotations

import ftplib
import io
import os
import socket
import threading
import time

from tests.support.stack import Stack, put


def _replies(sock: socket.socket, count: int) -> list[str]:
    """`count` single-line replies, in the order they came."""
    data = b""
    sock.settimeout(30)
    while data.count(b"\r\n") < count:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    return data.decode().split("\r\n")[:count]


def test_commands_sent_without_waiting_are_answered_in_order(stack: Stack) -> None:
    """A client may send its next commands before the reply to the last one.
    Those that arrive while a command waits on the database (MKD here) are
    held, then answered one by one in the order they were sent."""
    dev = stack.device()
    with socket.create_connection(("127.0.0.1", stack.port)) as sock:
        assert _replies(sock, 1)[0].startswith("220")
        sock.sendall(f"USER {dev.username}\r\nPASS {dev.password}\r\n".encode())
        assert [r[:3] for r in _replies(sock, 2)] == ["331", "230"]
        sock.sendall(b"MKD cam\r\nCWD cam\r\nPWD\r\nMKD day\r\nCWD day\r\nPWD\r\nCWD /\r\nNOOP\r\n")
        assert _replies(sock, 8) == [
            '257 "/cam" created.',
            '250 "/cam" is the current directory.',
            '257 "/cam" is the current directory.',
            '257 "/cam/day" created.',
            '250 "/cam/day" is the current directory.',
            '257 "/cam/day" is the current directory.',
            '250 "/" is the current directory.',
            "200 I successfully did nothing'.",
        ]


def test_a_session_waiting_for_budget_does_not_hold_up_the_others(stack: Stack) -> None:
    """An upload whose next buffer waits for the process's budget waits on a
    pool thread, its socket unread; every other session is served meanwhile
    (logins, folders, snapshots, listings), and the waiting upload completes
    once the budget frees."""
    from gateway.memory import BufferBudget

    part = stack.settings.s3_part_size
    budget = stack.pipeline.budget = BufferBudget(part, wait=120)
    dev = stack.device()
    clip = os.urandom(2 * part)
    budget.take(part)  # another upload holds the whole budget
    outcome: list[str] = []

    def waiting_upload() -> None:
        with stack.ftp(dev) as ftp:  # no ALLO: the first MiB asks for a part
            outcome.append(put(ftp, "clip.dav", clip))

    waiter = threading.Thread(target=waiting_upload)
    waiter.start()
    deadline = time.monotonic() + 30
    while budget.waits == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert budget.waits == 1 and waiter.is_alive()
    with stack.ftp(dev) as ftp:  # meanwhile, another recorder goes about its work
        ftp.mkd("jpg")
        ftp.cwd("jpg")
        for n in range(5):
            assert put(ftp, f"{n}.jpg", os.urandom(150_000)).startswith("226")
        assert sorted(ftp.nlst()) == [f"{n}.jpg" for n in range(5)]
    assert waiter.is_alive() and not outcome  # still waiting for its buffer
    budget.give(part)
    waiter.join(60)
    assert outcome and outcome[0].startswith("226")
    buf = io.BytesIO()
    with stack.ftp(dev) as ftp:
        ftp.retrbinary("RETR clip.dav", buf.write)
    assert buf.getvalue() == clip
    stack.assert_consistent(dev)


def test_sessions_do_not_each_take_a_thread(stack: Stack) -> None:
    """Forty open sessions, each having uploaded in turn, leave the process with
    a few pool threads more, not one per session (pyftpdlib's threaded
    server held forty)."""
    dev = stack.device()
    before = threading.active_count()
    sessions: list[ftplib.FTP] = []
    try:
        for n in range(40):
            ftp = stack.ftp(dev)
            sessions.append(ftp)
            assert put(ftp, f"s{n}.jpg", b"x" * 1000).startswith("226")
        assert threading.active_count() - before < 10
    finally:
        for ftp in sessions:
            ftp.close()


def test_a_slow_viewer_download_does_not_hold_up_the_others(stack: Stack) -> None:
    """A download is read from S3 by a thread ahead of the client: a client that
    reads slowly holds up nobody, and gets every byte."""
    dev = stack.device()
    data = os.urandom(6 * 1024 * 1024)
    with stack.ftp(dev) as ftp:
        assert put(ftp, "long.dav", data).startswith("226")
    with stack.ftp(dev) as slow, stack.ftp(dev) as other:
        slow.voidcmd("TYPE I")
        conn = slow.transfercmd("RETR long.dav")
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        got = bytearray(conn.recv(65536))
        started = time.monotonic()
        for _ in range(20):  # the slow reader pauses; the other session works
            other.voidcmd("NOOP")
        assert time.monotonic() - started < 10
        while chunk := conn.recv(1 << 20):
            got += chunk
        conn.close()
        assert slow.voidresp().startswith("226")
    assert bytes(got) == data
