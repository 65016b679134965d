"""Gateway nodes as separate processes: the command, its environment, stopping it, and clients that upload to it."""

from __future__ import annotations

import asyncio
import ftplib
import io
import os
import subprocess
import sys
from pathlib import Path

import asyncssh

from tests.support.stack import MiB, Stack, passive_range

BIN = str(Path(sys.executable).parent / "cam2drive")


LEASE = 3  # seconds: how long a dead node's reservations outlive it


def gateway_env(
    stack: Stack, tmp: Path, ftp_port: int, sftp_port: int, **extra: str
) -> dict[str, str]:
    """The environment of a `cam2drive gateway` process on the test stack."""
    return {
        **os.environ,
        **stack.seaweed.env(),
        "CAM2DRIVE_DATABASE_URL": stack.db_url,
        "CAM2DRIVE_S3_BUCKET": stack.settings.s3_bucket,
        "CAM2DRIVE_S3_PART_SIZE": str(5 * MiB),
        "CAM2DRIVE_FTP_HOST": "127.0.0.1",
        "CAM2DRIVE_FTP_PORT": str(ftp_port),
        "CAM2DRIVE_FTP_PASSIVE_PORTS": passive_range(),
        "CAM2DRIVE_SFTP_HOST": "127.0.0.1",
        "CAM2DRIVE_SFTP_PORT": str(sftp_port),
        "CAM2DRIVE_SFTP_HOST_KEY_DIR": str(tmp / "hostkeys"),
        **extra,
    }


def stop_process(proc: subprocess.Popen, timeout: float = 10) -> None:  # type: ignore[type-arg]
    """SIGTERM, then SIGKILL if it has not gone within `timeout` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()


def ftp_put_many(port: int, user: str, password: str, names: list[str], data: bytes) -> list[str]:
    out = []
    with ftplib.FTP() as ftp:
        ftp.connect("127.0.0.1", port, timeout=30)
        ftp.login(user, password)
        for name in names:
            try:
                out.append(ftp.storbinary(f"STOR {name}", io.BytesIO(data))[:3])
            except ftplib.error_perm as exc:
                out.append(str(exc)[:3])
    return out


def sftp_put_many(port: int, user: str, password: str, names: list[str], data: bytes) -> list[str]:
    async def run() -> list[str]:
        out = []
        async with (
            asyncssh.connect(
                "127.0.0.1", port, username=user, password=password, known_hosts=None
            ) as conn,
            conn.start_sftp_client() as sftp,
        ):
            for name in names:
                try:
                    async with sftp.open(name, "wb") as f:
                        await f.write(data)
                    out.append("ok")
                except asyncssh.SFTPError as exc:
                    out.append(exc.reason)
        return out

    return asyncio.run(run())


def assert_one_line_error(proc: subprocess.CompletedProcess[str], text: str) -> None:
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and text in lines[0], lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
