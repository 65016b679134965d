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

import asyncio
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
    stays with the process unless it sits at the very top of a heap: in the
    saturated fleet bench the arenas grew to 143 MB of which 117 MB were
    free yet resident, and stayed so when the load stopped. `malloc_trim`
    returns free pages from the middle of the heaps too. Measured there:
    a median 0.8 ms per call (max 41 ms, without the GIL), peak RSS 335 ->
    276 MB, RSS after the load 244 -> 143 MB.
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


class Holding:
    """One upload's share of a BufferBudget: the bytes of the buffer it is
    filling (and any it prepaid), not the parts it has sent."""

    __slots__ = ("held",)

    def __init__(self) -> None:
        self.held = 0


class BufferBudget:
    """The upload buffer bytes one gateway process may hold at once.

    Each buffered upload holds a part being filled plus parts on their way
    to S3; with hundreds of recorders that multiplies into hundreds of
    megabytes. A session that needs more while the budget is spent waits
    here, and while it waits it does not read its socket: TCP slows that
    recorder down (it keeps the rest on its own HDD) instead of the gateway
    growing. Bytes come back when a part reaches S3 or an upload ends.

    Buffers are charged as they fill, a MiB at a time, so the budget counts
    what sessions hold: an SFTP clip (whose size nobody announces) charged
    a whole part at its first MiB while it held 1-5 MB, so a 48 MiB budget
    admitted six clips and the rest waited, each holding its unread window
    outside the budget (BENCHMARKS.md, session 14). Growing in steps can
    stand still: every session holds part of a buffer and waits for more,
    none can finish a part and send it, and nothing is on its way back.
    Then the oldest holding goes past the limit, until its part is sent or
    its file ends: memory stays under the limit plus one part, and the
    standstill ends at once instead of after `wait`. (Keeping a part free
    for the oldest instead let only it grow whenever the others had filled
    the rest: 134 waits past the bound in a minute.)

    The wait is bounded (`wait` seconds, then the bytes are granted anyway
    and counted as an overdraft): a recorder that stops sending mid-part
    must not hold the others for ever. Waiters are threads (`take`, FTP
    sessions) or coroutines (`take_async`, SFTP, which must not park a
    shared worker thread: the write that would end a wait could queue
    behind it).
    """

    def __init__(self, limit: int, wait: float = 10.0) -> None:
        self.limit = limit
        self.wait = wait
        self.used = 0  # bytes charged: buffers filling, and parts in flight
        self.inflight = 0  # of which parts on their way to S3
        self.peak = 0
        self.waits = 0  # requests that had to wait
        self.overdrafts = 0  # requests granted past the limit after `wait`
        self.stretches = 0  # requests granted past the limit to end a standstill
        self.most_holders = 0  # uploads holding buffers at once, at most
        self._cond = threading.Condition()
        self._holders: dict[Holding, None] = {}  # insertion order: the oldest first
        self._waiting: dict[Holding, None] = {}  # holdings waiting in take/take_async
        self._sleepers: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    # --- granting (all under self._cond) ----------------------------------

    def _standstill(self) -> bool:
        """Every holding waits for more, and no part is on its way back."""
        return (self.inflight == 0 and bool(self._holders)
                and all(h in self._waiting for h in self._holders))

    def _fits(self, h: Holding | None, n: int) -> bool:
        if self.used + n <= self.limit:
            return True
        if h is None:
            return self.used == 0
        if self.used == h.held:  # nothing else is held: a buffer larger than the budget
            return True
        if self._standstill() and h is next(iter(self._holders)):
            self.stretches += 1
            return True
        return False

    def _grant(self, h: Holding | None, n: int) -> None:
        if h is not None:
            if h not in self._holders:
                self._holders[h] = None
                self.most_holders = max(self.most_holders, len(self._holders))
            h.held += n
        self.used += n
        self.peak = max(self.peak, self.used)

    def _start_waiting(self, h: Holding | None) -> None:
        self.waits += 1
        if h is not None:
            self._waiting[h] = None
            if self._standstill():  # this wait completes one: the oldest may go
                self._wake()

    def _overdraft(self, n: int) -> None:
        self.overdrafts += 1
        log.warning("upload buffers over budget (%d + %d > %d bytes) after %.0f s",
                    self.used, n, self.limit, self.wait)

    def _wake(self) -> None:
        self._cond.notify_all()
        sleepers, self._sleepers = self._sleepers, []
        for loop, fut in sleepers:
            try:
                loop.call_soon_threadsafe(_resolve, fut)
            except RuntimeError:  # its loop has closed: nobody waits there any more
                pass

    # --- the API ---------------------------------------------------------

    def take(self, n: int, h: Holding | None = None) -> None:
        """Charge `n` bytes to holding `h` (None: an anonymous charge), waiting
        while they do not fit."""
        with self._cond:
            if not self._fits(h, n):
                self._start_waiting(h)
                deadline = time.monotonic() + self.wait
                try:
                    while not self._fits(h, n):
                        left = deadline - time.monotonic()
                        if left <= 0:
                            self._overdraft(n)
                            break
                        self._cond.wait(left)
                finally:
                    self._waiting.pop(h, None)  # type: ignore[arg-type]
            self._grant(h, n)

    async def take_async(self, n: int, h: Holding) -> None:
        """`take` for a coroutine: waits on its loop, not on a thread."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait
        waited = False
        try:
            while True:
                with self._cond:
                    if self._fits(h, n):
                        self._grant(h, n)
                        return
                    left = deadline - loop.time()
                    if left <= 0:
                        self._overdraft(n)
                        self._grant(h, n)
                        return
                    if not waited:
                        self._start_waiting(h)
                        waited = True
                        continue  # waiting may have made a standstill this one ends
                    fut: asyncio.Future[None] = loop.create_future()
                    self._sleepers.append((loop, fut))
                try:
                    await asyncio.wait_for(fut, left)
                except TimeoutError:
                    pass
        finally:
            if waited:
                with self._cond:
                    self._waiting.pop(h, None)

    def send(self, n: int, h: Holding) -> None:
        """`n` of `h`'s bytes leave its buffer as a part on its way to S3:
        still charged until `landed`, no longer the holding's."""
        with self._cond:
            h.held -= n
            self.inflight += n

    def landed(self, n: int) -> None:
        """A sent part's bytes come back: it reached S3, or never left."""
        if n:
            with self._cond:
                self.used -= n
                self.inflight -= n
                self._wake()

    def give(self, n: int) -> None:
        """An anonymous charge comes back."""
        if n:
            with self._cond:
                self.used -= n
                self._wake()

    def release(self, h: Holding) -> None:
        """The upload ended: what its holding has comes back."""
        with self._cond:
            held, h.held = h.held, 0
            self.used -= held
            # (a snapshot's upload never held anything: no waiter to wake)
            if self._holders.pop(h, False) is None or held:
                self._wake()


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
