"""Downloads for the FTP event loop: S3 is read by a thread, ahead of the client.

pyftpdlib pulls a download's bytes from its producer on the loop's thread,
whenever the data socket can take more. Read straight from S3 there, every
chunk would stall every session for an S3 round trip; here a thread of the
download's own keeps a few chunks ready, and the loop waits only when S3 is
slower than the viewer's connection.
"""

from __future__ import annotations

import os
import queue
import threading

from gateway.drive import Download

CHUNK = 256 * 1024
DEPTH = 4  # chunks read ahead: 1 MiB per download in flight


class ReadAhead:
    """A pyftpdlib producer (and the data channel's file object) over a Download."""

    def __init__(self, download: Download, ascii_mode: bool = False) -> None:
        self.download = download
        self.name = download.name
        self.closed = False
        self._ascii = ascii_mode and os.linesep != "\r\n"
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(DEPTH)
        self._stop = threading.Event()
        threading.Thread(target=self._run, name="ftp-read", daemon=True).start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                data = self.download.read(CHUNK)
                self._put(data)
                if not data:
                    return
        except BaseException as exc:  # noqa: BLE001  (raised to the data channel)
            self._put(exc)

    def _put(self, item: bytes | BaseException) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=1)
                return
            except queue.Full:
                continue

    def more(self) -> bytes:
        """The next chunk; b"" at the end. Raises what reading S3 raised."""
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        if self._ascii and item:
            item = item.replace(b"\n", b"\r\n")
        return item

    def close(self) -> None:
        """Stop reading ahead; the thread ends at its next chunk."""
        if not self.closed:
            self.closed = True
            self._stop.set()
            self.download.close()
