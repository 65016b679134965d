"""`make run` as a newcomer meets it: local only, fresh secrets, FTPS, and printed commands that work."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.devstack.seaweed import free_port
from tests.support.nodes import stop_process
from tests.support.wait import wait_for

pytestmark = pytest.mark.process
BIN = str(Path(sys.executable).parent / "cam2drive")


def start(var: Path, ports: dict[str, int]) -> tuple[subprocess.Popen[str], str]:
    env = {
        **os.environ,
        "CAM2DRIVE_DEV_S3_PORT": str(ports["s3"]),
        "CAM2DRIVE_DEV_MP_PORT": str(ports["mp"]),
        "CAM2DRIVE_DEV_SMTP_PORT": str(ports["smtp"]),
        "CAM2DRIVE_FTP_PORT": str(ports["ftp"]),
        "CAM2DRIVE_SFTP_PORT": str(ports["sftp"]),
        "CAM2DRIVE_HTTP_PORT": str(ports["http"]),
        "CAM2DRIVE_FTP_PASSIVE_PORTS": f"{ports['pasv']}-{ports['pasv'] + 20}",
    }
    for name in list(env):  # nothing from the test run's own stack leaks in
        if name.startswith("CAM2DRIVE_") and name not in (
            "CAM2DRIVE_DEV_S3_PORT",
            "CAM2DRIVE_DEV_MP_PORT",
            "CAM2DRIVE_DEV_SMTP_PORT",
            "CAM2DRIVE_FTP_PORT",
            "CAM2DRIVE_SFTP_PORT",
            "CAM2DRIVE_HTTP_PORT",
            "CAM2DRIVE_FTP_PASSIVE_PORTS",
        ):
            env.pop(name)
    proc = subprocess.Popen(
        [BIN, "dev", "run", "--var", str(var)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=var.parent,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "other shells: export" in line:
            return proc, "".join(lines)
    proc.kill()
    raise AssertionError("make run did not come up:\n" + "".join(lines))


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


def test_dev_run_is_local_fresh_and_its_printed_commands_work(tmp_path: Path) -> None:
    ports = {k: free_port() for k in ("s3", "mp", "smtp", "ftp", "sftp", "http")}
    ports["pasv"] = 42000 + os.getpid() % 1000 * 20
    first, out = start(tmp_path / "var", ports)
    try:
        viewer_password = re.search(r"viewer\s+\S+\s+password (\S+)", out)[1]  # type: ignore[index]
        assert viewer_password != "cliente-demo-2026"
        # local only: the FTP port answers on 127.0.0.1 and nowhere else
        wait_for(lambda: listening(ports["ftp"]) and listening(ports["http"]), 60, "the gateway")
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.2", ports["ftp"]), timeout=5)
        # the printed curl works as printed: FTPS verified against the generated certificate
        curl = re.search(r"try:\s+(curl .*)$", out, re.M)[1]  # type: ignore[index]
        assert "--ssl-reqd" in curl
        (tmp_path / "somefile").write_bytes(b"snapshot")
        done = subprocess.run(
            [*shlex.split(curl), "-sS"], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        # the export line works from any folder
        exports = dict(
            kv.split("=", 1)
            for kv in shlex.split(re.search(r"other shells: export (.*)$", out, re.M)[1])
        )  # type: ignore[index]
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        usage = subprocess.run(
            [BIN, "usage", "--json"],
            cwd=elsewhere,
            capture_output=True,
            text=True,
            env={**os.environ, **exports},
            timeout=60,
        )
        assert usage.returncode == 0, usage.stderr
        assert '"objects": 1' in usage.stdout
        # the ERP key printed works, and its secret is this start's
        key = re.search(r"KEY=(\S+)", out)[1]  # type: ignore[index]
        products = subprocess.run(
            ["curl", "-sS", "-u", key, f"http://127.0.0.1:{ports['http']}/api/v1/products"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert '"AC-ST-50"' in products.stdout
    finally:
        stop_process(first, 30)
    second, out2 = start(tmp_path / "var", ports)
    stop_process(second, 30)
    assert re.search(r"viewer\s+\S+\s+password (\S+)", out2)[1] != viewer_password  # type: ignore[index]
