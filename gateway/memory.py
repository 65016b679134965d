"""Keep a long-running gateway's memory flat under large, short-lived buffers.

Three rules: a process-wide budget for upload buffers (`BufferBudget`), an
allocator that gives freed buffers back (`tune_allocator`), and a heap
trimmed every few seconds (`start_heap_trimmer`).

Upload parts are multi-megabyte buffers allocated and freed on many threads.
glibc raises its mmap threshold after the first such free, after which parts
come from per-thread arenas that are rarely given back, so RSS creeps up with
the number of threads that ever held a part. Pinning the threshold at 1 MiB
keeps every part in its own mapping, returned to the OS when freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import logging
import threading
import time

log = logging.getLogger("cam2drive.memory")

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8


def tune_allocator(mmap_threshold: int = 1 << 20, arena_max: int = 4) -> bool:
    """Best effort: True if glibc accepted the settings (no-op elsewhere)."""
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:
        return False
    ok = mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1
    return bool(mallopt(M_ARENA_MAX, arena_max) == 1 and ok)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """Looked up once: `find_library` runs `ldconfig -p` in a subprocess, which
    the heap trimmer would otherwise fork from a large gateway every 5 s."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def trim_heap() -> bool:
    """Give the free pages inside glibc's heaps back to the OS (`malloc_trim(0)`).

    Returns False where there is no glibc. ctypes drops the GIL for the call.
    """
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return False
    trim(0)
    return True


def start_heap_trimmer(interval: float) -> threading.Thread | None:
    """Trim the heap every `interval` seconds on a daemon thread (0: never).

    Small files, network reads and SQL rows are all under the 1 MiB mmap
    threshold, so they come from glibc's heap arenas. Freed, that memory
    stays with the process unless it sits at the very top of a heap: under a
    saturating load most of the arenas were free yet resident, and stayed so
    when the load stopped. `malloc_trim` returns free pages from the middle
    of the heaps too, in about a millisecond without the GIL (BENCHMARKS.md,
    fleet).
    """
    if interval <= 0 or _libc() is None:
        return None

    def run() -> None:
        while True:
            time.sleep(interval)
            trim_heap()

    thread = threading.Thread(target=run, name="heap-trim", daemon=True)
    thread.start()
    return thread


def freeze_startup_heap() -> int:
    """Move everything built at start-up out of the collector's sight.

    A gateway holds ~500 000 long-lived objects from start-up (boto3's S3
    model, SQLAlchemy, asyncssh, pyftpdlib); every full collection walked
    them all while holding the GIL, 64-121 ms each in the fleet bench, which
    stalls every session at once and lands in the commit-time tail.
    Frozen, a full collection walks only what was made since. Call it once
    the process has built its clients and is about to serve. Returns the
    number of objects frozen.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class BufferBudget:
    """The upload buffer bytes one gateway process may hold at once.

    Each large upload holds a part being filled plus parts on their way to S3;
    with hundreds of recorders that multiplies into hundreds of megabytes. A
    session that needs a new buffer while the budget is spent waits here, and
    while it waits it does not read its socket: TCP slows that recorder down
    (it keeps the rest on its own HDD) instead of the gateway growing. Bytes
    come back when a part reaches S3 or an upload ends.

    The wait is bounded (`wait` seconds, then the buffer is taken anyway and
    counted as an overdraft): an SFTP session's next write runs on a shared
    thread pool, so a strict budget could leave a half-filled buffer's owner
    queued behind writers that wait for it. A single buffer larger than the
    whole budget is granted when nothing else is held.
    """

    def __init__(self, limit: int, wait: float = 10.0) -> None:
        self.limit = limit
        self.wait = wait
        self.used = 0
        self.peak = 0
        self.waits = 0  # buffers that had to wait
        self.overdrafts = 0  # buffers granted past the limit after `wait`
        self.held = 0  # of `used`: bytes held out of order (see `hold`)
        self._cond = threading.Condition()

    def take(self, n: int) -> None:
        with self._cond:
            if self.used and self.used + n > self.limit:
                self.waits += 1
                deadline = time.monotonic() + self.wait
                while self.used and self.used + n > self.limit:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        self.overdrafts += 1
                        log.warning(
                            "upload buffers over budget (%d + %d > %d bytes) after %.0f s",
                            self.used,
                            n,
                            self.limit,
                            self.wait,
                        )
                        break
                    self._cond.wait(left)
            self.used += n
            self.peak = max(self.peak, self.used)

    def give(self, n: int) -> None:
        if n:
            with self._cond:
                self.used -= n
                self._cond.notify_all()

    def hold(self, n: int, cap: int) -> bool:
        """Charge `n` bytes of data held out of order (SFTP writes past a hole), or
        False if the process would then hold more than `cap` such bytes.

        Never waits: a client that leaves a hole and never fills it would keep
        what it holds for as long as it likes, so waiting for others to give
        bytes back could last forever. The bytes count in `used` too, so part
        buffers wait for them as for any other upload buffer.
        """
        with self._cond:
            if self.held + n > cap:
                return False
            self.held += n
            self.used += n
            self.peak = max(self.peak, self.used)
            return True

    def unhold(self, n: int) -> None:
        if n:
            with self._cond:
                self.held -= n
                self.used -= n
                self._cond.notify_all()
