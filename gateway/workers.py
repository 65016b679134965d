"""Several gateway processes on one host behind one pair of listening sockets.

A gateway process is bound by its GIL: with ~200 recorders on one process
every database round trip and S3 call waits for the interpreter
(BENCHMARKS.md, fleet). More processes are the standard answer (gunicorn's and nginx's
pre-fork model): the supervisor binds the FTP and SFTP ports, so a port
in use fails before anything starts, then forks workers that inherit the
listening sockets. Each worker has its own socket of a SO_REUSEPORT group
on each port, and the kernel spreads connections over the group by their
addresses. (One shared socket is not enough: every idle worker wakes for a
connection and the same one wins each time, so a fleet connecting at start
lands on one worker.) The supervisor keeps every socket open, so a
worker's replacement takes over its queue and no connection is dropped
between the two. Workers are gateway nodes as far as the database is
concerned: every cross-node rule (quota ledger, bans, janitor leases)
already holds.

What a node owns is split among its workers (`share`): the upload buffer
budget, the database pool, the connection limit and the passive port
range (disjoint slices, so two workers never race for one port). The
supervisor restarts a worker that dies, stops them all on SIGTERM, and a
worker dies with its supervisor (`PR_SET_PDEATHSIG`), so a node killed
with SIGKILL leaves no orphan serving.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import math
import os
import signal
import socket
import sys
import traceback
from collections.abc import Callable

from billing.core.errors import InvalidInput
from billing.core.settings import Settings, passive_port_range

log = logging.getLogger("cam2drive.workers")

PR_SET_PDEATHSIG = 1


def worker_count(settings: Settings) -> int:
    """`gateway_workers`, where 0 means one per core on PostgreSQL and one on
    SQLite (a single file has one writer at a time, so a second process only
    adds lock waits; an explicit count is honoured on either)."""
    if settings.gateway_workers:
        return settings.gateway_workers
    if settings.database_url.startswith("sqlite"):
        return 1
    try:
        return len(os.sched_getaffinity(0)) or 1  # the cores this process may use
    except OSError:  # a seccomp filter that refuses the call
        return os.cpu_count() or 1


def share(settings: Settings, index: int, count: int) -> Settings:
    """Worker `index` of `count`: its slice of what the node's settings give the node."""
    if count == 1:
        return settings
    ports = passive_port_range(settings.ftp_passive_ports)
    size = len(ports) // count
    if size < 1:
        raise InvalidInput(
            f"ftp_passive_ports {settings.ftp_passive_ports} has {len(ports)} "
            f"ports; {count} gateway workers need at least one each"
        )
    first = ports.start + index * size
    last = ports.stop - 1 if index == count - 1 else first + size - 1
    return settings.model_copy(
        update={
            "ftp_passive_ports": f"{first}-{last}",
            "upload_buffer_budget": max(settings.upload_buffer_budget // count, 1024 * 1024),
            "database_pool_size": math.ceil(settings.database_pool_size / count),
            "ftp_max_connections": math.ceil(settings.ftp_max_connections / count),
            "ftp_max_unauthenticated": math.ceil(settings.ftp_max_unauthenticated / count),
            "sftp_max_connections": math.ceil(settings.sftp_max_connections / count),
            "sftp_max_unauthenticated": math.ceil(settings.sftp_max_unauthenticated / count),
            "node_name": f"{settings.node_name}.{index}",
            # each worker process has its own counters: its own metrics port
            "metrics_port": settings.metrics_port + index if settings.metrics_port else 0,
        }
    )


def preload(settings: Settings) -> None:
    """Build, before forking, what every worker builds, and freeze it.

    Imported modules and the parsed S3 model then sit in pages the workers
    inherit; frozen, no worker's collector walks them, so the pages a
    worker only reads stay shared with the supervisor instead of being
    copied into each worker (PSS; RSS counts a shared page in every
    process). Done just before the fork, as `gc.freeze` recommends.
    """
    import gateway.ftp.server  # noqa: F401
    import gateway.ingest  # noqa: F401
    import gateway.sftp.server  # noqa: F401
    from gateway.store import S3DriveStore

    S3DriveStore(settings)  # loads the model; no request is made
    gc.collect()
    gc.freeze()


def listen(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` listening sockets on one port, one per worker (backlog as pyftpdlib's)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return [
        socket.create_server((host, port), family=family, backlog=100, reuse_port=True)
        for _ in range(count)
    ]


class Supervisor:
    """Forks `count` workers running `target(index, ready)` and keeps them running.

    A worker calls `ready()` once it serves. One that exits before that
    failed to start (S3 or the database unreachable, a bad certificate):
    every worker would fail the same way, so the node stops instead of
    restarting it in a loop. One that exits later is replaced.
    """

    def __init__(self, count: int, target: Callable[[int, Callable[[], None]], int]) -> None:
        self.count, self.target = count, target
        self.children: dict[int, tuple[int, int]] = {}  # pid -> (index, read end of its pipe)
        self.stopping = False
        self.failed = False

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; the exit status for the supervisor's process."""
        parent = os.getpid()
        for index in range(self.count):
            self._spawn(index, parent)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        log.info(
            "%d gateway workers: %s",
            self.count,
            ", ".join(str(pid) for pid in sorted(self.children)),
        )
        while self.children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            index, pipe = self.children.pop(pid)
            was_ready = _was_ready(pipe)
            if self.stopping:
                continue
            code = os.waitstatus_to_exitcode(status)
            how = f"signal {-code}" if code < 0 else f"status {code}"
            if not was_ready:
                log.error(
                    "gateway worker %d (pid %d) failed to start (%s); stopping the node",
                    index,
                    pid,
                    how,
                )
                self.failed = True
                self._stop()
                continue
            log.error(
                "gateway worker %d (pid %d) exited with %s; starting another", index, pid, how
            )
            self._spawn(index, parent)
        return 1 if self.failed else 0

    def _stop(self, *_: object) -> None:
        self.stopping = True
        for pid in self.children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def _spawn(self, index: int, parent: int) -> None:
        read, write = os.pipe()
        pid = os.fork()
        if pid:
            os.close(write)
            self.children[pid] = (index, read)
            return
        code = 1
        try:
            os.close(read)
            for _, other in self.children.values():
                os.close(other)
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, signal.SIG_DFL)
            _die_with(parent)
            code = self.target(index, lambda: _say_ready(write))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # a bug: say where, never unwind into a copy of the supervisor's loop
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)


def _say_ready(pipe: int) -> None:
    os.write(pipe, b"r")
    os.close(pipe)


def _was_ready(pipe: int) -> bool:
    """Whether the (now dead) worker on this pipe had called ready()."""
    try:
        return os.read(pipe, 1) == b"r"
    finally:
        os.close(pipe)


def _die_with(parent: int) -> None:
    """SIGKILL this process when the supervisor dies, however it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before the prctl took effect
        os._exit(1)
