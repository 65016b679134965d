"""Engines and sessions for SQLite (one node) and PostgreSQL (many nodes)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session

from billing.core.errors import StorageUnavailable
from billing.core.settings import Settings


def normalise_url(url: str) -> str:
    """Accept `postgresql://` and `postgres://` and use psycopg 3 for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def make_engine(
    url: str,
    *,
    pool_size: int = Settings.model_fields["database_pool_size"].default,
) -> Engine:
    """Create an engine tuned for short, concurrent write transactions.

    SQLite: WAL so readers never block the writer, a busy timeout so several
    gateway threads and processes queue instead of failing, and
    `BEGIN IMMEDIATE` so a transaction takes the write lock up front (a
    deferred transaction that reads and then writes can fail with "database is
    locked" without waiting). PostgreSQL: row locks taken by the atomic
    UPDATEs in gateway/index.py keep counters exact across nodes.
    """
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 60},
            pool_size=pool_size,
            max_overflow=0,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        # One writer at a time in this process, queued on a lock: SQLite's own
        # busy handler waits by sleeping in growing steps, which under many
        # gateway threads costs far more than the transactions themselves.
        write_lock = threading.Lock()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            if conn.get_execution_options().get("readonly", False):
                conn.exec_driver_sql("BEGIN")
                return
            write_lock.acquire()
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                write_lock.release()
                raise
            conn.info["c2d_write_lock"] = True

        def _release(conn: Connection) -> None:
            if conn.info.pop("c2d_write_lock", False):
                write_lock.release()

        event.listen(engine, "commit", _release)
        event.listen(engine, "rollback", _release)
        return engine
    # No pool_pre_ping: it costs a round trip per checkout, i.e. per
    # transaction (~10 % of a loaded gateway's database time). After a server
    # restart the first statement on a stale connection fails instead (one
    # transient 451 / SFTP failure), and SQLAlchemy then drops the whole pool.
    # A fixed pool, no overflow: with 150 recorder sessions in one process,
    # overflow connections were opened and closed around single transactions.
    return create_engine(url, pool_size=pool_size, max_overflow=0)


def reader(engine: Engine) -> Engine:
    """The same engine for single-statement reads (listings, stats, logins,
    entitlement checks). SQLite: a plain BEGIN, so readers never queue behind
    writers. PostgreSQL: autocommit, so a read is one round trip, not
    BEGIN + SELECT + ROLLBACK. Made once per engine: an HTTP GET calls this
    on every request."""
    made = engine.__dict__.get(_READER)  # kept on the engine: it dies with it
    if made is None:
        if engine.dialect.name == "postgresql":
            made = engine.execution_options(readonly=True, isolation_level="AUTOCOMMIT")
        else:
            made = engine.execution_options(readonly=True)
        engine.__dict__[_READER] = made
    assert isinstance(made, Engine)
    return made


_READER = "_c2d_reader"


@contextmanager
def database_errors() -> Iterator[None]:
    """A database failure seen by a client is transient: StorageUnavailable (FTP 451)."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise StorageUnavailable("database unavailable; retry later") from exc


def add_once(session: Session, row: object) -> bool:
    """Insert `row` in a savepoint; False if a unique key of it is already taken (a
    concurrent writer got there first), leaving the session's transaction usable."""
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return False
    return True


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
