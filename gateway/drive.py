"""The drive view: what one login sees and may do, for every protocol.

FTP and SFTP sessions each hold a `DriveView` and call only its methods with
the raw paths their clients sent; path rules (gateway/paths.py),
entitlement, quotas and commits all happen behind it, once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select

from billing.core.db import database_errors, reader
from billing.core.errors import (
    AlreadyExists,
    Cam2DriveError,
    InvalidPath,
    IsADirectory,
    NotADirectory,
    NotFound,
    PermissionDenied,
    StorageUnavailable,
)
from billing.core.models import DriveEntry, utcnow
from billing.entitlement import Entitlement, upload_entitlement, viewable_drives
from gateway import metrics, paths
from gateway.ingest import IngestPipeline, SessionIntents, Upload
from gateway.names import Naming, name_key, record_body

log = logging.getLogger("cam2drive.drive")
entries = DriveEntry.__table__  # type: ignore[attr-defined]
ENTITLEMENT_TTL = 30.0  # seconds a session reuses its drive's rules (capacity, on_full)
# Seconds a device session trusts a directory it has seen. A recorder walks
# its whole CWD (or SFTP stat) chain before every file, seven levels deep;
# remembering them takes ~8 database reads off each snapshot. A directory
# removed meanwhile by another session is harmless: the commit recreates
# missing parents, and an LIST of it is simply empty.
DIR_CACHE_TTL = 30.0


@dataclass(frozen=True)
class Login:
    """An authenticated principal.

    A device login's root is its own drive, writable while its subscription
    allows. A viewer (an end customer, by email) sees each of their devices
    as a read-only top-level folder named after the device.
    """

    kind: str  # "device" | "viewer"
    username: str
    customer_id: int
    device_id: int | None = None
    drive_id: int | None = None

    @property
    def writable(self) -> bool:
        return self.kind == "device"


@dataclass(frozen=True)
class Entry:
    name: str
    path: str  # drive path, no leading slash
    is_dir: bool
    size: int
    mtime: datetime
    key: str | None = None


# Built once: every CWD of a recorder's directory chain runs it, and building
# a Core statement costs about what running it does (see gateway/index.py).
_ENTRY = select(entries).where(
    entries.c.drive_id == bindparam("q_drive"), entries.c.path == bindparam("q_path")
)

_ROOT = Entry(name="/", path="", is_dir=True, size=0, mtime=datetime(1970, 1, 1))


def _from_row(row: Any, mount: str = "") -> Entry:
    return Entry(
        name=row.name,
        path=f"{mount}/{row.path}" if mount else row.path,
        is_dir=row.is_dir,
        size=row.size,
        mtime=row.committed_at,
        key=row.key,
    )


def login_notice(engine: Any, login: Login) -> str:
    """What a login is told on success, the same words over FTP (230) and SFTP (banner).

    A recorder without an entitled subscription still logs in, so the
    installer sees *why* its uploads will be refused instead of a bare
    password error; a database hiccup here never blocks the login.
    """
    from billing.core.errors import Cam2DriveError, NotEntitled

    if login.kind == "viewer":
        return "Login successful (read-only: one folder per device)."
    try:
        upload_entitlement(engine, login.device_id)  # type: ignore[arg-type]
    except NotEntitled as err:
        return f"Login successful, but {err}."
    except Cam2DriveError:
        pass
    return "Login successful."


class Download:
    """A ranged, streaming read of one object: what RETR and SFTP reads consume."""

    def __init__(self, view: DriveView, entry: Entry) -> None:
        self._store = view.pipeline.store
        self.entry = entry
        self.name = paths.display(entry.path)
        self.closed = False
        self._pos = 0
        self._body: Any = None

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence != 0 or pos < 0 or pos > self.entry.size:
            raise ValueError("invalid seek")
        if pos != self._pos and self._body is not None:
            self._body.close()
            self._body = None
        self._pos = pos
        return pos

    def tell(self) -> int:
        return self._pos

    def read(self, n: int = -1) -> bytes:
        if self._pos >= self.entry.size:
            return b""
        if self._body is None:
            self._body = self._store.open_range(self.entry.key, self._pos)  # type: ignore[arg-type]
        try:
            data = self._body.read(n if n and n > 0 else None)
        except Exception as exc:  # urllib3/botocore read errors mid-stream
            raise StorageUnavailable(f"storage read failed: {exc}") from exc
        self._pos += len(data)
        return bytes(data)

    def close(self) -> None:
        if not self.closed and self._body is not None:
            self._body.close()
        self.closed = True


class DriveView:
    """One session's view: `cwd` is the client's current directory (no leading slash)."""

    def __init__(self, pipeline: IngestPipeline, login: Login, protocol: str = "ftp") -> None:
        self.pipeline = pipeline
        self.login = login
        self.protocol = protocol  # a metrics label (gateway/metrics.py)
        self._session: metrics.Gauge | None = metrics.SESSIONS.labels(protocol, login.kind)
        self._session.inc()
        self.ledger = pipeline.ledger
        self.cwd = ""
        self._ent: tuple[Entitlement, float] | None = None
        self._dirs: dict[str, tuple[Entry, float]] = {}  # device logins: see DIR_CACHE_TTL
        # folder -> names of its sub-folders: a STOR is refused before its data when it
        # names a folder, and a recorder stores ~60 snapshots per folder, so the
        # question is asked of the database once per folder, not once per file
        self._subdirs: dict[str, tuple[frozenset[str], float]] = {}
        self.intents = SessionIntents(self.ledger) if login.writable else None

    def close(self) -> None:
        """The session has ended: give back what it held for its next files."""
        if self._session is not None:
            self._session.dec()
            self._session = None
        if self.intents is not None:
            self.intents.close()

    # --- paths ----------------------------------------------------------

    def resolve(self, raw: str) -> str:
        return paths.resolve(self.cwd, raw)

    @property
    def cwd_display(self) -> str:
        return paths.display(self.cwd)

    def _mounts(self) -> dict[str, int]:
        """A viewer's folders: device name -> drive id (read fresh: devices come and go)."""
        with database_errors():  # an ISP's block hides the device (billing/entitlement.py)
            return viewable_drives(self.pipeline.engine, self.login.customer_id)

    def locate(self, path: str) -> tuple[int | None, str, str]:
        """(drive id, path inside that drive, mount prefix) of a view path.

        The drive id is None for a viewer's virtual root. This is the only
        place a view path meets a drive: a login cannot name any other.
        """
        if self.login.kind == "device":
            return self.login.drive_id, path, ""
        if path == "":
            return None, "", ""
        mount, _, inner = path.partition("/")
        drive_id = self._mounts().get(mount)
        if drive_id is None:
            raise NotFound(f"/{mount}: no such file or directory")
        return drive_id, inner, mount

    def _require_write(self, *, cached: bool = False) -> int:
        """The drive a write may change, if the subscription allows writes.

        `cached`: the session's entitlement read (see open_write) is good
        enough; MKD and renames take it, since neither moves a byte and a
        recorder makes a folder for every minute of snapshots and renames
        every clip (`name_` -> `name`). Deleting reads the subscription afresh.
        """
        if not self.login.writable:
            raise PermissionDenied("read-only login: recordings can be viewed, not changed")
        if cached:
            return self._entitlement().drive_id
        with database_errors():
            upload_entitlement(self.pipeline.engine, self.login.device_id)  # type: ignore[arg-type]
        return self.login.drive_id  # type: ignore[return-value]

    # --- reads ----------------------------------------------------------

    def stat(self, raw: str) -> Entry:
        return self.stat_path(self.resolve(raw))

    def known(self, raw: str) -> Entry | None:
        """What `stat` would answer, if it can be answered without the
        database (a device's root or a folder it has seen); else None.
        An asyncio frontend then answers without a hop to a worker thread."""
        if self.login.kind != "device":
            return None
        path = self.resolve(raw)
        return _ROOT if path == "" else self._cached_dir(path)

    def _cached_dir(self, path: str) -> Entry | None:
        cached = self._dirs.get(path)
        return cached[0] if cached is not None and time.monotonic() < cached[1] else None

    def stat_path(self, path: str) -> Entry:
        return self._stat(path, *self.locate(path))

    def _stat(self, path: str, drive_id: int | None, inner: str, mount: str) -> Entry:
        if inner == "":
            return (
                _ROOT
                if not mount
                else Entry(name=mount, path=mount, is_dir=True, size=0, mtime=_ROOT.mtime)
            )
        cached = None if mount else self._cached_dir(inner)
        if cached is not None:
            return cached
        with database_errors(), reader(self.pipeline.engine).connect() as conn:
            row = conn.execute(_ENTRY, {"q_drive": drive_id, "q_path": inner}).first()
        if row is None:
            raise NotFound(f"{paths.display(path)}: no such file or directory")
        entry = _from_row(row, mount)
        if entry.is_dir and not mount:
            self._remember_dir(entry)
        return entry

    def _remember_dir(self, entry: Entry) -> None:
        self._dirs[entry.path] = (entry, time.monotonic() + DIR_CACHE_TTL)
        parent, _, name = entry.path.rpartition("/")
        known = self._subdirs.get(parent)
        if known is not None and name not in known[0]:
            self._subdirs[parent] = (known[0] | {name}, known[1])

    def _cached_subdirs(self, parent: str) -> frozenset[str] | None:
        cached = self._subdirs.get(parent)
        return cached[0] if cached is not None and time.monotonic() < cached[1] else None

    def _subdir_names(self, drive_id: int, parent: str) -> frozenset[str]:
        known = self._cached_subdirs(parent)
        if known is None:
            with database_errors(), reader(self.pipeline.engine).connect() as conn:
                rows = conn.execute(
                    select(entries.c.name).where(
                        entries.c.drive_id == drive_id,
                        entries.c.parent == parent,
                        entries.c.is_dir.is_(True),
                    )
                ).all()
            known = frozenset(r.name for r in rows)
            self._subdirs[parent] = (known, time.monotonic() + DIR_CACHE_TTL)
        return known

    def _forget_dirs(self, *paths_: str) -> None:
        """After this session removes or moves `paths_`: directories at or under
        them may have gone. Only those are forgotten: a recorder renames every
        clip from `name_` to `name`, and clearing the whole cache made the
        next file walk its seven-level CWD chain in the database again
        (BENCHMARKS.md, fleet)."""
        for path in paths_:
            under = path + "/"
            for cached in [p for p in self._dirs if p == path or p.startswith(under)]:
                del self._dirs[cached]
            self._subdirs.pop(path.rpartition("/")[0], None)
            for cached in [p for p in self._subdirs if p == path or p.startswith(under)]:
                del self._subdirs[cached]

    def chdir(self, raw: str) -> str:
        path = self.resolve(raw)
        if not self.stat_path(path).is_dir:
            raise NotADirectory(f"{paths.display(path)} is not a directory")
        self.cwd = path
        return paths.display(path)

    def listdir(self, raw: str = "") -> list[Entry]:
        """Entries of a directory, sorted by name; a file lists as itself."""
        path = self.resolve(raw)
        drive_id, inner, mount = self.locate(path)
        entry = self._stat(path, drive_id, inner, mount)
        if not entry.is_dir:
            return [entry]
        if drive_id is None:  # a viewer's root: one folder per device
            return [
                Entry(name=name, path=name, is_dir=True, size=0, mtime=_ROOT.mtime)
                for name in sorted(self._mounts())
            ]
        with database_errors(), reader(self.pipeline.engine).connect() as conn:
            rows = conn.execute(
                select(entries)
                .where(entries.c.drive_id == drive_id, entries.c.parent == inner)
                .order_by(entries.c.name)
            ).all()
        return [_from_row(r, mount) for r in rows]

    def open_read(self, raw: str, offset: int = 0) -> Download:
        entry = self.stat(raw)
        if entry.is_dir:
            raise IsADirectory(f"{paths.display(entry.path)} is a directory")
        if offset > entry.size:
            raise InvalidPath(f"restart position {offset} is past the end ({entry.size} bytes)")
        download = Download(self, entry)
        download.seek(offset)
        return download

    # --- writes ---------------------------------------------------------

    def mkdir(self, raw: str) -> tuple[str, bool]:
        """Create a directory; an existing one is fine (a recorder's MKD chain)."""
        path = self.resolve(raw)
        drive_id = self._require_write(cached=True)
        if path == "":
            return "/", False
        with database_errors():
            created = self.ledger.mkdir(drive_id, path)
        if created:  # the recorder's next command is CWD into it: answer that from memory
            self._remember_dir(
                Entry(name=path.rsplit("/", 1)[-1], path=path, is_dir=True, size=0, mtime=utcnow())
            )
        return paths.display(path), created

    def rmdir(self, raw: str) -> None:
        path = self.resolve(raw)
        drive_id = self._require_write()
        if path == "":
            raise PermissionDenied("the drive's root cannot be removed")
        self._forget_dirs(path)
        with database_errors():
            self.ledger.rmdir(drive_id, path)
        if self.cwd == path or self.cwd.startswith(path + "/"):
            self.cwd = ""

    def remove(self, raw: str) -> None:
        path = self.resolve(raw)
        drive_id = self._require_write()
        self._forget_dirs(path)
        with database_errors():
            key = self.ledger.remove(drive_id, path)
        self.pipeline.delete_keys([key])

    def rename(self, src_raw: str, dst_raw: str, replace: bool = True) -> str:
        """Server-side rename: only the index row moves, never the bytes.

        `replace=False` refuses an existing destination (SFTP's plain rename,
        as OpenSSH's sftp-server does); FTP's RNTO and SFTP's posix-rename
        replace a file, as a recorder's `name_` -> `name` retry needs.
        """
        src, dst = self.resolve(src_raw), self.resolve(dst_raw)
        drive_id = self._require_write(cached=True)
        if src == "" or dst == "":
            raise PermissionDenied("the drive's root cannot be renamed or replaced")
        if not replace and src != dst and self._exists(drive_id, dst):
            raise AlreadyExists(f"{paths.display(dst)} already exists")
        self._forget_dirs(src, dst)
        moved = self._record_names(drive_id, src, dst)
        try:
            with database_errors():
                old_key = self.ledger.rename(drive_id, src, dst)
        except Cam2DriveError:
            try:
                self._record_names(drive_id, src, src, moved)  # the names they keep
            except Cam2DriveError as exc:  # fsck --repair trusts the index while it lives
                log.warning(
                    "could not restore %d name records after a refused rename: %s", len(moved), exc
                )
            raise
        if old_key:
            self.pipeline.delete_keys([old_key])
        return paths.display(dst)

    def _record_names(
        self, drive_id: int, src: str, dst: str, files: list[tuple[str, str]] | None = None
    ) -> list[tuple[str, str]]:
        """Tell the bucket the names files under `src` take under `dst`
        (gateway/names.py), before the index moves them: a rename the
        bucket could not learn is refused (451) and changes nothing. One
        small PutObject per file moved (a recorder's clip: one); `files`:
        the (path, key) pairs to name, else those at `src` now."""
        if files is None:
            with database_errors():
                files = self.ledger.files_at(drive_id, src)
        for path, key in files:
            naming = Naming(drive_id, self.login.device_id, dst + path[len(src) :])
            self.pipeline.store.put(name_key(key), record_body(naming))
        return files

    def open_write(self, raw: str, expected_size: int | None = None) -> Upload:
        """Start an upload; no database round trip for an entitled device in a known folder.

        The entitlement read at the session's first upload is reused for
        `ENTITLEMENT_TTL` seconds: it only supplies the drive and its rules,
        while the subscription itself is re-checked atomically by every
        reservation (billing.entitlement.entitled). A folder is refused here,
        before the client sends a byte, not at commit after all of them.
        """
        path = self.resolve(raw)
        if not self.login.writable:
            raise PermissionDenied("read-only login: recordings can be viewed, not changed")
        if path == "" or self._cached_dir(path) is not None:
            raise IsADirectory(f"{paths.display(path)} is a directory")
        try:
            ent = self._entitlement()
        except Exception as exc:  # refused (not entitled) or the database: counted once
            metrics.upload_failed(self.protocol, exc)
            raise
        parent, _, name = path.rpartition("/")
        if name in self._subdir_names(ent.drive_id, parent):
            raise IsADirectory(f"{paths.display(path)} is a directory")
        try:
            upload = self.pipeline.start(ent, path, expected_size, self.intents)
        except Exception as exc:  # larger than the whole drive
            metrics.upload_failed(self.protocol, exc)
            raise
        upload.protocol = self.protocol
        return upload

    def _exists(self, drive_id: int, path: str) -> bool:
        if self._cached_dir(path) is not None:
            return True
        with database_errors(), reader(self.pipeline.engine).connect() as conn:
            return conn.execute(_ENTRY, {"q_drive": drive_id, "q_path": path}).first() is not None

    def writes_known(self, raw: str) -> bool:
        """True if `open_write(raw)` can answer without the database: a login that
        may not write, or a fresh entitlement and a folder whose sub-folders are known."""
        if not self.login.writable:
            return True
        cached = self._ent
        if cached is None or time.monotonic() >= cached[1]:
            return False
        try:
            path = self.resolve(raw)
        except InvalidPath:
            return True  # refused on its face, without the database
        return self._cached_subdirs(path.rpartition("/")[0]) is not None

    def _entitlement(self) -> Entitlement:
        cached = self._ent
        if cached is not None and time.monotonic() < cached[1]:
            return cached[0]
        with database_errors():
            ent = upload_entitlement(self.pipeline.engine, self.login.device_id)  # type: ignore[arg-type]
        self._ent = (ent, time.monotonic() + ENTITLEMENT_TTL)
        return ent
