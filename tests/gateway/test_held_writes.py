"""SFTP writes past a hole: held data is bounded per session and per gateway process.

Each file may hold up to sftp_write_window (16 MiB) ahead of a hole; before
the bounds, a client that opened many files and wrote past a hole in each
grew the gateway by that much per file.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncssh
import pytest

from tests.support.sftp import sftp_connect
from tests.support.stack import MiB, Stack
from tests.support.wait import wait_for


async def _write_past_holes(
    sftp: asyncssh.SFTPClient, folder: str, files: int
) -> tuple[list[asyncssh.SFTPClientFile], int, asyncssh.SFTPError | None]:
    """Open `files` files and write 1 MiB at offset 1 MiB in each (a hole at 0):
    the handles, how many writes were taken, and the first refusal."""
    await sftp.makedirs(folder)
    handles = []
    for i in range(files):
        f = await sftp.open(f"{folder}/{i}.dav", "wb")
        handles.append(f)
        try:
            await f.write(b"x" * MiB, MiB)
        except asyncssh.SFTPError as err:
            return handles, i, err
    return handles, files, None


async def _close_all(handles: list[asyncssh.SFTPClientFile]) -> None:
    for f in handles:
        with contextlib.suppress(asyncssh.SFTPError):
            await f.close()  # a file with a hole is refused at close


def test_held_writes_are_bounded_per_session_and_per_process(stack: Stack) -> None:
    port = stack.start_sftp()
    budget = stack.pipeline.budget
    session_limit = stack.settings.sftp_held_per_session
    node_limit = stack.settings.upload_buffer_budget // 2
    assert session_limit < node_limit < 2 * session_limit  # the defaults this test relies on
    dev = stack.device()

    async def main() -> None:
        def connect() -> Any:
            return sftp_connect(port, dev.username, dev.password)

        async with connect() as a, connect() as b:
            async with a.start_sftp_client() as sa, b.start_sftp_client() as sb:
                # one session: refused once it holds its limit, with why
                first, taken, err = await _write_past_holes(sa, "a", 40)
                assert taken == session_limit // MiB
                assert isinstance(err, asyncssh.SFTPFailure)
                assert "written past holes in this session" in str(err.reason)
                assert budget.held == session_limit

                # a second session: refused once the process holds its limit
                second, taken, err = await _write_past_holes(sb, "b", 40)
                assert taken == (node_limit - session_limit) // MiB
                assert isinstance(err, asyncssh.SFTPFailure)
                assert "gateway holds all the out-of-order data" in str(err.reason)
                assert budget.held == node_limit

                # closing the files gives every held byte back; nothing is stored
                await _close_all(first + second)
                assert budget.held == 0 and budget.used == 0
                with pytest.raises(asyncssh.SFTPNoSuchFile):
                    await sa.stat("a/0.dav")

                # a file written in order afterwards is stored as usual
                async with sa.open("a/ok.dav", "wb") as f:
                    await f.write(b"y" * (2 * MiB))
                assert await sa.getsize("a/ok.dav") == 2 * MiB

    asyncio.run(main())
    stack.assert_consistent(dev)


def test_dropped_session_gives_held_bytes_back(stack: Stack) -> None:
    port = stack.start_sftp()
    budget = stack.pipeline.budget
    dev = stack.device()

    async def main() -> None:
        async with sftp_connect(port, dev.username, dev.password) as conn:
            async with conn.start_sftp_client() as sftp:
                _, taken, err = await _write_past_holes(sftp, "c", 4)
                assert (taken, err) == (4, None)
                assert budget.held == 4 * MiB
            # the connection closes with the files still open

    asyncio.run(main())
    # asyncssh aborts the files left open once the connection has ended
    wait_for(lambda: budget.held == 0, what="held bytes given back")
    assert budget.used == 0
