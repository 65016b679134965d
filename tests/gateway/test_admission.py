"""No lock-out by strangers (gateway/admission.py): idle sockets cannot shut real recorders out.

Floods come from many loopback addresses (127.0.0.2-127.0.0.250), are
bounded in count, and every socket is closed at the end of its test.
"""

from __future__ import annotations

import asyncio
import contextlib
import ftplib
import resource
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cli.devstack.seaweed import SeaweedServer
from tests.support.sftp import sftp_connect
from tests.support.stack import MiB, Stack, put, stack_with
from tests.support.wait import wait_for

FLOOD = 2000


@pytest.fixture(autouse=True)
def enough_fds() -> None:
    """A flood holds both ends of each socket in this process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4 * FLOOD + 1024
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


@pytest.fixture
def tight(db_url: str, seaweed: SeaweedServer) -> Iterator[Stack]:
    """A stack with small limits and a short login timeout."""
    with stack_with(
        db_url,
        seaweed,
        ftp_max_connections=6,
        ftp_max_unauthenticated=3,
        ftp_max_connections_per_ip=3,
        ftp_login_timeout=1,
        sftp_max_connections=6,
        sftp_max_unauthenticated=3,
        sftp_max_connections_per_ip=3,
        sftp_login_timeout=1,
    ) as s:
        yield s


def flood(port: int, count: int, first: int = 2, last: int = 250) -> list[socket.socket]:
    """`count` idle connections spread over loopback addresses 127.0.0.first-last."""
    socks = []
    for i in range(count):
        s = socket.socket()
        s.settimeout(10)
        s.bind((f"127.0.0.{first + i % (last - first + 1)}", 0))
        try:
            s.connect(("127.0.0.1", port))
        except OSError:  # refused or reset while the gateway makes room: it did not stay
            s.close()
            continue
        s.setblocking(False)
        socks.append(s)
    return socks


def ended(socks: list[socket.socket], seen: dict[socket.socket, bytes]) -> int:
    """How many of `socks` the gateway has closed; what each received goes to `seen`."""
    n = 0
    for s in socks:
        while True:
            try:
                data = s.recv(4096)
            except BlockingIOError:
                break
            except OSError:
                n += 1
                break
            if not data:
                n += 1
                break
            seen[s] = seen.get(s, b"") + data
    return n


def trimmed_to_pool(socks: list[socket.socket], pool: int) -> dict[socket.socket, bytes]:
    """Wait until the gateway has closed all of the flood `socks` but its pool of
    connections waiting to log in; what each closed one received."""
    seen: dict[socket.socket, bytes] = {}
    closed = 0

    def pool_kept() -> bool:
        nonlocal closed
        closed += ended([s for s in socks if s.fileno() >= 0], seen)
        return closed >= len(socks) - pool

    wait_for(pool_kept, what="the flood beyond the login pool closed")
    return seen


def close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        s.close()


def read_until_closed(s: socket.socket, timeout: float = 20) -> bytes:
    """Everything the gateway sends before it closes `s` (socket.timeout if it never does)."""
    s.setblocking(True)
    s.settimeout(timeout)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := s.recv(4096):
            data += chunk
    return data


def sftp_upload(port: int, user: str, password: str, path: str, data: bytes) -> int:
    async def main() -> int:
        async with sftp_connect(port, user, password) as conn:
            async with conn.start_sftp_client() as sftp:
                await sftp.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
                async with sftp.open(path, "wb") as f:
                    await f.write(data)
                return int(await sftp.getsize(path))

    return asyncio.run(main())


# --- 2 000 idle sockets, then a real recorder ---------------------------------


def test_ftp_flood_does_not_lock_out_a_recorder(stack: Stack) -> None:
    dev = stack.device()
    socks = flood(stack.port, FLOOD)
    try:
        # the gateway holds at most its pool of connections waiting to log in
        seen = trimmed_to_pool(socks, stack.settings.ftp_max_unauthenticated)
        assert any(b"421 Too many connections waiting to log in" in v for v in seen.values())

        ftp = stack.ftp(dev)  # logs in: 230
        data = b"r" * (2 * MiB)
        assert put(ftp, "/17.00.00-17.01.00[R][0@0][0].dav", data)[:3] == "226"
        ftp.quit()
    finally:
        close_all(socks)
    stack.assert_consistent(dev)


def test_sftp_flood_does_not_lock_out_a_recorder(stack: Stack) -> None:
    port = stack.start_sftp()
    dev = stack.device()
    socks = flood(port, FLOOD)
    try:
        # before the gate: all 2 000 were held open until the login timeout
        trimmed_to_pool(socks, stack.settings.sftp_max_unauthenticated)
        size = sftp_upload(port, dev.username, dev.password, "/2026-12-06/001/a.dav", b"s" * MiB)
        assert size == MiB
    finally:
        close_all(socks)
    stack.assert_consistent(dev)


# --- the reserve, the per-address cap, the login timeout -----------------------


def test_logged_in_sessions_keep_their_slots(tight: Stack) -> None:
    """6 slots, 3 of them for connections waiting to log in: two logged-in
    sessions stay through a flood, and a recorder still gets in."""
    dev = tight.device()
    first, second = tight.ftp(dev), tight.ftp(dev)
    socks = flood(tight.port, 40)
    try:
        third = tight.ftp(dev)  # evicts a flood socket, then logs in
        for n, ftp in enumerate((first, second, third)):
            assert put(ftp, f"/{n}.jpg", b"j" * 1000)[:3] == "226"
        # every slot is now held or waiting: the pool keeps churning, sessions stay
        more = flood(tight.port, 10)
        close_all(more)
        assert first.voidcmd("NOOP")[:3] == "200"
        for ftp in (first, second, third):
            ftp.quit()
    finally:
        close_all(socks)


def test_full_of_logged_in_sessions_refuses_newcomers(tight: Stack) -> None:
    dev = tight.device()
    # three addresses, two logged-in sessions each: every slot taken by logins
    sessions = []
    for host in ("127.0.0.11", "127.0.0.12", "127.0.0.13"):
        for _ in range(2):
            ftp = ftplib.FTP()
            ftp.connect("127.0.0.1", tight.port, timeout=30, source_address=(host, 0))
            ftp.login(dev.username, dev.password)
            sessions.append(ftp)
    try:
        newcomer = socket.create_connection(
            ("127.0.0.1", tight.port), timeout=20, source_address=("127.0.0.14", 0)
        )
        assert read_until_closed(newcomer).startswith(b"421 Too many connections, try again")
        newcomer.close()
        assert all(ftp.voidcmd("NOOP")[:3] == "200" for ftp in sessions)
    finally:
        for ftp in sessions:
            ftp.close()


def test_per_address_cap(tight: Stack) -> None:
    port = tight.start_sftp()
    for target, greeting in ((tight.port, b"220"), (port, b"SSH-2.0-cam2drive")):
        socks = flood(target, 3, first=7, last=7)
        try:
            for s in socks:
                s.setblocking(True)
                assert s.recv(100).startswith(greeting)
            extra = socket.create_connection(
                ("127.0.0.1", target), timeout=20, source_address=("127.0.0.7", 0)
            )
            got = read_until_closed(extra)  # the 4th from one address is closed at once
            extra.close()
            if target == tight.port:
                assert got.startswith(b"421 Too many connections from your address")
            # another address still gets in
            other = socket.create_connection(
                ("127.0.0.1", target), timeout=20, source_address=("127.0.0.8", 0)
            )
            assert other.recv(100).startswith(greeting)
            other.close()
        finally:
            close_all(socks)


def test_login_timeout(tight: Stack) -> None:
    """Not logged in within ftp_login_timeout: closed with 421. A logged-in
    session outlives it (the idle timeout is separate)."""
    dev = tight.device()
    ftp = tight.ftp(dev)
    idle = socket.create_connection(("127.0.0.1", tight.port), timeout=20)
    got = read_until_closed(idle)  # before: held for ftp_idle_timeout (300 s)
    idle.close()
    assert got.startswith(b"220") and b"421 Login timed out." in got
    time.sleep(tight.settings.ftp_login_timeout + 0.5)
    assert ftp.voidcmd("NOOP")[:3] == "200"
    ftp.quit()

    port = tight.start_sftp()
    idle = socket.create_connection(("127.0.0.1", port), timeout=20)
    assert read_until_closed(idle).startswith(b"SSH-2.0-cam2drive")
    idle.close()


def test_settings_defaults() -> None:
    """The defaults README documents: a 30 s login and a reserve beyond the login pool."""
    from billing.core.settings import Settings

    s: Any = Settings(database_url="sqlite://")
    assert (s.ftp_login_timeout, s.sftp_login_timeout) == (30, 30)
    assert s.ftp_max_unauthenticated < s.ftp_max_connections
    assert s.sftp_max_unauthenticated < s.sftp_max_connections
