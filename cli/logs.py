"""Process logging: records are queued and written by one listener thread.

A gateway runs dozens of threads (the FTP loop, its pool, SFTP's workers,
S3 uploads). With a plain StreamHandler every thread that logs holds the
handler's lock while it writes to stderr; when the FTP server still ran a
thread per session, under 150 sessions that lock became a convoy (a quarter
of the FTP gateway's sampled time in `bench/fleet.py`). Queuing a record
takes microseconds.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
from logging.handlers import QueueHandler, QueueListener

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_listener: QueueListener | None = None


class _Formatter(logging.Formatter):
    """FORMAT, except that a record marked `json_line` (a transfer logged as
    JSON, gateway/transferlog.py) is written alone: one object per line."""

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "json_line", False):
            return record.getMessage()
        return super().format(record)


def setup_logging(verbose: bool = False) -> None:
    """Root logger -> queue -> one thread writing to stderr; idempotent."""
    global _listener
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("botocore").setLevel(logging.WARNING)
    for noisy in ("weasyprint", "fontTools"):  # PDF rendering chatter, not operator news
        logging.getLogger(noisy).setLevel(logging.ERROR)
    # the dev stack's mail sink logs every SMTP handshake; alembic every plugin it loads
    for chatty in ("mail.log", "alembic.runtime.plugins"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    if _listener is not None or root.handlers:  # as basicConfig: an embedder's handlers win
        return
    stream = logging.StreamHandler()
    stream.setFormatter(_Formatter(FORMAT))
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    root.addHandler(QueueHandler(records))
    _listener = QueueListener(records, stream, respect_handler_level=True)
    _listener.start()
    atexit.register(stop_logging)


def stop_logging() -> None:
    """Write what is queued and stop the writer (at exit, also `os._exit` paths)."""
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None


def _restart_in_child() -> None:
    # A forked gateway worker inherits the queue but not the thread that
    # empties it: give the child its own queue and writer.
    global _listener
    if _listener is None:
        return
    _listener = None
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, QueueHandler)]:
        root.removeHandler(handler)
    setup_logging(root.level == logging.DEBUG)


os.register_at_fork(after_in_child=_restart_in_child)
