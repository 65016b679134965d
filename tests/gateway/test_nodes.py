"""Several gateway processes on one PostgreSQL and one S3: two FTP nodes and one SFTP node.

Real `cam2drive gateway ftp|sftp` processes, real clients, a real SIGKILL.
"""

from __future__ import annotations

import ftplib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest
from sqlalchemy import delete

from billing.core.models import LoginFailure
from cli.devstack.seaweed import SeaweedServer, free_port
from tests.support.nodes import BIN, LEASE, ftp_put_many, gateway_env, sftp_put_many, stop_process
from tests.support.stack import MiB, Stack
from tests.support.wait import wait_for


class Node:
    def __init__(self, kind: str, stack: Stack, tmp: Path, name: str) -> None:
        self.kind, self.port = kind, free_port()
        env = gateway_env(
            stack,
            tmp,
            self.port,
            self.port,
            CAM2DRIVE_NODE_NAME=name,
            CAM2DRIVE_RESERVATION_LEASE_SECONDS=str(LEASE),
            CAM2DRIVE_AUTH_FAILED_DELAY="0",
            CAM2DRIVE_BAN_MAX_FAILURES="3",
        )
        self.proc = subprocess.Popen(
            [BIN, "gateway", kind],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp / f"{name}.log", "w"),
        )  # noqa: SIM115
        wait_for(self._listening, timeout=30, what=f"{name} listening")

    def _listening(self) -> bool:
        assert self.proc.poll() is None, f"{self.kind} node exited"
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture
def nodes(
    pg_url: str, seaweed: SeaweedServer, tmp_path: Path
) -> Iterator[tuple[Stack, list[Node]]]:
    stack = Stack(pg_url, seaweed, "c2d-pg")
    started: list[Node] = []
    try:
        for kind, name in (("ftp", "ftp-a"), ("ftp", "ftp-b"), ("sftp", "sftp-c")):
            started.append(Node(kind, stack, tmp_path, name))
        yield stack, started
    finally:
        for node in started:
            node.stop()
        stack.close()


def test_one_drive_filled_from_three_nodes_never_overshoots(nodes) -> None:  # type: ignore[no-untyped-def]
    stack, (a, b, c) = nodes
    dev = stack.device(capacity="3000000B", on_full="reject")
    data = os.urandom(100_000)  # 30 fit; 3 x 20 are offered
    results: dict[str, list[str]] = {}
    peak = [0]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            d = stack.drive(dev)
            peak[0] = max(peak[0], d.committed_bytes + d.reserved_bytes)

    def client(node: Node, tag: str) -> None:
        put = ftp_put_many if node.kind == "ftp" else sftp_put_many
        results[tag] = put(
            node.port, dev.username, dev.password, [f"{tag}-{i}.jpg" for i in range(20)], data
        )

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [
        threading.Thread(target=client, args=(n, t)) for n, t in ((a, "a"), (b, "b"), (c, "c"))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    watcher.join()
    ok = sum(r in ("226", "ok") for rs in results.values() for r in rs)
    assert ok == 30, results  # exactly what fits, from whichever node got there first
    assert all(len(rs) == 20 for rs in results.values())
    assert peak[0] <= 3_000_000
    assert stack.drive(dev).committed_bytes == 3_000_000
    stack.assert_consistent(dev)


def test_a_ban_on_one_node_holds_on_the_others(nodes) -> None:  # type: ignore[no-untyped-def]
    stack, (a, b, c) = nodes

    def clear() -> None:
        with stack.engine.begin() as conn:
            conn.execute(delete(LoginFailure.__table__))  # type: ignore[attr-defined]

    clear()
    dev = stack.device()
    try:
        for _ in range(3):
            with ftplib.FTP() as ftp:
                ftp.connect("127.0.0.1", a.port, timeout=10)
                with pytest.raises(ftplib.error_perm):
                    ftp.login(dev.username, "wrong")
        with pytest.raises(ftplib.error_temp, match="^421"), ftplib.FTP() as ftp:
            ftp.connect("127.0.0.1", b.port, timeout=10)
            ftp.login(dev.username, dev.password)
        with pytest.raises((asyncssh.Error, OSError)):
            sftp_put_many(c.port, dev.username, dev.password, ["x.jpg"], b"x")
    finally:
        clear()
    assert ftp_put_many(b.port, dev.username, dev.password, ["x.jpg"], b"x") == ["226"]


@pytest.mark.parametrize("announced", [False, True], ids=["multipart", "streamed"])
def test_a_node_killed_mid_upload_leaves_nothing_and_the_janitor_cleans_up(
    nodes, tmp_path: Path, announced: bool
) -> None:  # type: ignore[no-untyped-def]
    """Unannounced: a multipart upload is open in S3 when the node dies. Announced
    (ALLO): one streamed PutObject is cut off mid-body, which S3 never stores."""
    stack, (a, b, _) = nodes
    dev = stack.device()
    sock_ready = threading.Event()

    def upload() -> None:
        try:
            with ftplib.FTP() as ftp:
                ftp.connect("127.0.0.1", a.port, timeout=30)
                ftp.login(dev.username, dev.password)
                ftp.voidcmd("TYPE I")
                if announced:
                    ftp.voidcmd(f"ALLO {20 * MiB}")
                conn = ftp.transfercmd("STOR clip.dav")
                conn.sendall(os.urandom(7 * MiB))  # one 5 MiB part goes to S3
                sock_ready.set()
                time.sleep(60)
        except (OSError, EOFError, ftplib.Error):
            pass

    threading.Thread(target=upload, daemon=True).start()
    assert sock_ready.wait(30)
    if announced:
        wait_for(lambda: stack.drive(dev).reserved_bytes == 20 * MiB, what="the clip reserved")
    else:
        wait_for(lambda: stack.drive(dev).reserved_bytes >= 5 * MiB, what="a reserved part")
        wait_for(lambda: len(stack.multipart_uploads(dev)) == 1, what="an open multipart upload")
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait()
    killed_at = time.monotonic()
    assert stack.entries(dev) == {} and stack.s3_keys(dev) == {}  # nothing visible, ever
    env = {
        **os.environ,
        **stack.seaweed.env(),
        "CAM2DRIVE_DATABASE_URL": stack.db_url,
        "CAM2DRIVE_S3_BUCKET": stack.settings.s3_bucket,
    }

    def janitor_cleaned() -> bool:
        subprocess.run([BIN, "janitor", "--json"], env=env, check=True, capture_output=True)
        return stack.drive(dev).reserved_bytes == 0 and stack.multipart_uploads(dev) == []

    wait_for(janitor_cleaned, timeout=LEASE + 20, what="janitor released the dead node's upload")
    assert time.monotonic() - killed_at >= LEASE - 1  # not before the lease ran out
    stack.assert_consistent(dev)
    assert ftp_put_many(b.port, dev.username, dev.password, ["after.dav"], b"x" * 1000) == ["226"]
