"""Several worker processes behind one node's ports (gateway/workers.py).

Real `cam2drive gateway all` supervisors forking real workers on PostgreSQL,
real FTP and SFTP clients, real signals.
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

import psutil
import pytest

from billing.core.errors import InvalidInput
from billing.core.settings import Settings
from cli.devstack.seaweed import SeaweedServer, free_port
from gateway.workers import share, worker_count
from tests.support.nodes import (
    BIN,
    assert_one_line_error,
    ftp_put_many,
    gateway_env,
    sftp_put_many,
    stop_process,
)
from tests.support.stack import MiB, Stack
from tests.support.wait import wait_for


class WorkerNode:
    """`cam2drive gateway all` with `workers` worker processes."""

    def __init__(self, stack: Stack, tmp: Path, workers: int, **env: str) -> None:
        self.ftp_port, self.sftp_port = free_port(), free_port()
        self.log = tmp / "node.log"
        self.proc = subprocess.Popen(
            [BIN, "gateway", "all"],
            stdout=subprocess.DEVNULL,
            stderr=open(self.log, "w"),  # noqa: SIM115
            env=gateway_env(
                stack,
                tmp,
                self.ftp_port,
                self.sftp_port,
                CAM2DRIVE_GATEWAY_WORKERS=str(workers),
                **env,
            ),
        )

    def workers(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children()
        except psutil.NoSuchProcess:
            return []

    def serving(self, count: int) -> None:
        """Wait until `count` workers have logged that they serve FTP."""
        try:
            wait_for(
                lambda: (
                    self.log.read_text().count("cam2drive: FTP gateway on") >= count
                    and self.proc.poll() is None
                ),
                timeout=60,
                what=f"{count} workers serving",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the node's log:\n{self.log.read_text()}") from None

    def stop(self) -> None:
        stop_process(self.proc, 15)


@pytest.fixture
def stack(pg_url: str, seaweed: SeaweedServer) -> Iterator[Stack]:
    s = Stack(pg_url, seaweed, "c2d-workers")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def node(stack: Stack, tmp_path: Path) -> Iterator[WorkerNode]:
    n = WorkerNode(stack, tmp_path, workers=2)
    try:
        n.serving(2)
        yield n
    finally:
        n.stop()


def test_two_workers_share_the_ports_and_keep_the_drive_exact(
    stack: Stack, node: WorkerNode
) -> None:
    assert len(node.workers()) == 2
    dev = stack.device(capacity="2000000B", on_full="reject")
    data = os.urandom(100_000)  # 20 fit; 6 sessions offer 8 each
    # Sessions held open at once, so the kernel hands them to both workers.
    held = []
    for _ in range(12):
        ftp = ftplib.FTP()
        ftp.connect("127.0.0.1", node.ftp_port, timeout=30)
        held.append(ftp)
    owners = {
        p.pid
        for p in node.workers()
        for c in p.net_connections("tcp")
        if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == node.ftp_port
    }
    for ftp in held:
        ftp.close()
    assert len(owners) == 2, "one worker took every session"
    results: list[list[str]] = []

    def client(i: int) -> None:
        put = ftp_put_many if i % 3 else sftp_put_many
        port = node.ftp_port if i % 3 else node.sftp_port
        results.append(
            put(port, dev.username, dev.password, [f"s{i}-{n}.jpg" for n in range(8)], data)
        )

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r in ("226", "ok") for rs in results for r in rs) == 20, results
    assert stack.drive(dev).committed_bytes == 2_000_000
    stack.assert_consistent(dev)


def test_a_dead_worker_is_replaced_and_the_node_keeps_serving(
    stack: Stack, node: WorkerNode
) -> None:
    victim = node.workers()[0]
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    node.serving(3)  # a new worker logged that it serves
    wait_for(lambda: len(node.workers()) == 2, what="two workers again")
    assert victim.pid not in {p.pid for p in node.workers()}
    dev = stack.device()
    for _ in range(4):  # whichever worker takes each session
        assert ftp_put_many(node.ftp_port, dev.username, dev.password, ["a.jpg"], b"x") == ["226"]
    assert "exited with signal 9; starting another" in node.log.read_text()


def test_a_killed_supervisor_takes_its_workers_with_it(node: WorkerNode) -> None:
    workers = node.workers()
    node.proc.send_signal(signal.SIGKILL)
    node.proc.wait(10)
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert alive == []
    with pytest.raises(OSError):  # nobody holds the port any more
        socket.create_connection(("127.0.0.1", node.ftp_port), timeout=2).close()


@pytest.mark.parametrize("count", [1, 2])
def test_sigterm_stops_every_worker_cleanly(stack: Stack, tmp_path: Path, count: int) -> None:
    n = WorkerNode(stack, tmp_path, workers=count)
    try:
        n.serving(count)
        workers = n.workers()
        assert len(workers) == (count if count > 1 else 0)
        dev = stack.device()
        assert ftp_put_many(n.ftp_port, dev.username, dev.password, ["a.jpg"], b"x") == ["226"]
        n.proc.terminate()
        assert n.proc.wait(15) == 0
        assert psutil.wait_procs(workers, timeout=5)[1] == []
    finally:
        n.stop()
    assert "error" not in n.log.read_text().lower()


def test_sigterm_to_any_thread_stops_an_idle_node(stack: Stack, tmp_path: Path) -> None:
    """The kernel may hand a process's SIGTERM to any of its threads, and the
    FTP loop sleeps with no timeout while idle: the signal must wake it
    (before, a node stopped while idle could wait for its next client)."""
    import ctypes

    n = WorkerNode(stack, tmp_path, workers=1)
    try:
        n.serving(1)
        dev = stack.device()
        assert ftp_put_many(n.ftp_port, dev.username, dev.password, ["a.jpg"], b"x") == ["226"]
        time.sleep(0.5)  # idle: nothing scheduled, no client
        others = [int(t) for t in os.listdir(f"/proc/{n.proc.pid}/task") if int(t) != n.proc.pid]
        assert others
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.tgkill(n.proc.pid, others[-1], signal.SIGTERM) == 0
        assert n.proc.wait(10) == 0
    finally:
        n.stop()
    assert "error" not in n.log.read_text().lower()


def test_a_worker_that_cannot_start_stops_the_node_with_clear_lines(
    stack: Stack, tmp_path: Path
) -> None:
    n = WorkerNode(
        stack, tmp_path, workers=2, CAM2DRIVE_FTP_TLS_CERTFILE=str(tmp_path / "missing.pem")
    )
    try:
        assert n.proc.wait(60) == 1
    finally:
        n.stop()
    lines = n.log.read_text().splitlines()
    assert "Traceback" not in n.log.read_text()
    assert any("missing.pem does not exist" in line for line in lines)
    assert (
        lines[-1] == "error: a gateway worker failed to start (its error is above); "
        "the node stopped"
    )


def test_too_few_passive_ports_for_the_workers_is_one_line(stack: Stack, tmp_path: Path) -> None:
    n = WorkerNode(stack, tmp_path, workers=3, CAM2DRIVE_FTP_PASSIVE_PORTS="31000-31001")
    assert n.proc.wait(30) == 1
    assert n.log.read_text().strip().splitlines() == [
        "error: ftp_passive_ports 31000-31001 has 2 ports; 3 gateway workers need at least one each"
    ]


def test_each_worker_gets_a_disjoint_share_of_the_node() -> None:
    st = Settings(
        database_url="postgresql://x/y",
        ftp_passive_ports="30000-30099",
        upload_buffer_budget=48 * MiB,
        database_pool_size=20,
        ftp_max_connections=512,
        node_name="gw1",
    )
    shares = [share(st, i, 3) for i in range(3)]
    ports = [
        p
        for s in shares
        for p in range(
            int(s.ftp_passive_ports.split("-")[0]), int(s.ftp_passive_ports.split("-")[1]) + 1
        )
    ]
    assert sorted(ports) == list(range(30000, 30100))  # every port, each in one worker only
    assert sum(s.upload_buffer_budget for s in shares) <= 48 * MiB
    assert [s.database_pool_size for s in shares] == [7, 7, 7]
    assert [s.ftp_max_connections for s in shares] == [171, 171, 171]
    assert [s.node_name for s in shares] == ["gw1.0", "gw1.1", "gw1.2"]
    assert share(st, 0, 1) is st
    with pytest.raises(InvalidInput, match="need at least one each"):
        share(st.model_copy(update={"ftp_passive_ports": "30000-30001"}), 0, 3)


def test_zero_workers_means_one_per_core_on_postgresql_and_one_on_sqlite() -> None:
    pg = Settings(database_url="postgresql://x/y", gateway_workers=0)
    lite = Settings(database_url="sqlite:///x.db", gateway_workers=0)
    assert worker_count(pg) == len(os.sched_getaffinity(0))
    assert worker_count(lite) == 1
    assert worker_count(lite.model_copy(update={"gateway_workers": 3})) == 3
    assert worker_count(Settings(database_url="postgresql://x/y")) == 1  # the default


@pytest.mark.process
def test_a_worker_count_out_of_range_is_one_line() -> None:
    proc = subprocess.run(
        [BIN, "gateway", "all"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CAM2DRIVE_GATEWAY_WORKERS": "-1"},
    )
    assert_one_line_error(proc, "gateway_workers")
