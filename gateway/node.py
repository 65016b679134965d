"""Starting a gateway node: one process serving FTP and/or SFTP, or a supervisor of workers.

This lives in the gateway, not in the CLI, because what a node does before
it serves (allocator, heap trimming, bucket, frozen start-up heap, GIL switch
interval) is a gateway rule the operator's command and `make run` must share.
The caller hands in the wired parts (`NodeParts`) and, for forked workers, a
way to wire them again from a worker's share of the settings.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from sqlalchemy import Engine

from billing.core.settings import Settings
from gateway.ingest import IngestPipeline
from gateway.store import S3DriveStore

log = logging.getLogger("cam2drive")


StoreT = TypeVar("StoreT", covariant=True)


class Parts(Protocol[StoreT]):
    """What a service runs on (a gateway node, the HTTP app); the CLI's
    composition root provides it, tests their stack."""

    @property
    def settings(self) -> Settings: ...

    @property
    def engine(self) -> Engine: ...

    @property
    def store(self) -> StoreT: ...


class NodeParts(Parts[S3DriveStore], Protocol):
    """What a node serves with: its store is the drives' bucket, and uploads go
    through the ingest pipeline."""

    @property
    def pipeline(self) -> IngestPipeline: ...


def serve_node(
    parts: NodeParts,
    protocols: tuple[str, ...],
    rewire: Callable[[Settings], NodeParts],
    exit_status: Callable[[BaseException], int],
    after_worker: Callable[[], None] = lambda: None,
) -> bool:
    """Serve until stopped: in this process, or as a supervisor of
    `gateway_workers` forked workers on listening sockets bound here
    (gateway/workers.py). True if a worker failed to start."""
    from gateway.workers import Supervisor, listen, preload, share, worker_count

    st = parts.settings
    count = worker_count(st)
    if count == 1:
        serve_protocols(parts, protocols)
        return False
    shares = [share(st, i, count) for i in range(count)]  # a bad split fails before binding
    sockets: dict[str, list[socket.socket]] = {}
    if "sftp" in protocols:  # made once here, not raced for by every worker
        from gateway.sftp.hostkeys import ensure_host_keys

        ensure_host_keys(st.sftp_host_key_dir)
        sockets["sftp"] = listen(st.sftp_host, st.sftp_port, count)
    if "ftp" in protocols:
        sockets["ftp"] = listen(st.ftp_host, st.ftp_port, count)

    def worker(index: int, ready: Callable[[], None]) -> int:
        mine = rewire(shares[index])
        for group in sockets.values():
            for other in group[:index] + group[index + 1 :]:
                other.close()
        try:
            serve_protocols(mine, protocols, {k: v[index] for k, v in sockets.items()}, ready)
            return 0
        except BaseException as exc:
            return exit_status(exc)
        finally:
            after_worker()

    preload(st)
    return bool(Supervisor(count, worker).run())


def serve_protocols(
    parts: NodeParts,
    protocols: tuple[str, ...],
    sockets: dict[str, socket.socket] | None = None,
    ready: Callable[[], None] = lambda: None,
) -> None:
    """Serve `protocols` in this process until stopped; SFTP beside FTP on its own
    thread. `ready` is called once every protocol serves."""
    from gateway.auth import Authenticator

    sockets = sockets or {}
    prepare_gateway(parts)
    if protocols == ("sftp",):
        from gateway.sftp.server import serve

        serve(
            parts.settings,
            parts.pipeline,
            Authenticator(parts.settings, parts.engine),
            sock=sockets.get("sftp"),
            ready=ready,
        )
        return
    if "sftp" in protocols:
        start_sftp_thread(parts, sockets.get("sftp"))
    serve_ftp(parts, sockets.get("ftp"), ready)


def start_sftp_thread(parts: NodeParts, sock: socket.socket | None = None) -> None:
    """SFTP on its own asyncio loop beside the FTP server; returns once it listens.

    A port in use or an unreadable host key fails here, before FTP starts,
    rather than leaving a process that silently serves one protocol.
    """
    from gateway.auth import Authenticator
    from gateway.sftp.server import serve_in_thread

    serve_in_thread(
        parts.settings, parts.pipeline, Authenticator(parts.settings, parts.engine), sock=sock
    )


def prepare_gateway(parts: NodeParts) -> None:
    """What every gateway process does before serving: an allocator that
    gives buffers back, a heap trimmed every few seconds, the bucket, its
    start-up heap frozen out of the collector's sight (gateway/memory.py),
    and the GIL's switch interval (`gil_switch_interval_ms`)."""
    from gateway.memory import freeze_startup_heap, start_heap_trimmer, tune_allocator

    sys.setswitchinterval(parts.settings.gil_switch_interval_ms / 1000)
    tune_allocator()
    start_heap_trimmer(parts.settings.heap_trim_interval)
    parts.store.ensure_bucket()
    from gateway.metrics import serve as serve_metrics

    serve_metrics(parts.settings)
    freeze_startup_heap()


def serve_ftp(
    parts: NodeParts, sock: socket.socket | None = None, ready: Callable[[], None] = lambda: None
) -> None:
    """Serve FTP on this thread until SIGTERM (`prepare_gateway` done by the caller)."""
    from gateway.auth import Authenticator
    from gateway.ftp.server import build_server

    st = parts.settings
    server = build_server(st, parts.pipeline, Authenticator(st, parts.engine), sock=sock)
    signal.signal(signal.SIGTERM, _exit_cleanly)
    server.handler.offload.calls.wake_on_signals()
    log.info(
        "FTP gateway on %s:%s (passive %s%s)",
        st.ftp_host,
        st.ftp_port,
        st.ftp_passive_ports,
        ", TLS" if st.ftp_tls_certfile else "",
    )
    ready()
    server.serve_forever()  # returns, sessions closed, on SIGTERM or Ctrl-C


def _exit_cleanly(*_: Any) -> None:
    # Raised in the main thread inside pyftpdlib's loop, which catches it and
    # closes every session. Closing the server from the handler instead
    # pulled the loop's descriptors from under its poll(): every stop ended
    # in "Bad file descriptor" and exit status 1.
    raise SystemExit(0)
