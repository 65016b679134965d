"""Check a drive's index against its objects in the bucket; rebuild it from the bucket.

After a database restore (Litestream's copy is up to a second behind, a
PostgreSQL point-in-time recovery as far behind as its target) the index
misses the recordings that arrived since, and may list some that were
rotated out or replaced since. `fsck` finds, per drive:

* orphans: objects in the bucket that the index does not list (an upload in
  flight, whose key a reservation names, is none);
* missing: files the index lists whose object is not in the bucket;
* size mismatches: a file whose size in the index is not its object's;
* renames: a file whose name record (gateway/names.py) names it otherwise.

`repair` makes the index agree with the bucket, the bucket being the truth
for what exists: each orphan is indexed under the name the bucket gives it
(its name record, else the metadata it was uploaded with: gateway/names.py),
under `lost+found/` when it has none or its name is taken by another object,
so that no recording is lost; missing files are dropped from the index,
sizes are corrected, and the drive's counters are recounted from the index
in the same transaction. Nothing is ever deleted from the bucket.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.engine import Connection

from billing.core.errors import NotADirectory, NotFound
from billing.core.models import Drive, DriveEntry, Reservation, utcnow
from gateway.index import DriveLedger, split
from gateway.names import Naming, from_metadata, is_name_key, name_key, object_key, parse_record
from gateway.recordings import parse, recordings
from gateway.store import S3DriveStore

drives = Drive.__table__  # type: ignore[attr-defined]
entries = DriveEntry.__table__  # type: ignore[attr-defined]
reservations = Reservation.__table__  # type: ignore[attr-defined]

LOST_AND_FOUND = "lost+found"


@dataclass
class Finding:
    kind: str  # orphan | missing | size | name
    key: str
    path: str | None  # the index's path; the bucket's name for an orphan or a rename
    index_size: int | None = None
    bucket_size: int | None = None
    # the path an orphan or a renamed file was indexed under (for `name`,
    # before the repair: the index's stale path)
    repaired_as: str | None = None


@dataclass
class DriveCheck:
    drive_id: int
    prefix: str
    indexed: int = 0  # files in the index
    stored: int = 0  # recordings in the bucket
    findings: list[Finding] = field(default_factory=list)
    repaired: bool = False

    @property
    def clean(self) -> bool:
        return not self.findings

    def count(self, kind: str) -> int:
        return sum(1 for f in self.findings if f.kind == kind)

    def as_dict(self) -> dict[str, Any]:
        return {
            "drive_id": self.drive_id,
            "prefix": self.prefix,
            "indexed": self.indexed,
            "stored": self.stored,
            "orphans": self.count("orphan"),
            "missing": self.count("missing"),
            "size_mismatches": self.count("size"),
            "renamed": self.count("name"),
            "repaired": self.repaired,
            "findings": [asdict(f) for f in self.findings],
        }


@dataclass
class _Stored:
    size: int
    modified: datetime | None


def release_reservations(engine: Engine) -> int:
    """Forget every reservation; the number released. Only with every gateway
    stopped, after a database restore: the restored rows belong to processes
    that no longer run, and some name objects that were stored and
    acknowledged after the copy was taken. Left there, the janitor would
    delete those objects as a dead node's leftovers; released, `check_drives`
    sees them as orphans and indexes them. (Multipart uploads they named are
    aborted by the janitor's sweep of uploads no reservation knows.)"""
    with engine.begin() as conn:
        gone = conn.execute(delete(reservations)).rowcount
        conn.execute(update(drives).where(drives.c.reserved_bytes != 0).values(reserved_bytes=0))
    return int(gone or 0)


def check_drives(
    engine: Engine,
    store: S3DriveStore,
    drive_ids: Iterable[int] | None = None,
    repair: bool = False,
) -> list[DriveCheck]:
    """Check (and with `repair`, fix) every drive, or those given."""
    with engine.connect() as conn:
        query = select(drives.c.id, drives.c.prefix, drives.c.device_id).order_by(drives.c.id)
        if drive_ids is not None:
            query = query.where(drives.c.id.in_(list(drive_ids)))
        rows = conn.execute(query).all()
    return [check_drive(engine, store, r.id, r.prefix, r.device_id, repair) for r in rows]


def check_drive(
    engine: Engine,
    store: S3DriveStore,
    drive_id: int,
    prefix: str,
    device_id: int | None = None,
    repair: bool = False,
) -> DriveCheck:
    report = DriveCheck(drive_id, prefix)
    objects: dict[str, _Stored] = {}
    records: set[str] = set()  # objects that have a name record
    for key, size, modified in store.list_objects(prefix):
        if is_name_key(key):
            records.add(object_key(key))
        else:
            objects[key] = _Stored(size, modified)
    with engine.connect() as conn:
        indexed = {
            row.key: (row.path, row.size)
            for row in conn.execute(
                select(entries.c.key, entries.c.path, entries.c.size).where(
                    entries.c.drive_id == drive_id, entries.c.is_dir.is_(False)
                )
            )
        }
        in_flight = set(
            conn.execute(
                select(reservations.c.key).where(reservations.c.drive_id == drive_id)
            ).scalars()
        )
    report.indexed, report.stored = len(indexed), len(objects)
    for key, (path, size) in sorted(indexed.items(), key=lambda kv: kv[1][0]):
        stored = objects.get(key)
        if stored is None:
            report.findings.append(Finding("missing", key, path, index_size=size))
        elif stored.size != size:
            report.findings.append(Finding("size", key, path, size, stored.size))
    orphans = sorted(k for k in objects if k not in indexed and k not in in_flight)
    renamed = sorted(k for k in indexed if k in objects and k in records)
    with ThreadPoolExecutor(max_workers=16) as pool:  # a HEAD or GET each: a lost index has many
        names = pool.map(lambda k: _naming(store, k, k in records), orphans)
        for key, naming in zip(orphans, names, strict=True):
            report.findings.append(
                Finding("orphan", key, naming.path if naming else None, None, objects[key].size)
            )
        # a rename the index does not know (it came after a restored copy)
        for key, naming in zip(
            renamed, pool.map(lambda k: _record(store, k), renamed), strict=True
        ):
            path, size = indexed[key]
            if naming is not None and naming.path != path:
                report.findings.append(Finding("name", key, naming.path, size, size, path))
    if repair and report.findings:
        _repair(engine, drive_id, report, objects)
        report.repaired = True
    return report


def _naming(store: S3DriveStore, key: str, has_record: bool) -> Naming | None:
    """The name the bucket gives an object: its latest rename, else its upload."""
    naming = _record(store, key) if has_record else None
    return naming if naming is not None else from_metadata(store.head(key))


def _record(store: S3DriveStore, key: str) -> Naming | None:
    try:
        return parse_record(bytes(store.open_range(name_key(key)).read()))
    except NotFound:  # deleted since the listing
        return None


def _repair(engine: Engine, drive_id: int, report: DriveCheck, objects: dict[str, _Stored]) -> None:
    """One transaction: the drive's row first (the lock a commit takes too),
    then the index, then its counters recounted from the index."""
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(update(drives).where(drives.c.id == drive_id).values(id=drives.c.id))
        for f in report.findings:
            if f.kind == "missing":
                conn.execute(
                    delete(entries).where(entries.c.drive_id == drive_id, entries.c.key == f.key)
                )
            elif f.kind == "size":
                conn.execute(
                    update(entries)
                    .where(entries.c.drive_id == drive_id, entries.c.key == f.key)
                    .values(size=f.bucket_size)
                )
        for f in report.findings:
            if f.kind == "name":  # out of the way first: a new file may take its old name
                conn.execute(
                    delete(entries).where(entries.c.drive_id == drive_id, entries.c.key == f.key)
                )
        for f in report.findings:
            if f.kind in ("orphan", "name"):
                stored = objects[f.key]
                f.repaired_as = _index_orphan(conn, drive_id, f, stored.modified or now)
        totals = conn.execute(
            select(func.count(), func.coalesce(func.sum(entries.c.size), 0)).where(
                entries.c.drive_id == drive_id, entries.c.is_dir.is_(False)
            )
        ).one()
        conn.execute(
            update(drives)
            .where(drives.c.id == drive_id)
            .values(object_count=totals[0], committed_bytes=totals[1])
        )


def _index_orphan(conn: Connection, drive_id: int, f: Finding, modified: datetime) -> str:
    """Index an orphan under its own name if free, else under lost+found/."""
    object_id = f.key.rsplit("/", 1)[1]
    candidates = []
    if f.path:
        candidates.append(f.path)
        root, ext = posixpath.splitext(f.path)
        candidates.append(f"{LOST_AND_FOUND}/{root}.{object_id[:8]}{ext}")
    candidates.append(f"{LOST_AND_FOUND}/{object_id}")
    for path in candidates:
        if _try_index(conn, drive_id, path, f.key, f.bucket_size or 0, modified):
            return path
    raise RuntimeError(f"cannot index {f.key}")  # lost+found/<uuid> is always free


def _try_index(
    conn: Connection, drive_id: int, path: str, key: str, size: int, modified: datetime
) -> bool:
    """Insert the file's row (and its parents) if `path` is free; False if taken."""
    taken = conn.execute(
        select(entries.c.id).where(entries.c.drive_id == drive_id, entries.c.path == path)
    ).first()
    if taken is not None:
        return False
    parent, name = split(path)
    try:  # inserts nothing when it refuses (it looks before it inserts)
        DriveLedger._ensure_dirs(conn, drive_id, parent, modified)
    except NotADirectory:  # a file where a parent folder should be: the next name
        return False
    added = conn.execute(
        insert(entries).values(
            drive_id=drive_id,
            path=path,
            parent=parent,
            name=name,
            is_dir=False,
            size=size,
            key=key,
            committed_at=modified,
        )
    ).inserted_primary_key
    rec = parse(path)  # back on the timeline too (gateway/recordings.py)
    if rec is not None and added is not None:
        conn.execute(insert(recordings).values(**rec.row(added[0], drive_id)))
    return True
