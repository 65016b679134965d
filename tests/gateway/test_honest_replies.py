"""Honest replies: what the gateway cannot do is refused, never answered OK and ignored."""

from __future__ import annotations

import ftplib

import asyncssh
import pytest

from tests.support.sftp import sftp_run
from tests.support.stack import Stack, put


def test_feat_lists_only_what_works(stack: Stack) -> None:
    dev = stack.device()
    with stack.ftp(dev) as ftp:
        feats = ftp.sendcmd("FEAT")
        assert " SIZE" in feats and " MDTM" in feats
        assert "MFMT" not in feats  # it was listed, then answered 502
        with pytest.raises(ftplib.error_perm, match="^500"):
            ftp.sendcmd("MFMT 20260101000000 x")


def test_allo_is_held_to_and_a_garbled_one_is_501(stack: Stack) -> None:
    """A negative or garbled ALLO is refused and announces nothing; a client that
    announced N bytes and sent fewer did not finish: no object."""
    dev = stack.device()
    with stack.ftp(dev) as ftp:
        ftp.voidcmd("TYPE I")
        for arg in ("-5", "12abc", "+3"):
            with pytest.raises(ftplib.error_perm, match="^501 ALLO needs a size"):
                ftp.sendcmd(f"ALLO {arg}")
        # no size was remembered: a 4-byte file is not held to a bogus count
        assert put(ftp, "after.jpg", b"data").startswith("226")
        assert ftp.sendcmd("ALLO 0").startswith("200")
        assert put(ftp, "empty.jpg", b"").startswith("226")
        ftp.sendcmd("ALLO 1000")
        with pytest.raises(ftplib.error_temp, match="^426"):
            put(ftp, "short", b"x" * 10)
        assert sorted(ftp.nlst()) == ["after.jpg", "empty.jpg"]
    stack.assert_consistent(dev)


def test_stor_onto_a_folder_is_refused_before_any_data(stack: Stack) -> None:
    dev = stack.device()
    with stack.ftp(dev) as ftp:
        ftp.mkd("2026")
        ftp.mkd("2026/001")
    with stack.ftp(dev) as ftp:  # a new session: the folder is only in the database
        ftp.voidcmd("TYPE I")
        # refused at the STOR itself: no 150, no data connection to fill
        with pytest.raises(ftplib.error_perm, match="^550 /2026/001 is a directory"):
            ftp.transfercmd("STOR 2026/001")
        ftp.cwd("2026")
        with pytest.raises(ftplib.error_perm, match="^550 /2026/001 is a directory"):
            ftp.transfercmd("STOR 001")
        assert put(ftp, "001/clip.mp4", b"x" * 100).startswith("226")
    stack.assert_consistent(dev)


def test_sftp_setstat_is_refused_unless_it_changes_nothing(stack: Stack) -> None:
    port = stack.start_sftp()
    dev = stack.device()
    with stack.ftp(dev) as ftp:
        put(ftp, "clip.mp4", b"recording" * 100)

    async def device(sftp: asyncssh.SFTPClient) -> None:
        attrs = await sftp.stat("clip.mp4")
        await sftp.setstat("clip.mp4", attrs)  # what already is: true, so OK
        with pytest.raises(asyncssh.SFTPOpUnsupported, match="modification times"):
            await sftp.utime("clip.mp4", (1_000_000, 1_000_000))
        with pytest.raises(asyncssh.SFTPOpUnsupported, match="truncating"):
            await sftp.truncate("clip.mp4", 10)
        with pytest.raises(asyncssh.SFTPOpUnsupported, match="owner"):
            await sftp.chown("clip.mp4", 1000, 1000)
        with pytest.raises(asyncssh.SFTPOpUnsupported, match="permissions"):
            await sftp.chmod("clip.mp4", 0o600)
        assert (await sftp.stat("clip.mp4")).size == 900  # nothing changed

    sftp_run(port, dev.username, dev.password, device)
    email, password = stack.viewer(dev)

    async def viewer(sftp: asyncssh.SFTPClient) -> None:
        (mount,) = [n for n in await sftp.listdir("/") if n not in (".", "..")]
        for op in (
            lambda: sftp.truncate(f"/{mount}/clip.mp4", 0),
            lambda: sftp.chmod(f"/{mount}/clip.mp4", 0o777),
            lambda: sftp.utime(f"/{mount}/clip.mp4", (1, 1)),
        ):
            with pytest.raises(asyncssh.SFTPPermissionDenied, match="Read-only login"):
                await op()

    sftp_run(port, email, password, viewer)
    assert stack.entries(dev)["clip.mp4"].size == 900
    stack.assert_consistent(dev)


def test_sftp_rename_never_replaces_but_posix_rename_does(stack: Stack) -> None:
    port = stack.start_sftp()
    dev = stack.device()

    async def flow(sftp: asyncssh.SFTPClient) -> None:
        for name, body in (("a.mp4", b"AAAA"), ("b.mp4", b"BB"), ("c.mp4_", b"CCC")):
            async with sftp.open(name, "wb") as f:
                await f.write(body)
        with pytest.raises(asyncssh.SFTPError, match="/b.mp4 already exists"):
            await sftp.rename("a.mp4", "b.mp4")
        async with sftp.open("b.mp4", "rb") as f:
            assert await f.read() == b"BB"  # untouched
        await sftp.rename("c.mp4_", "c.mp4")  # onto nothing: fine
        await sftp.posix_rename("a.mp4", "b.mp4")  # the client asked to replace
        async with sftp.open("b.mp4", "rb") as f:
            assert await f.read() == b"AAAA"

    sftp_run(port, dev.username, dev.password, flow)
    assert sorted(stack.entries(dev)) == ["b.mp4", "c.mp4"]
    stack.assert_consistent(dev)
