"""Real third-party clients: curl over FTP and explicit FTPS."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.devstack.seaweed import SeaweedServer
from cli.devstack.tls import self_signed
from tests.support.stack import MiB, Stack, stack_with


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-sS", "-g", *args], capture_output=True, timeout=120)


def test_curl_ftp_upload_list_download(stack: Stack, tmp_path: Path) -> None:
    dev = stack.device()
    src = tmp_path / "clip.mp4"
    src.write_bytes(os.urandom(7 * MiB))
    base = f"ftp://{dev.username}:{dev.password}@127.0.0.1:{stack.port}"
    up = curl(
        "--ftp-create-dirs",
        "-T",
        str(src),
        f"{base}/2026-11-22/001/dav/10/10.00.00-10.00.30[R][0@0][0].mp4",
    )
    assert up.returncode == 0, up.stderr
    listing = curl(f"{base}/2026-11-22/001/dav/10/")
    assert b"10.00.00-10.00.30[R][0@0][0].mp4" in listing.stdout
    down = curl(f"{base}/2026-11-22/001/dav/10/10.00.00-10.00.30[R][0@0][0].mp4")
    assert down.stdout == src.read_bytes()
    resumed = curl("-C", "1000", f"{base}/2026-11-22/001/dav/10/10.00.00-10.00.30[R][0@0][0].mp4")
    assert resumed.stdout == src.read_bytes()[1000:]
    denied = curl("-T", str(src), f"ftp://{dev.username}:wrong@127.0.0.1:{stack.port}/x")
    assert (
        denied.returncode != 0
        and b"530" in denied.stderr + denied.stdout
        or denied.returncode == 67
    )
    stack.assert_consistent(dev)


@pytest.fixture
def ftps_stack(db_url: str, seaweed: SeaweedServer, tmp_path: Path) -> Iterator[Stack]:
    """A stack whose FTP requires TLS, with a fresh self-signed certificate."""
    cert, key = self_signed(tmp_path / "tls")
    with stack_with(
        db_url, seaweed, ftp_tls_certfile=cert, ftp_tls_keyfile=key, ftp_tls_required=True
    ) as stack:
        yield stack


def test_curl_explicit_ftps(ftps_stack: Stack, tmp_path: Path) -> None:
    stack = ftps_stack
    dev = stack.device()
    src = tmp_path / "snap.jpg"
    src.write_bytes(os.urandom(6 * MiB + 7))
    base = f"ftp://{dev.username}:{dev.password}@127.0.0.1:{stack.port}"
    up = curl("--ssl-reqd", "-k", "--ftp-create-dirs", "-T", str(src), f"{base}/tls/snap.jpg")
    assert up.returncode == 0, up.stderr
    down = curl("--ssl-reqd", "-k", f"{base}/tls/snap.jpg")
    assert down.stdout == src.read_bytes()
    plain = curl("-T", str(src), f"{base}/plain.jpg")  # TLS required: refused
    assert plain.returncode != 0
    stack.assert_consistent(dev)
    assert set(stack.entries(dev)) == {"tls", "tls/snap.jpg"}


def test_ftps_announced_clip_streams_through_tls(ftps_stack: Stack) -> None:
    """A recorder on FTPS that announces its clip (ALLO): the clip is one
    streamed PutObject read through TLS, its data channel paused and resumed
    as the stream's pipe fills and empties; then read back through TLS."""
    import ftplib
    import io
    import ssl

    stack = ftps_stack
    dev = stack.device()
    data = os.urandom(9 * MiB + 13)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    ftp = ftplib.FTP_TLS(context=context)
    ftp.connect("127.0.0.1", stack.port, timeout=30)
    ftp.login(dev.username, dev.password)
    ftp.prot_p()
    ftp.voidcmd("TYPE I")
    ftp.voidcmd(f"ALLO {len(data)}")
    assert ftp.storbinary("STOR clip.dav", io.BytesIO(data), blocksize=1 << 20).startswith("226")
    back = io.BytesIO()
    ftp.retrbinary("RETR clip.dav", back.write)
    ftp.quit()
    assert back.getvalue() == data
    assert stack.pipeline.streaming and stack.pipeline.budget.peak == 0  # no part buffer
    stack.assert_consistent(dev)
