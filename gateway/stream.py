"""A PutObject whose body is sent while it arrives: uploads of announced size.

A recorder announces each clip's size with ALLO before sending it. With the
size known, the object can be one PutObject with that Content-Length whose
body is read from the recorder's data connection as it arrives: no part
buffers (a few network chunks per upload instead of up to a part), no
multipart calls, and the object is in S3 when its last byte is. Buffered
multipart uploads (gateway/ingest.py) remain for uploads of unknown size
(SFTP, FTP without ALLO).

The session `feed()`s chunks into a short pipe; the PUT runs on a daemon
thread of its own and `read()`s them (a thread per upload in flight). A full
pipe stops the session reading its socket: TCP slows the recorder, as the
buffer budget does for buffered uploads. A threaded frontend simply waits in
`feed()`; the FTP event loop asks `when_room()` to be called back instead,
so no thread waits for a recorder's next bytes. S3 stores the object only if it receives exactly
Content-Length bytes, so an upload that ends any other way is cancelled by
making the body's next read fail: the request breaks and nothing is stored.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future

from billing.core.errors import StorageUnavailable, UploadAborted

# Bytes a pipe holds before the session stops reading: an upload in flight
# holds at most this plus one network read (FTP reads up to 256 KiB at a time)
# here, besides socket buffers.
PIPE_BYTES = 256 * 1024


class StreamedPut:
    """One streamed PutObject: the session feeds it, a worker thread sends it."""

    def __init__(
        self,
        store: object,
        key: str,
        length: int,
        stall: float,
        limit: int = PIPE_BYTES,
        meta: dict[str, str] | None = None,
    ) -> None:
        """`stall`: seconds the request may wait for the recorder's next bytes
        before it is broken (an upload whose session vanished without an
        abort must not hold its thread and S3 connection for ever). `meta`:
        the object's naming (gateway/names.py)."""
        self._meta = meta
        self.length = length
        self._stall = stall
        self._limit = limit
        self._queued = 0  # bytes in the pipe
        self._chunks: deque[bytes] = deque()
        self._left = length  # bytes the request body has still to read
        self._cond = threading.Condition()
        self._cancelled: BaseException | None = None
        self._future: Future[None] = Future()
        self._on_room: Callable[[], None] | None = None
        threading.Thread(target=self._run, args=(store, key), name="s3-stream", daemon=True).start()

    def _run(self, store: object, key: str) -> None:
        self._future.set_running_or_notify_cancel()
        try:
            store.put_stream(key, self, self.length, self._meta)  # type: ignore[attr-defined]
        except BaseException as exc:  # noqa: BLE001  (handed to the session)
            self._future.set_exception(exc)
        else:
            self._future.set_result(None)
        finally:
            with self._cond:  # a session waiting in feed() learns the PUT ended
                self._cond.notify_all()
            self._call_on_room()

    # --- the session's side -------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Queue `data` (kept, not copied); waits while the pipe is full.

        Raises StorageUnavailable if the PUT ended before taking it (S3 failed).
        """
        with self._cond:
            while self._queued >= self._limit and not self._future.done():
                self._cond.wait()
            if not self._future.done():
                self._chunks.append(data)
                self._queued += len(data)
                self._cond.notify_all()
                return
        self.finish()  # raises the PUT's error
        raise StorageUnavailable("storage ended the upload early")

    def has_room(self) -> bool:
        """True if `feed()` would not wait (the pipe has room, or the PUT ended)."""
        return self._queued < self._limit or self._future.done()

    def when_room(self, callback: Callable[[], None]) -> None:
        """Call `callback` once `feed()` would not wait: at once if it would
        not now, else from the PUT's thread when it takes the pipe's chunks
        or ends. One callback at a time (a session feeds one chunk at a time)."""
        with self._cond:
            if not self.has_room():
                self._on_room = callback
                return
        callback()

    def _call_on_room(self) -> None:
        with self._cond:
            callback, self._on_room = self._on_room, None
        if callback is not None:
            callback()

    def finish(self) -> None:
        """Wait for S3's answer once every byte was fed; raise what it said."""
        try:
            self._future.result()
        except StorageUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001  (boto3 and network errors)
            raise StorageUnavailable(f"storage failed: {exc}") from exc

    def cancel(self) -> bool:
        """Break the request so S3 keeps nothing; True if it had already landed.

        Waits for the PUT thread: after this returns nothing can land.
        """
        with self._cond:
            self._cancelled = UploadAborted("upload cancelled")
            self._cond.notify_all()
        try:
            self._future.result()
        except BaseException:  # noqa: BLE001  (the broken request: what cancel wants)
            return False
        return True

    # --- the request body (read by the PUT's thread) ------------------------

    def read(self, n: int = -1) -> bytes:
        """Every chunk queued, whole; b"" only after all `length` bytes.

        Whole, whatever `n` asks: urllib3 reads a body 16 KiB at a time and
        sends each read, and every send is a trip through the GIL for this
        thread. Under a saturating load that trip waits up to the switch
        interval, which made a clip's end of data to its 226 slower than
        through multipart parts (sent whole). urllib3 and http.client send
        whatever a read returns.
        """
        with self._cond:
            while not self._chunks and self._left and self._cancelled is None:
                if not self._cond.wait(self._stall):
                    self._cancelled = UploadAborted(
                        f"no data from the recorder for {self._stall:.0f} s"
                    )
            if not self._left:  # every byte sent: S3 stores the object whatever
                return b""  # we do now, so let the PUT end and cancel() see it
            if self._cancelled is not None:
                raise self._cancelled
            if len(self._chunks) == 1:
                chunk = self._chunks.popleft()
            else:  # behind the recorder: one send for all it has queued
                chunk = b"".join(self._chunks)
                self._chunks.clear()
            self._queued = 0
            self._cond.notify_all()
        self._left -= len(chunk)
        self._call_on_room()
        return chunk
