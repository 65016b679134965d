"""The scheduler process: periodic billing passes and the gateway's janitor.

Several schedulers may run (one per host, for availability) but only one
acts at a time: the leader holds a PostgreSQL session advisory lock on a
connection it keeps open (the lock dies with the process or its
connection), or on SQLite an exclusive `flock` on a file beside the
database. Followers check again at every tick and take over when the
leader is gone.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection

log = logging.getLogger("cam2drive.scheduler")
LOCK_KEY = 0x63326472  # "c2dr": the advisory lock id every cam2drive scheduler uses


class LeaderLock:
    """Who may act. `held()` tries to (re)acquire and tells; never blocks."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Connection | None = None
        self._fd: int | None = None

    def held(self) -> bool:
        if self.engine.dialect.name == "postgresql":
            return self._pg()
        return self._file()

    def _pg(self) -> bool:
        if self._conn is not None:
            try:  # still ours if the connection is alive
                self._conn.execute(text("SELECT 1"))
                return True
            except Exception:
                self._conn = None
        conn = self.engine.connect()
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar()
        conn.commit()
        if got:
            self._conn = conn
            return True
        conn.close()
        return False

    def _file(self) -> bool:
        if self._fd is not None:
            return True
        path = Path(f"{self.engine.url.database or 'cam2drive'}.scheduler.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
                self._conn.commit()
            finally:
                self._conn.close()
                self._conn = None
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def leader_only(lock: LeaderLock, name: str, job: Callable[[], object]) -> Callable[[], None]:
    """Wrap a job so that only the leader runs it, and a failure never kills the scheduler."""

    def run() -> None:
        if not lock.held():
            log.debug("%s: another scheduler is the leader", name)
            return
        try:
            result = job()
            log.info("%s done: %s", name, result)
        except Exception:
            log.exception("%s failed; the next run retries", name)

    return run


def run_scheduler(lock: LeaderLock, jobs: list[tuple[str, Callable[[], object], int]]) -> None:
    """Run `(name, job, every_seconds)` jobs until interrupted."""
    scheduler = BlockingScheduler(timezone="UTC")
    for name, job, seconds in jobs:
        scheduler.add_job(
            leader_only(lock, name, job),
            "interval",
            seconds=seconds,
            id=name,
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
        )
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        lock.release()
