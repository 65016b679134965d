"""Slow and stalled uploads (gateway/leases.py): a live upload keeps its
reservation however long it pauses, and one that takes no data past the
stall limit ends with a transient error and gives its reservation back.

Short settings (a lease and a stall limit of seconds) and real clients; the
assertions are outcomes (replies, reservations, what S3 holds), never times.
"""

from __future__ import annotations

import asyncio
import ftplib
import os
import time
from collections.abc import Iterator
from typing import Any

import asyncssh
import pytest

from cli.devstack.seaweed import SeaweedServer
from gateway.janitor import run_janitor
from tests.support.sftp import sftp_connect
from tests.support.stack import DeviceLogin, MiB, Stack, announce, stack_with
from tests.support.wait import wait_for

LEASE = 2  # seconds
STALL = 2  # seconds


@pytest.fixture
def slow_stack(db_url: str, seaweed: SeaweedServer) -> Iterator[Stack]:
    """A short lease, and a stall limit far past the pauses the tests make."""
    with stack_with(db_url, seaweed, reservation_lease_seconds=LEASE, upload_stall_seconds=60) as s:
        yield s


@pytest.fixture
def stall_stack(db_url: str, seaweed: SeaweedServer) -> Iterator[Stack]:
    with stack_with(
        db_url, seaweed, reservation_lease_seconds=LEASE + 1, upload_stall_seconds=STALL
    ) as s:
        yield s


def _janitor_through(stack: Stack, seconds: float) -> None:
    """Run the janitor over and over, as the scheduler would, for several leases."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        run_janitor(stack.pipeline)
        time.sleep(0.3)


def begin(
    stack: Stack,
    ftp: ftplib.FTP,
    dev: DeviceLogin,
    name: str,
    data: bytes,
    first: int,
    announced: bool,
) -> Any:
    """A STOR of `data` begun (announced with ALLO as a Dahua recorder does, or not:
    buffered), its `first` bytes sent and its reservation held: the data socket."""
    if announced:
        conn = announce(ftp, name, len(data))
    else:
        ftp.voidcmd("TYPE I")
        conn = ftp.transfercmd(f"STOR {name}")
    conn.sendall(data[:first])
    wait_for(lambda: stack.drive(dev).reserved_bytes > 0, what="a reservation")
    return conn


@pytest.mark.parametrize("announced", [True, False], ids=["streamed", "buffered"])
def test_a_slow_upload_outlives_the_lease_and_the_janitor(
    slow_stack: Stack, announced: bool
) -> None:
    """The recorder pauses mid-file for three leases while the janitor runs:
    its lease was renewed all along, so the file is stored whole (it used to
    be released, and the commit refused with a permanent 550)."""
    stack = slow_stack
    dev = stack.device()
    data = os.urandom(7 * MiB)
    with stack.ftp(dev) as ftp:
        # buffered, 6 MiB put a part in S3: a multipart upload is open
        conn = begin(stack, ftp, dev, "slow.dav", data, 6 * MiB, announced)
        _janitor_through(stack, 3 * LEASE)
        assert stack.drive(dev).reserved_bytes > 0  # still held
        conn.sendall(data[6 * MiB :])
        conn.close()
        assert ftp.voidresp().startswith("226")
    entry = stack.entries(dev)["slow.dav"]
    assert stack.store.open_range(entry.key).read() == data
    stack.assert_consistent(dev)


@pytest.mark.parametrize("announced", [True, False], ids=["streamed", "buffered"])
def test_a_stalled_ftp_upload_gets_451_and_gives_its_reservation_back(
    stall_stack: Stack, announced: bool
) -> None:
    stack = stall_stack
    dev = stack.device()
    data = os.urandom(7 * MiB)
    with stack.ftp(dev) as ftp:
        conn = begin(stack, ftp, dev, "stalled.dav", data, MiB if announced else 6 * MiB, announced)
        # ... and the recorder sends nothing more, nor closes anything
        with pytest.raises(ftplib.error_temp, match=r"^451 No data from the client"):
            ftp.voidresp()
        conn.close()
        wait_for(lambda: stack.drive(dev).reserved_bytes == 0, what="the reservation back")
        assert stack.entries(dev) == {}
        # the session goes on: the recorder sends the file again
        conn = announce(ftp, "stalled.dav", len(data))
        conn.sendall(data)
        conn.close()
        assert ftp.voidresp().startswith("226")
    stack.assert_consistent(dev)
    assert stack.pipeline.leases.stalled == 1


def test_a_stalled_sftp_upload_fails_and_gives_its_reservation_back(stall_stack: Stack) -> None:
    stack = stall_stack
    port = stack.start_sftp()
    dev = stack.device()

    async def main() -> None:
        async with sftp_connect(port, dev.username, dev.password) as conn:
            async with conn.start_sftp_client() as sftp:
                f = await sftp.open("stalled.dav", "wb")
                await f.write(os.urandom(6 * MiB))
                await asyncio.to_thread(
                    wait_for, lambda: stack.drive(dev).reserved_bytes > 0, 15.0, "a reservation"
                )
                await asyncio.to_thread(
                    wait_for,
                    lambda: stack.drive(dev).reserved_bytes == 0,
                    15.0,
                    "the reservation back",
                )
                with pytest.raises(asyncssh.SFTPFailure, match="No data from the client"):
                    await f.write(b"late", 6 * MiB)
                with pytest.raises(asyncssh.SFTPFailure):
                    await f.close()

    asyncio.run(main())
    assert stack.entries(dev) == {}
    stack.assert_consistent(dev)
