"""The ingest pipeline shared by every protocol: reserve -> stream parts -> commit/abort.

An `Upload` is what a frontend writes a file into. Bytes are buffered up to
one part, the part's size is reserved on the drive (rotating the oldest
recordings out if the plan says so), and the part goes to S3 on a worker
thread while the next one fills; at most `parts_in_flight` parts are pending,
so memory per upload stays near part_size x (parts_in_flight + 1) and a slow
S3 slows the client down instead of growing buffers. Small files (under one
part) are sent with a single PutObject at commit; on PostgreSQL a small
file under 1 MiB is reserved and indexed by one statement after that
PutObject, under a key its session recorded beforehand (SessionIntents).
A file whose size was
announced (FTP's ALLO, as recorders send before every clip) is one
PutObject streamed as its bytes arrive instead (gateway/stream.py).

`commit()` returns only when S3 holds the complete object and the index
says so: that is the moment a frontend may acknowledge (FTP 226, SFTP OK).
Anything else ends in `abort()`: the multipart upload is aborted, the
reservation released, and nothing is visible or counted.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from billing.core.errors import (
    Cam2DriveError,
    NotFound,
    NotSupported,
    QuotaExceeded,
    StorageUnavailable,
    UploadAborted,
)
from billing.core.models import OnFull
from billing.core.settings import Settings
from billing.entitlement import Entitlement, upload_entitlement
from gateway import metrics
from gateway.index import DriveLedger, Intent
from gateway.leases import LeaseKeeper, UploadStalled
from gateway.memory import BufferBudget
from gateway.names import object_metadata
from gateway.store import S3DriveStore
from gateway.stream import StreamedPut

log = logging.getLogger("cam2drive.ingest")

_SMALL = 1 << 20  # below this a file is buffered as a list of chunks
_MAX_PUT = 5 * 1024**3  # S3's limit for one PutObject: larger files go multipart
_GROW = 64 * 1024  # largest append to a part buffer (see Upload.write)


def human(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


class IngestPipeline:
    """Shared by all sessions of a gateway process: one S3 client, one ledger, one pool."""

    def __init__(self, settings: Settings, engine: Engine, store: S3DriveStore) -> None:
        self.settings = settings
        self.engine = engine
        self.store = store
        self.ledger = DriveLedger(
            engine, lease_seconds=settings.reservation_lease_seconds, node=settings.node_name
        )
        self.part_size = settings.s3_part_size
        self.parts_in_flight = settings.s3_parts_in_flight
        self.executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="s3-part")
        self.budget = BufferBudget(settings.upload_buffer_budget, settings.upload_buffer_wait)
        # announced uploads are streamed (gateway/stream.py) where payloads
        # need no signature; tests of the buffered path turn it off
        self.streaming = settings.s3_stream_announced and store.can_stream
        # a stream's request is broken after as long without data as ends an
        # upload (gateway/leases.py): the same rule, for a session that vanished
        self.stream_stall = settings.upload_stall_seconds
        self.leases = LeaseKeeper(self.ledger, settings.upload_stall_seconds)

    def start(
        self,
        ent: Entitlement,
        path: str,
        expected_size: int | None = None,
        intents: SessionIntents | None = None,
    ) -> Upload:
        """Begin an upload of drive path `path`; nothing is reserved until bytes arrive."""
        if expected_size is not None and expected_size > ent.capacity_bytes:
            raise QuotaExceeded(
                f"file of {human(expected_size)} is larger than the whole drive "
                f"({human(ent.capacity_bytes)})"
            )
        return Upload(self, ent, path, expected_size, intents)

    def delete_keys(self, keys: list[str]) -> None:
        """Best-effort delete of objects already dropped from the index."""
        if not keys:
            return
        try:
            self.store.delete(keys)
        except Cam2DriveError as exc:
            # The index no longer lists them, so nobody sees or pays for them;
            # the janitor's orphan sweep removes them later.
            log.warning("could not delete %d replaced/rotated objects: %s", len(keys), exc)


class SessionIntents:
    """The intents (billing.quota.Intent) of one session's next small files.

    Each small-file commit on PostgreSQL records the key the session's next
    small file will take, so that file's PutObject needs no statement before
    it and its commit is the only one: a snapshot costs one database round
    trip instead of two. An SFTP session may upload several files at once,
    so there may be a few; a session that ends gives them back, and the
    janitor releases those of a session that died.
    """

    KEEP = 4  # more than this many files at once in one session is rare

    def __init__(self, ledger: DriveLedger) -> None:
        self.ledger = ledger
        self._free: list[Intent] = []

    def take(self) -> Intent | None:
        """An intent whose lease outlasts a slow PutObject, or None."""
        try:
            intent = self._free.pop()  # list.pop is atomic: SFTP uploads run on several threads
        except IndexError:
            return None
        if time.monotonic() - intent.made > self.ledger.lease.total_seconds() / 3:
            return self.ledger.renew_intent(intent)
        return intent

    def give(self, intent: Intent) -> None:
        if len(self._free) < self.KEEP:
            self._free.append(intent)
        else:
            self._drop([intent])

    def close(self) -> None:
        free, self._free = self._free, []
        self._drop(free)

    def _drop(self, intents: list[Intent]) -> None:
        try:
            self.ledger.drop_intents([i.rid for i in intents])
        except SQLAlchemyError as exc:  # they hold no bytes; the janitor releases them
            log.warning("could not release %d upload intents: %s", len(intents), exc)


def _db(what: str) -> StorageUnavailable:
    return StorageUnavailable(f"database unavailable while {what}; retry later")


def _lease_lost(exc: NotFound) -> StorageUnavailable:
    """The janitor released the upload's reservation (the ledger's NotFound):
    transient for the recorder, which still has the file (not a 550)."""
    return StorageUnavailable(f"{exc}; file not stored, send it again")


class Upload:
    """One file being written. Not thread-safe: one frontend session drives it."""

    expected_size: int | None = None  # the size FTP's ALLO announced: the count a commit needs
    protocol = "ftp"  # set by the drive view: the metrics label (gateway/metrics.py)

    def __init__(
        self,
        pipeline: IngestPipeline,
        ent: Entitlement,
        path: str,
        size_hint: int | None = None,
        intents: SessionIntents | None = None,
    ) -> None:
        self.p = pipeline
        self._intents = intents if pipeline.ledger.commits_after_put else None
        # FTP's ALLO announces the size: a 3 MB clip then gets a 3 MB buffer,
        # not a whole part (RSS with 150 recorders: BENCHMARKS.md, fleet)
        self._hint = size_hint
        self._announced_large = size_hint is not None and size_hint >= _SMALL
        # announced and large: one PutObject streamed as bytes arrive, no buffers
        self._streamed = (
            self._announced_large
            and size_hint <= _MAX_PUT  # type: ignore[operator]
            and pipeline.streaming
        )
        self._stream: StreamedPut | None = None
        self._handed = 0  # bytes already handed to S3 (as parts, or to the stream)
        self.ent = ent
        self.path = path
        self.name = "/" + path  # pyftpdlib logs file_obj.name
        self.key = f"{ent.prefix}{uuid.uuid4().hex}"
        # on the object itself: the bucket alone can name it (gateway/names.py)
        self.meta = object_metadata(ent.drive_id, ent.device_id, path)
        self.closed = False
        self.committed = False
        self.size = 0
        self._chunks: list[bytes] = []  # small files: joined once at commit
        self._buffered = 0
        self._part: bytearray | None = None  # large files: the part being filled
        self._charged = 0  # budget bytes held for `_part` (parts in flight carry their own)
        self._large = False
        self._rid: str | None = None
        self._reserved = 0
        self._upload_id: str | None = None
        self._futures: list[Future[str]] = []
        self._slots = threading.BoundedSemaphore(pipeline.parts_in_flight)
        self._error: BaseException | None = None
        # for the lease keeper (gateway/leases.py): when the upload last took
        # or waited for data, and how many writes, S3 waits or commits are
        # under way (an upload doing one is not stalled)
        self._idle_since = time.monotonic()
        self._active = 0
        self._state = threading.Lock()
        #: called (on the keeper's thread) when the upload stalled: the
        #: frontend ends it on its own thread; without one the keeper aborts it
        self.on_stall: Callable[[UploadStalled], None] | None = None
        pipeline.leases.add(self)

    # --- quota ------------------------------------------------------------

    def _reserve(self, n: int) -> None:
        """Reserve `n` bytes; the same UPDATE re-checks the subscription (entitled())."""
        ent, ledger = self.ent, self.p.ledger
        if self._reserved + n > ent.capacity_bytes:
            raise QuotaExceeded(
                f"file is larger than the whole drive ({human(ent.capacity_bytes)})"
            )
        device = ent.device_id  # the subscription is re-checked by every reservation
        try:
            if self._rid is None:
                self._rid = ledger.open_reservation(ent.drive_id, self.key, n, device)
                if self._rid is not None:
                    self._reserved += n
                    return
                self._why_not()
                self._rid = ledger.open_reservation(ent.drive_id, self.key)
            elif ledger.try_reserve(self._rid, ent.drive_id, n, device):
                self._reserved += n
                return
            else:
                self._why_not()
            if ent.on_full != OnFull.rotate.value:
                raise QuotaExceeded(
                    f"drive is full ({human(ent.capacity_bytes)}); "
                    "delete recordings or upgrade the plan"
                )
            freed: list[str] = []
            try:
                while True:
                    victims = ledger.oldest(ent.drive_id)
                    if not victims:
                        raise QuotaExceeded("drive is full of uploads in progress; retry later")
                    for victim in victims:
                        if ledger.evict(ent.drive_id, victim):
                            freed.append(victim.key)
                            log.info(
                                "rotated out %s (%d bytes) of drive %s",
                                victim.path,
                                victim.size,
                                ent.drive_id,
                            )
                        if ledger.try_reserve(self._rid, ent.drive_id, n, device):  # type: ignore[arg-type]
                            self._reserved += n
                            return
            finally:
                self.p.delete_keys(freed)
        except SQLAlchemyError as exc:
            raise _db("reserving space") from exc
        except NotFound as exc:
            raise _lease_lost(exc) from exc

    def _why_not(self) -> None:
        """After a refused reservation: NotEntitled (with the reason) if that is why.

        Checked before rotating, so a blocked device never deletes recordings.
        """
        upload_entitlement(self.p.engine, self.ent.device_id)

    # --- streaming --------------------------------------------------------

    def write(self, data: bytes) -> int:
        """Buffer `data`; each full part goes to S3 while the next one fills.

        Small files (snapshots) stay a list of chunks joined once at commit.
        Past `_SMALL` bytes the upload switches to a part buffer that grows
        as bytes arrive and is handed to S3 as is. The budget is charged
        for the whole buffer up front (a part, or what ALLO says is left),
        but memory is taken only as data arrives: appending to a bytearray
        grows it with realloc (mremap above the 1 MiB mmap threshold), never
        zero-filling. A pre-sized buffer made a clip's whole ALLO size
        resident at its first byte, while a saturated recorder's clip takes
        seconds to arrive (BENCHMARKS.md, fleet).
        A file whose ALLO says it is large skips the chunk list: its session
        waits for budget at its first bytes, holding nothing uncharged,
        instead of at its first MiB (150 waiting clips held 150 MB).
        """
        with self._state:
            if self._error is not None:  # a failed part, or the keeper ended a stalled upload
                raise self._wrap(self._error)
            if self.closed:
                raise ValueError("write to a closed upload")
            self._active += 1
        try:
            self._take(data)
        finally:
            with self._state:
                self._active -= 1
                self._idle_since = time.monotonic()
        return len(data)

    def _take(self, data: bytes) -> None:
        n = len(data)
        self.size += n
        if self._streamed:
            self._feed(data)
        elif not self._large and self._buffered + n < _SMALL and not self._announced_large:
            self._chunks.append(bytes(data))
            self._buffered += n
        else:
            if not self._large:
                self._start_part()
            view = memoryview(data)
            size = self.p.part_size
            while view:
                if self._part is None:  # a new buffer only once the last part was handed off
                    self._charge(self._buffer_size())
                    self._part = bytearray()
                # no local name for the part: it would pin a sent part
                # through the next buffer's wait for budget (see _hand_off)
                # at most _GROW a step: a bytearray grows by an eighth past
                # what an append asks, and 256 KiB reads left 5 MiB parts
                # 12 % larger than the part (64 KiB steps: 4 %)
                take = min(len(view), size - len(self._part), _GROW)
                if len(self._part) + take > self._charged:  # more than ALLO said: up to a part
                    self._charge(size - self._charged)
                self._part += view[:take]
                view = view[take:]
                if len(self._part) == size:
                    self._hand_off()

    def write_waits(self, n: int) -> str | None:
        """Whether `write()` of `n` bytes would wait, for an event-loop frontend:
        None if it returns at once, "room" if it would wait for the stream's
        pipe (see `when_room`), "io" if it may wait on the database, S3 or
        the buffer budget (so it belongs on a worker thread).

        Only the common cases return None: a snapshot's chunk list, a part
        with room and budget for the bytes, a stream with room in its pipe.
        """
        if self.closed or self._error is not None:
            return None  # write() raises at once
        if self._streamed:
            if self._stream is None:
                return "io"  # the first bytes reserve the announced size
            return None if self._stream.has_room() else "room"
        if not self._large:
            if self._buffered + n < _SMALL and not self._announced_large:
                return None
            return "io"  # the first part buffer is charged to the budget
        part = self._part
        if part is None or len(part) + n >= self.p.part_size or len(part) + n > self._charged:
            return "io"  # a new buffer, a part handed off, or more budget
        return None

    def when_room(self, callback: Callable[[], None]) -> None:
        """Call `callback` (perhaps on another thread) once the stream's pipe has room.

        Waiting for S3 to take the pipe is not a stalled recorder: the keeper
        counts the wait as activity."""
        if self._stream is None:
            callback()
            return
        with self._state:
            self._active += 1

        def room() -> None:
            with self._state:
                self._active -= 1
                self._idle_since = time.monotonic()
            callback()

        self._stream.when_room(room)

    def _feed(self, data: bytes) -> None:
        """Pass bytes on to the streamed PutObject, reserving the announced size
        at the first ones. Bytes past the announced size are counted but not
        sent (the object is exactly what was announced); the size check at
        commit then refuses the file."""
        if self._stream is None:
            self._reserve(self._hint)  # type: ignore[arg-type]
            self._stream = StreamedPut(
                self.p.store,
                self.key,
                self._hint,  # type: ignore[arg-type]
                self.p.stream_stall,
                meta=self.meta,
            )
        room = self._hint - self._handed  # type: ignore[operator]
        if room > 0:
            chunk = bytes(data) if len(data) <= room else bytes(data[:room])
            self._stream.feed(chunk)
            self._handed += len(chunk)

    def _hand_off(self) -> None:
        """Send the full part, its budget bytes with it.

        Only the S3 call may reference the part afterwards: the next buffer
        can wait for budget, and a reference left in write()'s frame kept
        the sent part alive through that wait, after S3 had acknowledged it
        and its bytes had gone back to the budget: memory the budget did not
        see (BENCHMARKS.md, fleet).
        """
        part, self._part = self._part, None
        charge, self._charged = self._charged, 0
        self._handed += len(part)  # type: ignore[arg-type]
        self._send_part(part, charge)  # type: ignore[arg-type]

    def _buffer_size(self) -> int:
        """A whole part, or what ALLO says is left when that is less."""
        size = self.p.part_size
        if self._hint is None:
            return size
        return max(1, min(size, self._hint - self._handed))

    def _charge(self, n: int) -> None:
        self.p.budget.take(n)  # may wait: see gateway/memory.py
        self._charged += n

    def _release(self) -> None:
        charged, self._charged = self._charged, 0
        self.p.budget.give(charged)

    def _start_part(self) -> None:
        """The first part buffer, charged whole at once (a session never
        waits for budget while holding some: four growing uploads could
        otherwise each hold a share and wait for the rest)."""
        self._charge(max(self._buffer_size(), self._buffered))
        self._part = bytearray().join(self._chunks)
        self._large = True
        self._chunks, self._buffered = [], 0

    def _take_rest(self) -> bytearray:
        """Whatever is buffered and not yet sent, ending the buffering."""
        if self._large:
            part, self._part = self._part, None
            return part if part is not None else bytearray()
        # a bytearray, not bytes: see S3DriveStore.put
        body = bytearray().join(self._chunks)
        self._chunks, self._buffered = [], 0
        return body

    def _send_part(self, part: bytes | bytearray, charge: int = 0) -> None:
        """`charge`: budget bytes that go with the part and come back when it is
        sent, or at once if it never leaves (refused reservation, S3 error)."""
        try:
            self._reserve(len(part))
            if self._upload_id is None:
                self._upload_id = self.p.store.create_multipart(self.key, self.meta)
                try:
                    self.p.ledger.set_upload_id(self._rid, self._upload_id)  # type: ignore[arg-type]
                except SQLAlchemyError as exc:
                    raise _db("recording the multipart upload") from exc
            self._slots.acquire()  # back-pressure: wait while too many parts are pending
            if self._error is not None:
                self._slots.release()
                raise self._wrap(self._error)
        except BaseException:
            self.p.budget.give(charge)
            raise
        number = len(self._futures) + 1
        future = self.p.executor.submit(
            self.p.store.upload_part, self.key, self._upload_id, number, part
        )
        future.add_done_callback(lambda f: self._part_done(f, charge))
        self._futures.append(future)

    def _part_done(self, future: Future[str], charge: int) -> None:
        exc = None if future.cancelled() else future.exception()
        if (exc is not None or future.cancelled()) and self._error is None:
            self._error = exc or UploadAborted("part cancelled")
        self.p.budget.give(charge)
        self._slots.release()

    @staticmethod
    def _wrap(exc: BaseException) -> Cam2DriveError:
        if isinstance(exc, Cam2DriveError):
            return exc
        return StorageUnavailable(f"storage failed: {exc}")

    # --- outcome ----------------------------------------------------------

    def commit(self) -> None:
        """Make the file durable and visible; raises (after aborting) on any failure."""
        if self.closed:
            raise ValueError("upload already closed")
        started = time.perf_counter()
        with self._state:
            self._active += 1  # a commit under way is not a stall
        try:
            if isinstance(self._error, UploadStalled):  # the keeper ended it (a failed part:
                raise self._error  # _send_part says so, after the lease check)
            if self._streamed:
                if self.size != self._hint:
                    raise UploadAborted(
                        f"received {self.size} of the {self._hint} bytes announced; file not stored"
                    )
                self._stream.finish()  # type: ignore[union-attr]
                self._record()
            elif self._intents is not None and not self._large:
                self._put_then_commit()
            else:
                self._send_rest()
                self._record()
        except BaseException as exc:
            metrics.upload_failed(self.protocol, exc)
            self.abort()
            if isinstance(exc, NotFound):
                raise _lease_lost(exc) from exc
            if isinstance(exc, Cam2DriveError):
                raise
            if isinstance(exc, SQLAlchemyError):
                raise _db("committing the upload") from exc
            raise self._wrap(exc) from exc
        self._release()
        self.closed = self.committed = True
        self.p.leases.discard(self)
        metrics.upload_committed(self.protocol, self.size, time.perf_counter() - started)

    def _send_rest(self) -> None:
        """A buffered upload's end: one PutObject, or the last part and completion."""
        body = self._take_rest()
        if self._upload_id is None:
            self._reserve(len(body))
            self.p.store.put(self.key, body, self.meta)
            return
        if body:
            self._send_part(body)
        etags = [f.result() for f in self._futures]
        self.p.store.complete_multipart(self.key, self._upload_id, etags)
        self._upload_id = None  # completed: nothing left to abort

    def _put_then_commit(self) -> None:
        """A small file on PostgreSQL: its PutObject under one of the session's
        intents, then one statement that charges and indexes it (see
        SessionIntents). A refusal there (full drive, blocked device, missing
        parent folder) falls back on the two steps, which rotate, make
        parents and name the error; the object goes if the file is not kept."""
        ledger, ent = self.p.ledger, self.ent
        body = self._take_rest()
        try:
            intent = self._intents.take()  # type: ignore[union-attr]
            if intent is None:
                intent = ledger.open_intent(ent.drive_id, self.key)
        except SQLAlchemyError as exc:
            raise _db("reserving space") from exc
        self.key, self._rid = intent.key, intent.rid  # an abort releases the intent
        self.p.store.put(self.key, body, self.meta)
        try:
            done = ledger.commit_after_put(
                intent,
                ent.drive_id,
                ent.device_id,
                self.path,
                self.size,
                f"{ent.prefix}{uuid.uuid4().hex}",
            )
            if done.lost:
                raise StorageUnavailable("the upload outlived its reservation; retry later")
            if not done.committed:
                self._reserve(self.size)
                self._record()
                return
        except BaseException:
            self.p.delete_keys([self.key])
            raise
        self._rid = None
        self._intents.give(done.next)  # type: ignore[union-attr, arg-type]
        if done.old_key:
            self.p.delete_keys([done.old_key])

    def _record(self) -> None:
        """Index the object; if that fails, S3 must not keep a copy nobody can see."""
        try:
            if self._rid is None:  # empty file with nothing reserved yet
                self._rid = self.p.ledger.open_reservation(self.ent.drive_id, self.key)
            assert self._rid is not None  # 0 bytes always fit
            old_key = self.p.ledger.commit(
                self._rid, self.ent.drive_id, self.path, self.key, self.size
            )
        except BaseException:
            self.p.delete_keys([self.key])
            raise
        self._rid = None
        if old_key:
            self.p.delete_keys([old_key])

    def abort(self) -> None:
        """Undo everything; safe to call more than once and from any failure state."""
        if self.committed:
            return
        self.closed = True
        self.p.leases.discard(self)
        self._chunks, self._buffered, self._part = [], 0, None
        self._release()
        if self._stream is not None:
            stream, self._stream = self._stream, None
            if stream.cancel():  # it had landed: the index never will know it
                self.p.delete_keys([self.key])
        for future in self._futures:
            future.cancel()
        for future in self._futures:
            try:
                future.exception()  # wait: no part may land after the abort
            except BaseException:
                pass
        if self._upload_id is not None:
            try:
                self.p.store.abort_multipart(self.key, self._upload_id)
            except Cam2DriveError as exc:
                log.warning("abort of multipart %s failed (janitor will retry): %s", self.key, exc)
                return  # keep the reservation row: the janitor needs its upload id
            self._upload_id = None
        if self._rid is not None:
            try:
                self.p.ledger.release(self._rid)
            except (SQLAlchemyError, NotFound) as exc:
                log.warning(
                    "release of reservation %s failed (lease will expire): %s", self._rid, exc
                )
            self._rid = None

    def close(self) -> None:
        """pyftpdlib closes file objects on every path: closing uncommitted aborts."""
        if not self.closed:
            metrics.upload_failed(self.protocol, None)
            self.abort()

    # --- the lease keeper's side (gateway/leases.py) -------------------------

    def lease_id(self) -> str | None:
        """The reservation whose lease the keeper renews; None once failed
        (its frontend is about to abort it; if it never does, the janitor may)."""
        return self._rid if self._error is None else None

    def stall_if_idle(self, limit: float, now: float) -> bool:
        """End the upload if it took no data for `limit` seconds while nothing
        of its own was under way; True if it did. The error is set under the
        lock a write takes first, so a write that comes later fails with it;
        the frontend's `on_stall` then aborts the upload on its own thread."""
        with self._state:
            if (
                self.closed
                or self._active
                or self._error is not None
                or now - self._idle_since < limit
            ):
                return False
            err = UploadStalled(
                f"no data from the client for {limit:.0f} s; file not stored, send it again"
            )
            self._error = err
        log.info("upload of %s stalled: no data for %.0f s", self.name, limit)
        if self.on_stall is not None:
            self.on_stall(err)
        else:
            self.abort()
        return True


class HeldBytes:
    """What one SFTP session may hold out of order, over all its open files.

    Each file may hold up to its window past a hole; without a bound per
    session and per process, a client opening many files and writing past
    a hole in each grew a gateway by hundreds of megabytes. Bytes held are
    charged to the process's upload buffer budget, up to `node_limit` of it.
    """

    def __init__(self, budget: BufferBudget, session_limit: int, node_limit: int) -> None:
        self.budget = budget
        self.session_limit = session_limit
        self.node_limit = node_limit
        self.held = 0

    def take(self, n: int) -> None:
        if self.held + n > self.session_limit:
            raise UploadAborted(
                f"more than {human(self.session_limit)} written past holes in this session's "
                "files: not stored; write each file in order"
            )
        if not self.budget.hold(n, self.node_limit):
            raise UploadAborted(
                "the gateway holds all the out-of-order data it may: not stored; "
                "write each file in order, or retry later"
            )
        self.held += n

    def give(self, n: int) -> None:
        self.held -= n
        self.budget.unhold(n)


class OrderedWrites:
    """Turns writes at offsets (SFTP) into the in-order stream an Upload takes.

    SFTP clients pipeline many writes and may send them out of order; those
    ahead of the next expected offset wait here, up to `window` bytes, and
    charged to `account` (per session and per process). A write that
    rewrites bytes already passed on, or that would leave a hole wider than
    the window, is refused: S3 objects are written once, front to back, and
    a file with a hole must never be committed. `discard()` gives what is
    held back when the file ends any other way.
    """

    def __init__(self, window: int, account: HeldBytes | None = None) -> None:
        self.window = window
        self.account = account
        self.next = 0
        self.pending: dict[int, bytes] = {}
        self.pending_bytes = 0

    def _charge(self, n: int) -> None:
        if self.account is not None:
            self.account.take(n)
        self.pending_bytes += n

    def _release(self, n: int) -> None:
        if self.account is not None:
            self.account.give(n)
        self.pending_bytes -= n

    def discard(self) -> None:
        """Drop what is held past a hole (the upload is being aborted)."""
        self.pending.clear()
        self._release(self.pending_bytes)

    def accept(self, offset: int, data: bytes) -> list[bytes]:
        """The chunks that are now contiguous, in order (possibly none)."""
        if offset < self.next:
            raise NotSupported(
                f"write at offset {offset} rewrites data already stored "
                f"(next expected offset {self.next})"
            )
        if offset > self.next:
            if offset + len(data) - self.next > self.window:
                raise NotSupported(
                    f"write at offset {offset} is more than {self.window} bytes "
                    f"ahead of offset {self.next}: a hole the gateway cannot fill"
                )
            if offset in self.pending:
                self._release(len(self.pending.pop(offset)))
            self._charge(len(data))
            self.pending[offset] = bytes(data)
            return []
        ready = [bytes(data)]
        self.next += len(data)
        while self.next in self.pending:
            chunk = self.pending.pop(self.next)
            self._release(len(chunk))
            ready.append(chunk)
            self.next += len(chunk)
        return ready

    def finish(self) -> Cam2DriveError | None:
        """None if the file is whole, else the error to fail its close with."""
        if self.pending:
            return UploadAborted(
                f"file has a hole at offset {self.next}: not stored, upload it again"
            )
        return None
