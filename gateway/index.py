"""Exact drive accounting: reservations, commits, rotation, releases.

Every change to a drive's counters is one conditional UPDATE inside a short
transaction, e.g. `reserved += n WHERE committed + reserved + n <= capacity`;
on PostgreSQL a recorder's usual operations are each a single statement,
i.e. a transaction of their own, with their index changes in CTEs.
On PostgreSQL the row lock that UPDATE takes serialises concurrent gateways on
the same drive, and the WHERE clause is re-checked against the latest row, so
no interleaving of nodes can overshoot; on SQLite `BEGIN IMMEDIATE` does the
same within one host. The index rows and the counters always change in the
same transaction, so `committed_bytes` equals the sum of the index.
"""

from __future__ import annotations

import posixpath
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Engine,
    Insert,
    Row,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.dml import ReturningInsert

from billing.core.db import reader
from billing.core.errors import (
    AlreadyExists,
    DirectoryNotEmpty,
    IsADirectory,
    NotADirectory,
    NotFound,
)
from billing.core.models import Drive, DriveEntry, Recording, Reservation, utcnow
from billing.entitlement import entitled
from gateway.recordings import parse

drives = Drive.__table__  # type: ignore[attr-defined]
entries = DriveEntry.__table__  # type: ignore[attr-defined]
reservations = Reservation.__table__  # type: ignore[attr-defined]
recordings = Recording.__table__  # type: ignore[attr-defined]

# The per-file statements, built once. Building a Core statement costs more
# than executing it on SQLite (0.2 ms vs 1.0 ms for a commit, measured), and
# every snapshot runs these, so they take bound parameters instead.
_N = bindparam("q_n", type_=BigInteger)
_RESERVE = (
    update(drives)
    .where(
        drives.c.id == bindparam("q_drive"),
        drives.c.committed_bytes + drives.c.reserved_bytes + _N <= drives.c.capacity_bytes,
    )
    .values(reserved_bytes=drives.c.reserved_bytes + _N)
)
_RESERVE_ENTITLED = _RESERVE.where(entitled(bindparam("q_device")))
_NEW_RES = insert(reservations)
_GROW_RES = (
    update(reservations)
    .where(reservations.c.id == bindparam("q_rid"))
    .values(
        bytes=reservations.c.bytes + _N,
        lease_expires_at=bindparam("q_lease", type_=reservations.c.lease_expires_at.type),
    )
)
_TAKE_RES = (
    delete(reservations)
    .where(reservations.c.id == bindparam("q_rid"))
    .returning(reservations.c.bytes)
)
_AT_PATH = (entries.c.drive_id == bindparam("q_drive"), entries.c.path == bindparam("q_path"))
_IS_DIR = select(entries.c.is_dir).where(*_AT_PATH)
_DROP_FILE = (
    delete(entries)
    .where(*_AT_PATH, entries.c.is_dir.is_(False))
    .returning(entries.c.size, entries.c.key)
)
_NEW_ENTRY = insert(entries)
# a Dahua recording's row (gateway/recordings.py), only for names that parse
_NEW_RECORDING = insert(recordings)
_DROP_RECORDINGS = delete(recordings).where(
    recordings.c.entry_id.in_(bindparam("q_ids", expanding=True))
)
_COMMIT_DRIVE = (
    update(drives)
    .where(drives.c.id == bindparam("q_drive"))
    .values(
        reserved_bytes=drives.c.reserved_bytes - bindparam("q_res", type_=BigInteger),
        committed_bytes=drives.c.committed_bytes + bindparam("q_delta", type_=BigInteger),
        object_count=drives.c.object_count + bindparam("q_count", type_=BigInteger),
        last_upload_at=bindparam("q_now", type_=drives.c.last_upload_at.type),
    )
)


@dataclass(frozen=True)
class Victim:
    """A committed object chosen for rotation."""

    entry_id: int
    path: str
    key: str
    size: int


class _Expired(Exception):
    pass


# PostgreSQL: reserving a small file's bytes and opening its reservation is
# one statement (a data-modifying CTE), run outside a transaction block: one
# round trip instead of BEGIN, UPDATE, INSERT, COMMIT. Under load every round
# trip waits for the GIL again (BENCHMARKS.md, fleet), so this takes three
# such waits off every snapshot. SQLite, with
# no DML in CTEs and no network, keeps the two statements.
_RES_COLS = ["id", "drive_id", "bytes", "key", "node", "lease_expires_at", "created_at"]
_TS = reservations.c.created_at.type


def _open_reserved(reserve: Any) -> Any:
    ok = reserve.returning(drives.c.id).cte("ok")
    return (
        insert(reservations)
        .from_select(
            _RES_COLS,
            select(
                bindparam("r_id", type_=reservations.c.id.type),
                ok.c.id,
                _N,
                bindparam("r_key", type_=reservations.c.key.type),
                bindparam("r_node", type_=reservations.c.node.type),
                bindparam("r_lease", type_=_TS),
                bindparam("r_now", type_=_TS),
            ),
        )
        .returning(reservations.c.id)
    )


_OPEN_RESERVED = {False: _open_reserved(_RESERVE), True: _open_reserved(_RESERVE_ENTITLED)}

# PostgreSQL: a commit's reservation, the file it replaces and the drive's
# counters change in one statement. `o` deletes the old file only when `r`
# found the reservation (a referenced CTE runs first); the UPDATE joins `r`,
# so an expired reservation changes nothing and returns no row.
_r = _TAKE_RES.returning(reservations.c.drive_id).cte("r")
_o = _DROP_FILE.where(select(_r.c.bytes).exists()).cte("o")
_SETTLE = (
    update(drives)
    .where(drives.c.id == bindparam("q_drive"), drives.c.id == _r.c.drive_id)
    .values(
        reserved_bytes=drives.c.reserved_bytes - _r.c.bytes,
        committed_bytes=drives.c.committed_bytes
        + bindparam("q_size", type_=BigInteger)
        - func.coalesce(select(_o.c.size).scalar_subquery(), 0),
        object_count=drives.c.object_count + case((select(_o.c.size).exists(), 0), else_=1),
        last_upload_at=bindparam("q_now", type_=drives.c.last_upload_at.type),
    )
    .returning(_r.c.bytes, select(_o.c.key).scalar_subquery().label("old_key"))
)
# The new file's row, in the commit's transaction, when its parent is a
# directory (a recorder made it with MKD: the usual case); otherwise nothing
# is inserted and the commit falls back to mkdir -p and a plain insert.
# Both databases: one statement instead of a look at the parent and an insert.
_e = entries.alias("e")
_NEW_ENTRY_UNDER = (
    insert(entries)
    .from_select(
        ["drive_id", "path", "parent", "name", "is_dir", "size", "key", "committed_at"],
        select(
            bindparam("q_drive", type_=entries.c.drive_id.type),
            bindparam("q_path", type_=entries.c.path.type),
            bindparam("q_parent", type_=entries.c.parent.type),
            bindparam("q_name", type_=entries.c.name.type),
            literal(False, entries.c.is_dir.type),
            bindparam("q_size", type_=BigInteger),
            bindparam("q_key", type_=entries.c.key.type),
            bindparam("q_now", type_=entries.c.committed_at.type),
        ).where(
            select(_e.c.id)
            .where(
                _e.c.drive_id == bindparam("q_drive"),
                _e.c.path == bindparam("q_parent"),
                _e.c.is_dir.is_(True),
            )
            .exists()
        ),
    )
    .returning(entries.c.id)
)

_DIR_ROW = {
    "drive_id": bindparam("q_drive"),
    "path": bindparam("q_path"),
    "parent": bindparam("q_parent"),
    "name": bindparam("q_name"),
    "is_dir": True,
    "size": 0,
    "key": None,
    "committed_at": bindparam("q_now", type_=entries.c.committed_at.type),
}


def _dialect_insert(dialect: str) -> ReturningInsert[Any]:
    # each dialect's insert is a class of its own, with the same on_conflict_do_nothing
    stmt: Insert
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = (
            pg_insert(entries)
            .values(**_DIR_ROW)
            .on_conflict_do_nothing(index_elements=["drive_id", "path"])
        )
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = (
            sqlite_insert(entries)
            .values(**_DIR_ROW)
            .on_conflict_do_nothing(index_elements=["drive_id", "path"])
        )
    return stmt.returning(entries.c.id)


# INSERT ... ON CONFLICT (drive_id, path) DO NOTHING, one per dialect, built once
_NEW_DIR = {name: _dialect_insert(name) for name in ("postgresql", "sqlite")}

# PostgreSQL: the usual commit, MKD and rename, each one statement run outside
# a transaction block. Each was a transaction (BEGIN, 1-4 statements, COMMIT:
# three to six round trips), and under load every round trip holds a pooled
# connection while its thread waits for the GIL again, and the pool became
# the tail of a snapshot's commit (BENCHMARKS.md, fleet). `p` says whether the
# parent is a directory (or the root); when it is not, the statement changes
# nothing and the caller takes the transactional path.
_PARENT_OK = """p AS (SELECT CAST(:q_parent AS varchar) = '' OR EXISTS (
        SELECT 1 FROM drive_entries
        WHERE drive_id = :q_drive AND path = :q_parent AND is_dir) AS ok)"""

# A commit once `r` holds the reservation it settles (both one-statement
# commits below): `o` drops the file the commit replaces before `n` inserts
# its successor under the same unique path: `n` reads `o`, so `o` runs
# first, and a row deleted by the same statement no longer counts for the
# unique index. A directory at the path is not dropped, so `n` fails on the
# unique index and the statement, being one, changes nothing
# (IsADirectory). `u` moves the drive's counters.
_SETTLE_CTES = """o AS (DELETE FROM drive_entries
          WHERE drive_id = :q_drive AND path = :q_path AND NOT is_dir
            AND EXISTS (SELECT 1 FROM r)
          RETURNING size, key),
    n AS (INSERT INTO drive_entries
              (drive_id, path, parent, name, is_dir, size, key, committed_at)
          SELECT :q_drive, :q_path, :q_parent, :q_name, false, :q_size, :q_key, :q_now
          WHERE EXISTS (SELECT 1 FROM r) AND (SELECT count(*) FROM o) >= 0
          RETURNING id),
    u AS (UPDATE drives SET
              reserved_bytes = reserved_bytes - r.bytes,
              committed_bytes = committed_bytes + :q_size
                                - coalesce((SELECT size FROM o), 0),
              object_count = object_count
                             + CASE WHEN EXISTS (SELECT 1 FROM o) THEN 0 ELSE 1 END,
              last_upload_at = :q_now
          FROM r WHERE drives.id = :q_drive AND EXISTS (SELECT 1 FROM n))"""
_SETTLE_PARAMS = (
    bindparam("q_size", type_=BigInteger),
    bindparam("q_now", type_=entries.c.committed_at.type),
)

# `r` takes the reservation only if it is still this drive's: gone (the
# janitor released it), the statement changes nothing and returns no `reserved`.
# A file whose name parses as a recording also gets its `recordings` row
# from `n`: a second variant of each one-statement commit, so other files
# pay nothing. The row the commit replaces (`o`) takes its own with it (ON
# DELETE CASCADE, at the end of the statement).
_REC_CTE = """,
    rec AS (INSERT INTO recordings
                (entry_id, drive_id, channel, kind, starts_at, ends_at, is_snapshot)
            SELECT id, :q_drive, :channel, :kind, :starts_at, :ends_at, :is_snapshot FROM n)"""
_REC_PARAMS = (
    bindparam("starts_at", type_=recordings.c.starts_at.type),
    bindparam("ends_at", type_=recordings.c.ends_at.type),
)


def _commit_one(rec: bool) -> Any:
    return text(f"""WITH {_PARENT_OK},
    r AS (DELETE FROM reservations
          WHERE id = :q_rid AND drive_id = :q_drive AND (SELECT ok FROM p)
          RETURNING bytes),
    {_SETTLE_CTES}{_REC_CTE if rec else ""}
SELECT (SELECT ok FROM p) AS parent_ok, (SELECT bytes FROM r) AS reserved,
       (SELECT key FROM o) AS old_key""").bindparams(*_SETTLE_PARAMS, *(_REC_PARAMS if rec else ()))


_COMMIT_ONE = {rec: _commit_one(rec) for rec in (False, True)}

# A clip's rename (`name_` -> `name`, every video a recorder sends): a file
# moved to a free name in a directory. Anything else (a directory, a file
# to replace, a missing parent, a missing source) moves nothing here and
# takes the transactional path, which also names the error.
# Its recording row follows the new name (`rec`): written when `dst` parses
# (`name.mp4_` does not, `name.mp4` does), dropped when only `src` did.
_REC_MOVED = {
    "set": """,
    rec AS (INSERT INTO recordings
                (entry_id, drive_id, channel, kind, starts_at, ends_at, is_snapshot)
            SELECT id, :q_drive, :channel, :kind, :starts_at, :ends_at, :is_snapshot FROM u
            ON CONFLICT (entry_id) DO UPDATE SET channel = excluded.channel,
                kind = excluded.kind, starts_at = excluded.starts_at,
                ends_at = excluded.ends_at, is_snapshot = excluded.is_snapshot)""",
    "drop": """,
    rec AS (DELETE FROM recordings WHERE entry_id IN (SELECT id FROM u))""",
    "": "",
}


def _rename_file_one(rec: str) -> Any:
    return text(f"""WITH {_PARENT_OK},
    u AS (UPDATE drive_entries SET path = :q_dst, parent = :q_parent, name = :q_name
          WHERE drive_id = :q_drive AND path = :q_src AND NOT is_dir AND (SELECT ok FROM p)
            AND NOT EXISTS (SELECT 1 FROM drive_entries
                            WHERE drive_id = :q_drive AND path = :q_dst)
          RETURNING id){_REC_MOVED[rec]}
SELECT count(*) AS moved FROM u""").bindparams(*(_REC_PARAMS if rec == "set" else ()))


_RENAME_FILE_ONE = {rec: _rename_file_one(rec) for rec in _REC_MOVED}

# MKD: the directory's row if its parent is one; what the path held before
# comes from the statement's snapshot, so `was_dir` is NULL when the row was
# just inserted, or committed by another session after the statement began
# (then the caller's fallback looks again).
_MKDIR_ONE = text(f"""WITH {_PARENT_OK},
    n AS (INSERT INTO drive_entries
              (drive_id, path, parent, name, is_dir, size, key, committed_at)
          SELECT :q_drive, :q_path, :q_parent, :q_name, true, 0, NULL, :q_now
          WHERE (SELECT ok FROM p)
          ON CONFLICT (drive_id, path) DO NOTHING
          RETURNING id)
SELECT (SELECT count(*) FROM n) AS created,
       (SELECT is_dir FROM drive_entries
        WHERE drive_id = :q_drive AND path = :q_path) AS was_dir""").bindparams(
    bindparam("q_now", type_=entries.c.committed_at.type)
)


# PostgreSQL: a small file committed in one statement *after* its PutObject,
# instead of a reservation before it and a commit after. What makes that
# safe is the upload's intent: a 0-byte reservation naming the object's key,
# made by the same session's previous commit (`x`), so a node that dies
# between the PutObject and this statement leaves the janitor a row that
# names the object to delete, as a reservation always did. `g` locks the
# drive and re-checks room and subscription as the reservation would have
# (without crediting a file this one replaces: that rare case, like a
# missing parent, a full drive or a blocked device, takes the two-step path,
# which rotates, makes parents and names the error). `r` takes the intent;
# gone (the janitor released it), nothing changes and the object must go.
_ENTITLED_SQL = str(
    entitled(literal_column(":q_device")).compile(
        dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
    )
)


def _put_commit_one(rec: bool) -> Any:
    return text(f"""WITH {_PARENT_OK},
    g AS (SELECT id FROM drives
          WHERE id = :q_drive AND (SELECT ok FROM p)
            AND committed_bytes + reserved_bytes + :q_size <= capacity_bytes
            AND {_ENTITLED_SQL}
          FOR UPDATE),
    r AS (DELETE FROM reservations
          WHERE id = :q_rid AND drive_id = :q_drive AND EXISTS (SELECT 1 FROM g)
          RETURNING bytes),
    {_SETTLE_CTES},
    x AS (INSERT INTO reservations
              (id, drive_id, bytes, key, upload_id, node, lease_expires_at, created_at)
          SELECT :x_id, :q_drive, 0, :x_key, NULL, :x_node, :x_lease, :q_now
          WHERE EXISTS (SELECT 1 FROM n)){_REC_CTE if rec else ""}
SELECT (SELECT count(*) FROM g) AS fits, (SELECT bytes FROM r) AS reserved,
       (SELECT key FROM o) AS old_key""").bindparams(
        *_SETTLE_PARAMS,
        bindparam("x_lease", type_=reservations.c.lease_expires_at.type),
        *(_REC_PARAMS if rec else ()),
    )


_PUT_COMMIT_ONE = {rec: _put_commit_one(rec) for rec in (False, True)}
_RENEW_ONE = (
    update(reservations)
    .where(reservations.c.id == bindparam("q_rid"))
    .values(lease_expires_at=bindparam("q_lease", type_=reservations.c.lease_expires_at.type))
    .returning(reservations.c.id)
)


@dataclass(frozen=True)
class Intent:
    """A 0-byte reservation naming the key of a session's next small file."""

    rid: str
    key: str
    made: float  # time.monotonic() when its lease was last set


@dataclass(frozen=True)
class PutCommit:
    """What `commit_after_put` did: committed (the session's `next` intent,
    and the key of the file it replaced), or not, and then whether the
    intent was gone (`lost`: the janitor may have removed the object)."""

    next: Intent | None = None
    lost: bool = False
    old_key: str | None = None

    @property
    def committed(self) -> bool:
        return self.next is not None


def _reserve_args(drive_id: int, nbytes: int, device_id: int | None) -> tuple[Any, dict[str, Any]]:
    params: dict[str, Any] = {"q_drive": drive_id, "q_n": nbytes}
    if device_id is None:
        return _RESERVE, params
    params["q_device"] = device_id
    return _RESERVE_ENTITLED, params


class _FileInWay(NotADirectory):
    """A file where `path` needed a directory; mkdir tells `path` itself from a parent."""

    def __init__(self, path: str) -> None:
        super().__init__(f"/{path} is a file, not a directory")
        self.path = path


def split(path: str) -> tuple[str, str]:
    """`a/b/c` -> (`a/b`, `c`); the root's parent is `""`."""
    parent, name = posixpath.split(path)
    return parent, name


def _file_params(drive_id: int, path: str, key: str, size: int, now: datetime) -> dict[str, Any]:
    """The bind parameters of a committed file's index row (commit's one
    statement on PostgreSQL and _NEW_ENTRY_UNDER share them)."""
    parent, name = split(path)
    return {
        "q_drive": drive_id,
        "q_path": path,
        "q_parent": parent,
        "q_name": name,
        "q_size": size,
        "q_key": key,
        "q_now": now,
    }


_EXPIRED = "the upload's reservation expired before it completed"


class DriveLedger:
    """Atomic operations on drives and their object index."""

    def __init__(self, engine: Engine, *, lease_seconds: int = 120, node: str = "node") -> None:
        self.engine = engine
        self.lease = timedelta(seconds=lease_seconds)
        self.node = node
        self._pg = engine.dialect.name == "postgresql"
        # one statement, its own transaction: no BEGIN and COMMIT round trips
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    def _single(self, statement: Any, params: dict[str, Any]) -> Any:
        """The first row of one statement run as its own transaction (no BEGIN
        and COMMIT round trips: see _PARENT_OK), or None."""
        with self._autocommit.connect() as conn:
            return conn.execute(statement, params).first()

    # --- reservations -------------------------------------------------

    def open_reservation(
        self, drive_id: int, key: str, nbytes: int = 0, device_id: int | None = None
    ) -> str | None:
        """Start a reservation for an upload to `key`, holding `nbytes` at once.

        One transaction for the common small file (a snapshot reserves its
        whole size here). Returns None, creating nothing, if `nbytes` does
        not fit or, given `device_id`, if the device's subscription does not
        allow uploads (billing.entitlement.entitled, checked in the same UPDATE).
        """
        rid = uuid.uuid4().hex
        now = utcnow()
        if nbytes and self._pg:
            params = {
                "q_drive": drive_id,
                "q_n": nbytes,
                "r_id": rid,
                "r_key": key,
                "r_node": self.node,
                "r_lease": now + self.lease,
                "r_now": now,
            }
            if device_id is not None:
                params["q_device"] = device_id
            row = self._single(_OPEN_RESERVED[device_id is not None], params)
            return rid if row is not None else None
        # PostgreSQL, nothing to reserve (an intent, an empty file): the insert
        # alone, outside a transaction block
        single = self._pg and not nbytes
        with self._autocommit.connect() if single else self.engine.begin() as conn:
            if nbytes and conn.execute(*_reserve_args(drive_id, nbytes, device_id)).rowcount != 1:
                return None
            conn.execute(
                _NEW_RES,
                {
                    "id": rid,
                    "drive_id": drive_id,
                    "bytes": nbytes,
                    "key": key,
                    "node": self.node,
                    "lease_expires_at": now + self.lease,
                    "created_at": now,
                    "upload_id": None,
                },
            )
        return rid

    @property
    def commits_after_put(self) -> bool:
        """Whether small files may be committed in one statement after their
        PutObject (PostgreSQL; SQLite keeps reserve, put, commit)."""
        return self._pg

    def open_intent(self, drive_id: int, key: str) -> Intent:
        """A session's first intent (later ones come with each commit)."""
        rid = self.open_reservation(drive_id, key)
        assert rid is not None  # 0 bytes always fit
        return Intent(rid, key, time.monotonic())

    def renew_intent(self, intent: Intent) -> Intent | None:
        """The intent with a fresh lease, or None if the janitor released it."""
        made = time.monotonic()
        row = self._single(_RENEW_ONE, {"q_rid": intent.rid, "q_lease": utcnow() + self.lease})
        return Intent(intent.rid, intent.key, made) if row is not None else None

    def drop_intents(self, rids: list[str]) -> None:
        """Intents a session no longer needs (they hold no bytes)."""
        if rids:
            with self._autocommit.connect() as conn:
                conn.execute(
                    delete(reservations).where(
                        reservations.c.id.in_(rids),
                        reservations.c.bytes == 0,
                        reservations.c.upload_id.is_(None),
                    )
                )

    def commit_after_put(
        self, intent: Intent, drive_id: int, device_id: int, path: str, size: int, next_key: str
    ) -> PutCommit:
        """Index the object `intent.key` (already in S3) as `path`, charging its
        `size` to the drive, in one statement (_PUT_COMMIT_ONE); with it, the
        intent for the session's next small file (`next_key`)."""
        now = utcnow()
        parent, name = split(path)
        next_rid = uuid.uuid4().hex
        made = time.monotonic()
        rec = parse(path)
        try:
            row = self._single(
                _PUT_COMMIT_ONE[rec is not None],
                {
                    **(rec.columns() if rec else {}),
                    "q_rid": intent.rid,
                    "q_drive": drive_id,
                    "q_device": device_id,
                    "q_path": path,
                    "q_parent": parent,
                    "q_name": name,
                    "q_size": size,
                    "q_key": intent.key,
                    "q_now": now,
                    "x_id": next_rid,
                    "x_key": next_key,
                    "x_node": self.node,
                    "x_lease": now + self.lease,
                },
            )
        except IntegrityError:  # a directory holds that path (unique drive_id, path)
            raise IsADirectory(f"/{path} is a directory") from None
        if not row.fits:
            return PutCommit()
        if row.reserved is None:
            return PutCommit(lost=True)
        return PutCommit(Intent(next_rid, next_key, made), old_key=row.old_key)

    def set_upload_id(self, rid: str, upload_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(reservations)
                .where(reservations.c.id == rid)
                .values(upload_id=upload_id, lease_expires_at=utcnow() + self.lease)
            )

    def try_reserve(
        self, rid: str, drive_id: int, nbytes: int, device_id: int | None = None
    ) -> bool:
        """Reserve `nbytes` more for upload `rid`, iff the drive has room (and, given
        `device_id`, the subscription allows uploads); renews the lease."""
        try:
            with self.engine.begin() as conn:
                ok = conn.execute(*_reserve_args(drive_id, nbytes, device_id)).rowcount == 1
                if (
                    ok
                    and conn.execute(
                        _GROW_RES, {"q_rid": rid, "q_n": nbytes, "q_lease": utcnow() + self.lease}
                    ).rowcount
                    != 1
                ):
                    raise _Expired  # the janitor released us: roll the bytes back
                return ok
        except _Expired:
            raise NotFound("the upload's reservation expired (lease lost)") from None

    @property
    def lease_seconds(self) -> float:
        return self.lease.total_seconds()

    def renew(self, rids: list[str]) -> set[str]:
        """Push the leases of live uploads forward (gateway/leases.py), a few
        hundred per statement; the ids still held (a missing one was released
        by the janitor)."""
        held: set[str] = set()
        lease = utcnow() + self.lease
        # PostgreSQL: a statement of its own, no BEGIN and COMMIT round trips
        with self._autocommit.connect() if self._pg else self.engine.begin() as conn:
            for i in range(0, len(rids), 500):
                batch = rids[i : i + 500]
                held.update(
                    conn.execute(
                        update(reservations)
                        .where(reservations.c.id.in_(batch))
                        .values(lease_expires_at=lease)
                        .returning(reservations.c.id)
                    ).scalars()
                )
        return held

    def release(self, rid: str) -> None:
        """Give back everything upload `rid` reserved (abort path); idempotent."""
        with self.engine.begin() as conn:
            self._release(conn, rid)

    @staticmethod
    def _release(conn: Connection, rid: str) -> Row[Any] | None:
        row = conn.execute(select(reservations).where(reservations.c.id == rid)).first()
        if row is None:
            return None
        conn.execute(delete(reservations).where(reservations.c.id == rid))
        if row.bytes:
            conn.execute(
                update(drives)
                .where(drives.c.id == row.drive_id)
                .values(reserved_bytes=drives.c.reserved_bytes - row.bytes)
            )
        return row

    def expired(self, now: datetime | None = None) -> list[Row[Any]]:
        """The reservations whose lease ran out (columns of `Reservation`)."""
        with reader(self.engine).connect() as conn:
            return list(
                conn.execute(
                    select(reservations).where(reservations.c.lease_expires_at < (now or utcnow()))
                ).all()
            )

    # --- commit -------------------------------------------------------

    def commit(self, rid: str, drive_id: int, path: str, key: str, size: int) -> str | None:
        """Turn reservation `rid` into the committed object `path` of `size` bytes.

        Creates missing parent directories, replaces an existing file at
        `path` (returning its old key, which the caller deletes from S3), and
        refuses to replace a directory. Raises NotFound if the reservation was
        expired by the janitor in the meantime: the caller then aborts.
        """
        now = utcnow()
        rec = parse(path)
        try:
            if self._pg:
                row = self._single(
                    _COMMIT_ONE[rec is not None],
                    {
                        **(rec.columns() if rec else {}),
                        **_file_params(drive_id, path, key, size, now),
                        "q_rid": rid,
                    },
                )
                if row.parent_ok:
                    if row.reserved is None:
                        raise NotFound(_EXPIRED)
                    return row.old_key
            with self.engine.begin() as conn:
                old_key = self._settle(conn, rid, drive_id, path, size, now)
                entry_id = self._index_file(conn, drive_id, path, key, size, now)
                if rec is not None:
                    conn.execute(_NEW_RECORDING, rec.row(entry_id, drive_id))
        except IntegrityError:  # a directory holds that path (unique drive_id, path)
            raise IsADirectory(f"/{path} is a directory") from None
        return old_key

    def _settle(
        self, conn: Connection, rid: str, drive_id: int, path: str, size: int, now: datetime
    ) -> str | None:
        """Take the reservation, drop the file `path` held, move the drive's
        counters; the dropped file's key. One statement on PostgreSQL (see
        _SETTLE: a commit is four round trips there, not seven)."""
        if self._pg:
            row = conn.execute(
                _SETTLE,
                {"q_rid": rid, "q_drive": drive_id, "q_path": path, "q_size": size, "q_now": now},
            ).first()
            if row is None:
                raise NotFound(_EXPIRED)
            return row.old_key
        res = conn.execute(_TAKE_RES, {"q_rid": rid}).first()
        if res is None:
            raise NotFound(_EXPIRED)
        old = conn.execute(_DROP_FILE, {"q_drive": drive_id, "q_path": path}).first()
        conn.execute(
            _COMMIT_DRIVE,
            {
                "q_drive": drive_id,
                "q_res": res.bytes,
                "q_delta": size - (old.size if old else 0),
                "q_count": 0 if old else 1,
                "q_now": now,
            },
        )
        return old.key if old else None

    @staticmethod
    def _index_file(
        conn: Connection, drive_id: int, path: str, key: str, size: int, now: datetime
    ) -> int:
        """The file's row (its id): one statement when its parent directory
        exists (the recorder made it with MKD), else mkdir -p first."""
        under = conn.execute(_NEW_ENTRY_UNDER, _file_params(drive_id, path, key, size, now)).first()
        if under is not None:
            return int(under.id)
        parent, name = split(path)
        DriveLedger._ensure_dirs(conn, drive_id, parent, now)
        result = conn.execute(
            _NEW_ENTRY,
            {
                "drive_id": drive_id,
                "path": path,
                "parent": parent,
                "name": name,
                "is_dir": False,
                "size": size,
                "key": key,
                "committed_at": now,
            },
        )
        inserted = result.inserted_primary_key
        assert inserted is not None
        return int(inserted[0])

    @staticmethod
    def _ensure_dirs(conn: Connection, drive_id: int, path: str, now: datetime) -> bool:
        """mkdir -p inside a transaction; True if `path` itself was created.

        Walks up from `path` only as far as a directory exists: a recorder's
        new minute folder costs a look at it and its parent and one insert,
        not two statements per level of a seven-level path (the fleet
        profile spent a third of the FTP gateway's time here). Rows are
        inserted with ON CONFLICT DO NOTHING: several sessions creating the
        same date folder at once (eight channels of one recorder, say) must
        all succeed, on PostgreSQL as on SQLite. A file in the way is an error.
        """
        if not path:
            return False
        row = conn.execute(_IS_DIR, {"q_drive": drive_id, "q_path": path}).first()
        if row is not None:
            if not row.is_dir:
                raise _FileInWay(path)
            return False  # the usual case: the recorder made the directory with MKD
        parent, name = split(path)
        DriveLedger._ensure_dirs(conn, drive_id, parent, now)
        inserted = (
            conn.execute(
                _NEW_DIR[conn.dialect.name],
                {
                    "q_drive": drive_id,
                    "q_path": path,
                    "q_parent": parent,
                    "q_name": name,
                    "q_now": now,
                },
            ).first()
            is not None
        )  # RETURNING: rowcount is -1 on psycopg
        if not inserted:  # another session got there first: a directory, or a file?
            row = conn.execute(_IS_DIR, {"q_drive": drive_id, "q_path": path}).first()
            if row is None or not row.is_dir:
                raise _FileInWay(path)
        return inserted

    # --- namespace changes --------------------------------------------

    def mkdir(self, drive_id: int, path: str) -> bool:
        """Create directory `path` (and parents); False if it already existed."""
        now = utcnow()
        if self._pg:
            parent, name = split(path)
            row = self._single(
                _MKDIR_ONE,
                {
                    "q_drive": drive_id,
                    "q_path": path,
                    "q_parent": parent,
                    "q_name": name,
                    "q_now": now,
                },
            )
            if row.created:
                return True
            if row.was_dir is not None:
                if not row.was_dir:
                    raise AlreadyExists(f"/{path} exists and is a file")
                return False
        try:
            with self.engine.begin() as conn:
                return self._ensure_dirs(conn, drive_id, path, now)
        except _FileInWay as exc:
            if exc.path == path:  # the file is `path` itself, not a parent
                raise AlreadyExists(f"/{path} exists and is a file") from None
            raise

    def rmdir(self, drive_id: int, path: str) -> None:
        with self.engine.begin() as conn:
            row = self._existing(conn, drive_id, path)
            if not row.is_dir:
                raise NotADirectory(f"/{path} is a file; use DELE to delete files")
            child = conn.execute(
                select(entries.c.id)
                .where(entries.c.drive_id == drive_id, entries.c.parent == path)
                .limit(1)
            ).first()
            if child is not None:
                raise DirectoryNotEmpty(f"/{path} is not empty")
            conn.execute(delete(entries).where(entries.c.id == row.id))

    def remove(self, drive_id: int, path: str) -> str:
        """Delete file `path` from the index and the counters; returns its S3 key."""
        with self.engine.begin() as conn:
            row = self._existing(conn, drive_id, path)
            if row.is_dir:
                raise IsADirectory(f"/{path} is a directory; use RMD to delete directories")
            self._drop(conn, drive_id, row.id, row.size)
            return row.key

    @staticmethod
    def _existing(conn: Connection, drive_id: int, path: str) -> Row[Any]:
        """The entry at `path` (file or directory); NotFound names the path."""
        row = conn.execute(
            select(entries).where(entries.c.drive_id == drive_id, entries.c.path == path)
        ).first()
        if row is None:
            raise NotFound(f"/{path} does not exist")
        return row

    @staticmethod
    def _drop(conn: Connection, drive_id: int, entry_id: int, size: int) -> bool:
        gone = conn.execute(delete(entries).where(entries.c.id == entry_id)).rowcount == 1
        if gone:
            conn.execute(
                update(drives)
                .where(drives.c.id == drive_id)
                .values(
                    committed_bytes=drives.c.committed_bytes - size,
                    object_count=drives.c.object_count - 1,
                )
            )
        return gone

    def rename(self, drive_id: int, src: str, dst: str) -> str | None:
        """Move a file or a directory tree inside the index; no byte is copied.

        Replacing an existing file at `dst` is allowed (as on a Unix FTP
        server) and returns that file's key for deletion from S3.
        """
        if dst == src:
            return None
        if dst.startswith(src + "/"):
            raise AlreadyExists(f"cannot move /{src} into itself")
        new_parent, new_name = split(dst)
        rec, had = parse(dst), parse(src) is not None
        if self._pg:
            moved = "set" if rec else "drop" if had else ""
            try:
                if self._single(
                    _RENAME_FILE_ONE[moved],
                    {
                        **(rec.columns() if rec else {}),
                        "q_drive": drive_id,
                        "q_src": src,
                        "q_dst": dst,
                        "q_parent": new_parent,
                        "q_name": new_name,
                    },
                ).moved:
                    return None
            except IntegrityError:  # `dst` appeared since the statement began: look again
                pass
        with self.engine.begin() as conn:
            row = conn.execute(
                select(entries).where(entries.c.drive_id == drive_id, entries.c.path == src)
            ).first()
            if row is None:
                raise NotFound(f"/{src} does not exist")
            target = conn.execute(
                select(entries).where(entries.c.drive_id == drive_id, entries.c.path == dst)
            ).first()
            old_key = None
            if target is not None:
                if target.is_dir or row.is_dir:
                    raise AlreadyExists(f"/{dst} already exists")
                self._drop(conn, drive_id, target.id, target.size)
                old_key = target.key
            self._ensure_dirs(conn, drive_id, new_parent, utcnow())
            conn.execute(
                update(entries)
                .where(entries.c.id == row.id)
                .values(path=dst, parent=new_parent, name=new_name)
            )
            if row.is_dir:
                self._move_tree(conn, drive_id, src, dst)
            else:
                if had:
                    conn.execute(_DROP_RECORDINGS, {"q_ids": [row.id]})
                if rec is not None:
                    conn.execute(_NEW_RECORDING, rec.row(row.id, drive_id))
            return old_key

    @staticmethod
    def _move_tree(conn: Connection, drive_id: int, src: str, dst: str) -> None:
        prefix = src + "/"
        rows = conn.execute(
            select(entries.c.id, entries.c.path, entries.c.parent, entries.c.is_dir).where(
                entries.c.drive_id == drive_id, entries.c.path.startswith(prefix, autoescape=True)
            )
        ).all()
        recorded = []
        for row in rows:
            new_path = dst + row.path[len(src) :]
            new_parent = dst + row.parent[len(src) :]
            conn.execute(
                update(entries)
                .where(entries.c.id == row.id)
                .values(path=new_path, parent=new_parent)
            )
            if not row.is_dir and (rec := parse(new_path)) is not None:
                recorded.append(rec.row(row.id, drive_id))
        # the names may now say another day or channel (a date folder renamed)
        files = [row.id for row in rows if not row.is_dir]
        for i in range(0, len(files), 500):
            conn.execute(_DROP_RECORDINGS, {"q_ids": files[i : i + 500]})
        if recorded:
            conn.execute(_NEW_RECORDING, recorded)

    # --- rotation -----------------------------------------------------

    def files_at(self, drive_id: int, path: str) -> list[tuple[str, str]]:
        """(path, key) of the file at `path`, or of every file under the
        directory `path` (a rename's name records: gateway/names.py)."""
        with reader(self.engine).connect() as conn:
            rows = conn.execute(
                select(entries.c.path, entries.c.key).where(
                    entries.c.drive_id == drive_id,
                    entries.c.is_dir.is_(False),
                    (entries.c.path == path)
                    | entries.c.path.startswith(path + "/", autoescape=True),
                )
            ).all()
        return [(row.path, row.key) for row in rows]

    def oldest(self, drive_id: int, limit: int = 16) -> list[Victim]:
        with reader(self.engine).connect() as conn:
            rows = conn.execute(
                select(entries.c.id, entries.c.path, entries.c.key, entries.c.size)
                .where(and_(entries.c.drive_id == drive_id, entries.c.is_dir.is_(False)))
                .order_by(entries.c.committed_at, entries.c.id)
                .limit(limit)
            ).all()
        return [Victim(r.id, r.path, r.key, r.size) for r in rows]

    def evict(self, drive_id: int, victim: Victim) -> bool:
        """Drop `victim` from the index; False if someone else already did."""
        with self.engine.begin() as conn:
            return self._drop(conn, drive_id, victim.entry_id, victim.size)
