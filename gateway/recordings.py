"""What a Dahua file name says (channel, event kind, start, end), and a day of them.

Recorders write no metadata beside the bytes: the timeline is in the names
(../shared/recorders.md lists the families). `parse` reads a drive path once,
when the file is committed (gateway/index.py writes its `recordings` row in
the commit's transaction), so the portal loads a day in one indexed query
instead of listing and parsing folders.

Times are stored as the recorder wrote them: local wall-clock time, naive.
A name carries no time zone and the recorder's zone is a setting of its
device that may change later, so converting at commit time would bake a
guess into the index (and cost the commit a look-up of the device). `day`
applies the zone when it reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, bindparam, exists, insert, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from billing.core.db import reader
from billing.core.models import Device, Drive, DriveEntry, Recording

recordings = Recording.__table__  # type: ignore[attr-defined]
entries = DriveEntry.__table__  # type: ignore[attr-defined]
devices = Device.__table__  # type: ignore[attr-defined]
drives = Drive.__table__  # type: ignore[attr-defined]

KINDS = {
    "R": "regular",
    "M": "motion",
    "A": "alarm",
    "I": "intelligent",
    "F": "manual",
}
# the longest clip `day` looks back for: a clip that began the day before
# and is still running at midnight (an NVR export of a whole day at most)
MAX_CLIP = timedelta(days=1)

# `[M][0@0][0]`: the event flag, then any bracketed groups the firmware adds
_FLAG = r"\[(?P<kind>[A-Za-z])\](?:\[[^\[\]/]*\])*"
_HMS = r"(?P<{0}h>\d\d)\.(?P<{0}m>\d\d)\.(?P<{0}s>\d\d)"
_CLIP = re.compile(rf"{_HMS.format('a')}-{_HMS.format('b')}(?:{_FLAG})?\.(?:dav|mp4)", re.I)
_SNAP_HMS = re.compile(rf"{_HMS.format('a')}(?:{_FLAG})?\.jpe?g", re.I)
_SNAP_MS = re.compile(rf"(?P<am>\d\d)\.(?P<as>\d\d)(?:{_FLAG})?\.jpe?g", re.I)
_SNAP_S = re.compile(rf"(?P<as>\d\d)(?:{_FLAG})?\.jpe?g", re.I)
# `001_20241002081011_[A][0@0][0].jpg`: channel and timestamp, no folders needed
_STAMPED = re.compile(
    rf"(?P<ch>\d{{3}})_(?P<a>\d{{14}})_?(?:{_FLAG})?\.(?P<ext>jpe?g|dav|mp4)", re.I
)
# `NVR_ch1_main_20241002081011_20241002081530.dav`: NVR exports, no event flag
_EXPORT = re.compile(
    r"(?:.*_)?ch(?P<ch>\d{1,3})_(?:main|sub\d?|extra\d?)_(?P<a>\d{14})_(?P<b>\d{14})"
    r"\.(?:dav|mp4)",
    re.I,
)
_DATE = re.compile(r"(\d{4})-(\d\d)-(\d\d)")
_CHANNEL = re.compile(r"\d{3}")
_HOUR = re.compile(r"(\d\d)(?:hour)?", re.I)


@dataclass(frozen=True)
class Parsed:
    """A recording as its name describes it; times are the recorder's local time."""

    channel: int
    kind: str  # one of KINDS
    start: datetime  # naive, local
    end: datetime  # naive, local; == start for a snapshot
    is_snapshot: bool

    def columns(self) -> dict[str, Any]:
        """Its `recordings` columns but the keys, named as the columns: the bind
        parameters of every statement that writes the row."""
        return {
            "channel": self.channel,
            "kind": self.kind,
            "starts_at": self.start,
            "ends_at": self.end,
            "is_snapshot": self.is_snapshot,
        }

    def row(self, entry_id: int, drive_id: int) -> dict[str, Any]:
        """Its `recordings` row, for drive entry `entry_id`."""
        row = self.columns()
        row["entry_id"], row["drive_id"] = entry_id, drive_id
        return row


def parse(path: str) -> Parsed | None:
    """The recording a drive path names, or None (not a recording, or garbage).

    Never raises: every upload's commit calls it. In-progress names (`.mp4_`),
    `.idx` files and unknown event flags are None.
    """
    try:
        return _parse(path)
    except (ValueError, OverflowError):  # 2026-02-30, 25.61.00, year 0...
        return None


def _parse(path: str) -> Parsed | None:
    parts = [p for p in path.split("/") if p]
    if not parts or len(parts[-1]) > 200:
        return None
    name = parts[-1]
    if m := _EXPORT.fullmatch(name):
        return _build(int(m["ch"]), "R", _stamp(m["a"]), _stamp(m["b"]), False, span=True)
    if m := _STAMPED.fullmatch(name):
        start = _stamp(m["a"])
        snapshot = m["ext"].lower().startswith("jp")
        return _build(int(m["ch"]), m["kind"] or "R", start, start, snapshot)
    # the rest need the date folder (`.../2026-12-06/001/dav/15/<name>`)
    dated = [(i, m) for i, p in enumerate(parts[:-1]) if (m := _DATE.fullmatch(p))]
    if not dated:
        return None
    at, dm = dated[-1]
    day = date(int(dm[1]), int(dm[2]), int(dm[3]))
    rest = parts[at + 1 : -1]
    channel = 1  # a camera's own uploads may have no channel folder
    if rest and _CHANNEL.fullmatch(rest[0]):
        channel = int(rest.pop(0))
    hours = [int(h[1]) for p in rest if (h := _HOUR.fullmatch(p))]
    if m := _CLIP.fullmatch(name):
        return _build(channel, m["kind"] or "R", _at(day, m, "a"), _at(day, m, "b"), False)
    if m := _SNAP_HMS.fullmatch(name):
        start = _at(day, m, "a")
        return _build(channel, m["kind"] or "R", start, start, True)
    # `jpg/08/25.03[M]...`: hour folder, minute.second name
    if (m := _SNAP_MS.fullmatch(name)) and len(hours) >= 1:
        start = datetime.combine(day, time(hours[-1], int(m["am"]), int(m["as"])))
        return _build(channel, m["kind"] or "R", start, start, True)
    # `jpg/09/32/52[M]...`: hour and minute folders, second name
    if (m := _SNAP_S.fullmatch(name)) and len(hours) >= 2:
        start = datetime.combine(day, time(hours[-2], hours[-1], int(m["as"])))
        return _build(channel, m["kind"] or "R", start, start, True)
    return None


def _at(day: date, m: re.Match[str], g: str) -> datetime:
    return datetime.combine(day, time(int(m[g + "h"]), int(m[g + "m"]), int(m[g + "s"])))


def _stamp(s: str) -> datetime:
    return datetime.strptime(s, "%Y%m%d%H%M%S")


def _build(
    channel: int, kind: str, start: datetime, end: datetime, snapshot: bool, span: bool = False
) -> Parsed | None:
    kind = kind.upper()
    if kind not in KINDS or not 1 <= channel <= 999 or start.year < 2000:
        return None
    if end < start:
        if span:  # full timestamps: an end before the start is garbage
            return None
        end += timedelta(days=1)  # `23.59.59-00.00.30`: the clip crosses midnight
    if end - start > MAX_CLIP:
        return None
    return Parsed(channel, kind, start, end, snapshot)


# --- the index, read ------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One recording on a day's timeline; times are aware, in the device's zone."""

    entry_id: int
    channel: int
    kind: str
    start: datetime
    end: datetime
    is_snapshot: bool
    path: str
    size: int


_lo: Any = bindparam("q_lo")
_hi: Any = bindparam("q_hi")
# start within [day - MAX_CLIP, next day) uses the (drive_id, starts_at)
# index; the rest keeps what overlaps the day (a clip crossing midnight shows
# on both days; a snapshot at 00:00:00 on its own)
_DAY = (
    select(
        recordings.c.entry_id,
        recordings.c.channel,
        recordings.c.kind,
        recordings.c.starts_at,
        recordings.c.ends_at,
        recordings.c.is_snapshot,
        entries.c.path,
        entries.c.size,
    )
    .join(entries, entries.c.id == recordings.c.entry_id)
    .where(
        recordings.c.drive_id == bindparam("q_drive"),
        recordings.c.starts_at >= bindparam("q_from"),
        recordings.c.starts_at < _hi,
        or_(recordings.c.starts_at >= _lo, recordings.c.ends_at > _lo),
    )
    .order_by(recordings.c.starts_at, recordings.c.channel, recordings.c.entry_id)
)


def day(engine: Engine, drive_id: int, on: date, tz: str | ZoneInfo) -> list[Event]:
    """The recordings of drive `drive_id` that overlap local day `on`, in one query."""
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    lo = datetime.combine(on, time())
    params: dict[str, Any] = {
        "q_drive": drive_id,
        "q_from": lo - MAX_CLIP,
        "q_lo": lo,
        "q_hi": lo + timedelta(days=1),
    }
    with reader(engine).connect() as conn:
        rows = conn.execute(_DAY, params).all()
    return [
        Event(
            r.entry_id,
            r.channel,
            r.kind,
            _aware(r.starts_at, zone),
            _aware(r.ends_at, zone),
            r.is_snapshot,
            r.path,
            r.size,
        )
        for r in rows
    ]


def _aware(local: datetime, zone: ZoneInfo) -> datetime:
    """A recorder's wall-clock time in its zone (the first of a repeated DST hour)."""
    return local.replace(tzinfo=None).replace(tzinfo=zone)


# --- files committed before the index ----------------------------------------

_r = recordings.alias("r")
# a file's row, unless it was renamed, deleted or indexed since it was read
_BACKFILL = (
    insert(recordings)
    .from_select(
        ["entry_id", "drive_id", "channel", "kind", "starts_at", "ends_at", "is_snapshot"],
        select(
            bindparam("entry_id", type_=recordings.c.entry_id.type),
            bindparam("drive_id", type_=recordings.c.drive_id.type),
            bindparam("channel", type_=recordings.c.channel.type),
            bindparam("kind", type_=recordings.c.kind.type),
            bindparam("starts_at", type_=recordings.c.starts_at.type),
            bindparam("ends_at", type_=recordings.c.ends_at.type),
            bindparam("is_snapshot", type_=recordings.c.is_snapshot.type),
        ).where(
            exists().where(
                entries.c.id == bindparam("entry_id"), entries.c.path == bindparam("q_path")
            ),
            ~exists().where(_r.c.entry_id == bindparam("entry_id")),
        ),
    )
    .returning(recordings.c.entry_id)
)  # rowcount is -1 for it on psycopg


def backfill(engine: Engine, drive_ids: list[int] | None = None, batch: int = 2000) -> int:
    """Index the recordings of files committed before this index existed; the
    number added. Safe while gateways run, and again: a file renamed, deleted
    or indexed since it was read is left as it is."""
    added, last = 0, 0
    while True:
        query = (
            select(entries.c.id, entries.c.drive_id, entries.c.path)
            .outerjoin(recordings, recordings.c.entry_id == entries.c.id)
            .where(
                entries.c.is_dir.is_(False),
                recordings.c.entry_id.is_(None),
                entries.c.id > last,
            )
            .order_by(entries.c.id)
            .limit(batch)
        )
        if drive_ids:
            query = query.where(entries.c.drive_id.in_(drive_ids))
        with reader(engine).connect() as conn:
            rows = conn.execute(query).all()
        if not rows:
            return added
        last = rows[-1].id
        found = [
            {**rec.row(r.id, r.drive_id), "q_path": r.path}
            for r in rows
            if (rec := parse(r.path)) is not None
        ]
        if not found:
            continue
        try:
            with engine.begin() as conn:
                added += sum(_add(conn, one) for one in found)
        except IntegrityError:  # a file deleted meanwhile: each on its own
            for one in found:
                try:
                    with engine.begin() as conn:
                        added += _add(conn, one)
                except IntegrityError:
                    pass


def _add(conn: Connection, row: dict[str, Any]) -> int:
    return 0 if conn.execute(_BACKFILL, row).first() is None else 1


# --- what a customer may open -----------------------------------------------


@dataclass(frozen=True)
class DeviceDrive:
    device_id: int
    drive_id: int
    timezone: str | None  # None: settings.device_timezone


@dataclass(frozen=True)
class Media:
    """A recording's object, reached through its owner's device."""

    entry_id: int
    device_id: int
    key: str
    name: str
    size: int
    is_snapshot: bool


def device_drive(engine: Engine, customer_id: int, device_id: int) -> DeviceDrive | None:
    """The drive of `device_id` if `customer_id` owns it, else None (the caller's 404)."""
    with reader(engine).connect() as conn:
        row = conn.execute(
            select(devices.c.id, drives.c.id.label("drive_id"), devices.c.timezone)
            .join(drives, drives.c.device_id == devices.c.id)
            .where(devices.c.id == device_id, devices.c.customer_id == customer_id)
        ).first()
    return DeviceDrive(row.id, row.drive_id, row.timezone) if row is not None else None


def media(engine: Engine, customer_id: int, entry_id: int) -> Media | None:
    """Recording `entry_id` if it lies on a drive of `customer_id`'s devices, else None."""
    with reader(engine).connect() as conn:
        row = conn.execute(
            select(
                entries.c.id,
                devices.c.id.label("device_id"),
                entries.c.key,
                entries.c.name,
                entries.c.size,
                recordings.c.is_snapshot,
            )
            .join(recordings, recordings.c.entry_id == entries.c.id)
            .join(drives, drives.c.id == entries.c.drive_id)
            .join(devices, devices.c.id == drives.c.device_id)
            .where(entries.c.id == entry_id, devices.c.customer_id == customer_id)
        ).first()
    if row is None or row.key is None:
        return None
    return Media(row.id, row.device_id, row.key, row.name, row.size, row.is_snapshot)
