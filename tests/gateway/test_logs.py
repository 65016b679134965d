"""Logs an operator can trust: no forged lines, real outcomes, optional JSON, a quiet banner."""

from __future__ import annotations

import ftplib
import io
import json
import logging
import re
import socket
import time

import pytest

from cli.devstack.seaweed import SeaweedServer
from tests.support.sftp import stuck_uploader
from tests.support.stack import Stack, put, stack_with

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def transfers(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "cam2drive.transfer"]


def wait_for(caplog: pytest.LogCaptureFixture, text: str) -> str:
    """The transfer record containing `text` (SFTP logs after its close reply)."""
    for _ in range(200):
        found = [m for m in transfers(caplog) if text in m]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no transfer record with {text!r}: {transfers(caplog)}")


def test_no_client_text_can_forge_a_log_line(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    dev = stack.device()
    forged = f"127.0.0.1:1-[{dev.username}] USER '{dev.username}' logged in."
    with stack.ftp(dev) as ftp:
        # a bare LF (and other controls) inside a command's argument
        for raw in (f"MKD a\n{forged}", f"MKD b\r{forged}", f"DELE c\x1b[2J\x00{forged}"):
            ftp.sock.sendall(raw.encode() + b"\r\n")
            with pytest.raises(ftplib.Error):
                ftp.getresp()
        assert ftp.pwd() == "/"
    with stack.ftp() as ftp:  # the user name is in every line's prefix
        ftp.sock.sendall(f"USER x\n{forged}\r\n".encode())
        assert ftp.getresp().startswith("331")
        with pytest.raises(ftplib.error_perm):
            ftp.sendcmd("PASS wrong")
    messages = [r.getMessage() for r in caplog.records]
    assert [m for m in messages if CONTROL.search(m)] == []
    assert any("\\x0a" in m and forged in m for m in messages)  # shown, escaped, on one line


def test_ftp_transfers_are_logged_with_their_real_outcome(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    dev = stack.device(capacity="5000B")
    with stack.ftp(dev) as ftp:
        assert put(ftp, "a.jpg", b"x" * 1000).startswith("226")
        with pytest.raises(ftplib.error_perm, match="^552"):
            put(ftp, "big.jpg", b"y" * 9000)
        buf = io.BytesIO()
        ftp.retrbinary("RETR a.jpg", buf.write)
    stored = wait_for(caplog, "STOR /a.jpg")
    assert " 226 " in stored and "bytes=1000" in stored
    refused = wait_for(caplog, "STOR /big.jpg")
    assert " 552 " in refused and "completed=" not in refused  # it said completed=1
    download = wait_for(caplog, "RETR /a.jpg")  # it said "None /a.jpg"
    assert " 226 " in download and "bytes=1000" in download


def test_an_aborted_sftp_upload_is_logged(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    port = stack.start_sftp()
    dev = stack.device()
    # the recorder loses power mid-file
    proc = stuck_uploader(
        port,
        dev.username,
        dev.password,
        """
        async with sftp.open("whole.jpg", "wb") as f:
            await f.write(b"w" * 2000)
        f = await sftp.open("cut.mp4", "wb")
        await f.write(b"c" * 5000)
        """,
    )
    proc.kill()
    proc.wait()
    ok = wait_for(caplog, "STOR /whole.jpg")
    assert "bytes=2000" in ok and ok.endswith(" ok")
    cut = wait_for(caplog, "STOR /cut.mp4")  # it was not logged at all
    assert "aborted: the client went away" in cut
    assert stack.entries(dev).keys() == {"whole.jpg"}


def test_json_transfer_log_has_one_object_per_transfer(
    db_url: str, seaweed: SeaweedServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with stack_with(db_url, seaweed, log_format="json") as stack:
        dev = stack.device()
        with stack.ftp(dev) as ftp:
            put(ftp, "snap.jpg", b"j" * 777)
        line = wait_for(caplog, '"/snap.jpg"')
        record = json.loads(line)
        assert record["protocol"] == "ftp" and record["user"] == dev.username
        assert record["path"] == "/snap.jpg" and record["bytes"] == 777
        assert record["outcome"].startswith("226") and isinstance(record["ms"], int)
        assert re.fullmatch(r"[0-9a-f]{8}", record["session"])


def test_ssh_banner_does_not_tell_the_asyncssh_version(stack: Stack) -> None:
    port = stack.start_sftp()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        banner = sock.makefile("rb").readline()
    assert banner == b"SSH-2.0-cam2drive\r\n"
