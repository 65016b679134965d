"""One event loop for every FTP session, and a pool for what would block it.

pyftpdlib's threaded server gives each session a thread of its own, and a
gateway serving 150 recorders then runs 150 Python threads taking turns at
the GIL: a snapshot's CPU cost grows with the number of sessions
(BENCHMARKS.md, FTP sessions). So the FTP gateway runs pyftpdlib's
event loop, and every step that waits on the database or S3 (a login, MKD,
a commit, a part handed to S3) runs on a small pool; its outcome comes back
to the loop through `LoopCalls`, the only way another thread may touch a
session.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

log = logging.getLogger("cam2drive.ftp")

# Threads that run blocking steps for the sessions. Most steps take a few
# milliseconds of database or S3 time; a session waiting for buffer budget
# (gateway/memory.py) holds one for up to its 10 s bound.
IO_THREADS = 32


class LoopCalls:
    """Callables handed from any thread to the IOLoop's thread, run in order.

    A socket pair registered with the loop wakes its poll(); a byte per call
    is sent, and a full pair (a wake-up already pending) is fine.
    """

    def __init__(self, ioloop: Any) -> None:
        self.ioloop = ioloop
        self._rx, self._tx = socket.socketpair()
        self._rx.setblocking(False)
        self._tx.setblocking(False)
        self._calls: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._fileno = self._rx.fileno()
        self._signals = False
        ioloop.register(self._fileno, self, ioloop.READ)

    def wake_on_signals(self) -> None:
        """Wake the loop for every signal (main thread only).

        Python runs a signal's handler in the main thread, which here sleeps
        in epoll with no timeout; the kernel may deliver SIGTERM to any of
        the pool's threads instead, and the handler then waited for the next
        client to wake the loop (a node stopped while idle did not stop).
        """
        signal.set_wakeup_fd(self._tx.fileno(), warn_on_full_buffer=False)
        self._signals = True

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn(*args)` on the loop's thread (safe from any thread)."""
        self._calls.append((fn, args))
        try:
            self._tx.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # full: a wake-up is pending; closed: the loop has stopped

    # --- the IOLoop's side (the dispatcher interface its poll() calls) -----

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def handle_read_event(self) -> None:
        try:
            while self._rx.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass
        calls = self._calls
        while calls:
            fn, args = calls.popleft()
            try:
                fn(*args)
            except Exception:
                log.exception("FTP loop call %r failed", fn)

    def handle_write_event(self) -> None:
        pass

    def handle_close(self) -> None:
        self.close()

    def handle_error(self) -> None:
        log.exception("FTP loop wake-up failed")

    def close(self) -> None:
        if self._signals and threading.current_thread() is threading.main_thread():
            signal.set_wakeup_fd(-1)  # before the socket goes: its number may be reused
            self._signals = False
        self.ioloop.unregister(self._fileno)
        self._rx.close()
        self._tx.close()


class Offload:
    """Runs a session's blocking step on the pool and its outcome on the loop."""

    def __init__(self, ioloop: Any, threads: int = IO_THREADS) -> None:
        self.calls = LoopCalls(ioloop)
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ftp-io")

    def run(self, work: Callable[[], Any], then: Callable[[bool, Any], None]) -> None:
        """`work()` on a pool thread; `then(True, result)` or `then(False, exc)` on the loop."""

        def job() -> None:
            try:
                outcome: tuple[bool, Any] = (True, work())
            except BaseException as exc:  # noqa: BLE001  (handed to the loop)
                outcome = (False, exc)
            self.calls.call_soon(then, *outcome)

        self.pool.submit(job)

    def fire(self, work: Callable[[], Any], what: str) -> None:
        """`work()` on a pool thread when nobody waits for its outcome (an abort)."""

        def job() -> None:
            try:
                work()
            except Exception:
                log.exception("%s failed", what)

        self.pool.submit(job)
