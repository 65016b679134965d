"""The recordings index follows the drive index: commit, replace, rename, delete, rotate."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import delete, func, select, update

from billing.core.models import Drive, DriveEntry, Recording
from gateway.fsck import check_drives
from gateway.recordings import backfill, day
from tests.support.recordings import mkdirs, upload
from tests.support.stack import DeviceLogin, Stack, put

TZ = "America/Mexico_City"
DAY = "2026-12-06"
CLIP = f"{DAY}/001/dav/15/15.00.00-15.05.00[M][0@0][0].dav"
NIGHT = f"{DAY}/001/dav/23/23.59.59-00.00.30[A][0@0][0].dav"
SNAP = f"{DAY}/001/jpg/15/02/33[I][0@0][0].jpg"


def rows(stack: Stack, dev: DeviceLogin) -> int:
    table = Recording.__table__  # type: ignore[attr-defined]
    with stack.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(table).where(table.c.drive_id == dev.drive_id)
            ).scalar_one()
        )


def timeline(stack: Stack, dev: DeviceLogin, on: str = DAY) -> list[tuple[str, int, str, str]]:
    return [
        (e.path, e.channel, e.kind, e.start.strftime("%H:%M:%S"))
        for e in day(stack.engine, dev.drive_id, date.fromisoformat(on), TZ)
    ]


def test_commits_fill_a_day(stack: Stack) -> None:
    dev = stack.device()
    with stack.ftp(dev) as ftp:
        for path in (NIGHT, CLIP, SNAP):
            upload(ftp, path)
        put(ftp, "DVRWorkDirectory", b"")  # not a recording: no row
        mkdirs(ftp, f"{DAY}/001/dav/15/x")
        put(ftp, CLIP.replace(".dav", ".idx"), b"i")
    assert timeline(stack, dev) == [
        (CLIP, 1, "M", "15:00:00"),
        (SNAP, 1, "I", "15:02:33"),
        (NIGHT, 1, "A", "23:59:59"),
    ]
    # the clip crossing midnight is on the next day too, and only it
    assert timeline(stack, dev, "2026-12-07") == [(NIGHT, 1, "A", "23:59:59")]
    assert timeline(stack, dev, "2026-12-05") == []
    [night] = [e for e in day(stack.engine, dev.drive_id, date(2026, 12, 7), TZ)]
    assert night.end - night.start == timedelta(seconds=31)
    assert night.start.utcoffset() == timedelta(hours=-6)  # the device's zone
    assert night.start == datetime.fromisoformat("2026-12-06T23:59:59-06:00")
    assert not night.is_snapshot
    assert rows(stack, dev) == 3
    stack.assert_consistent(dev)


def test_replace_rename_delete(stack: Stack) -> None:
    dev = stack.device()
    with stack.ftp(dev) as ftp:
        upload(ftp, SNAP)
        upload(ftp, CLIP)
        put(ftp, SNAP, b"y" * 50)  # replaced: one row, the new file's
        assert rows(stack, dev) == 2
        # renamed to a name that says another time, then to one that says nothing
        moved = CLIP.replace("15.00.00-15.05.00", "16.00.00-16.01.00")
        ftp.rename(CLIP, moved)
        assert (moved, 1, "M", "16:00:00") in timeline(stack, dev)
        ftp.rename(moved, f"{DAY}/001/dav/15/notes.txt")
        assert [p for p, *_ in timeline(stack, dev)] == [SNAP]
        ftp.rename(f"{DAY}/001/dav/15/notes.txt", CLIP)
        # a channel folder renamed: its files now say channel 2
        ftp.rename(f"{DAY}/001", f"{DAY}/002")
        assert sorted(timeline(stack, dev)) == [
            (CLIP.replace("/001/", "/002/"), 2, "M", "15:00:00"),
            (SNAP.replace("/001/", "/002/"), 2, "I", "15:02:33"),
        ]
        ftp.delete(SNAP.replace("/001/", "/002/"))
        assert [p for p, *_ in timeline(stack, dev)] == [CLIP.replace("/001/", "/002/")]
    assert rows(stack, dev) == 1
    stack.assert_consistent(dev)


def test_rotation_takes_the_oldest_recordings(stack: Stack) -> None:
    dev = stack.device(capacity="1000B", on_full="rotate")
    with stack.ftp(dev) as ftp:
        for minute in range(5):
            upload(ftp, f"{DAY}/001/jpg/10/{minute:02d}/00[M][0@0][0].jpg", b"j" * 300)
    starts = [start for *_, start in timeline(stack, dev)]
    assert starts == ["10:02:00", "10:03:00", "10:04:00"]
    assert rows(stack, dev) == 3
    stack.assert_consistent(dev)


def test_fsck_puts_a_lost_index_back_on_the_timeline(stack: Stack) -> None:
    dev = stack.device()
    with stack.ftp(dev) as ftp:
        for path in (CLIP, SNAP):
            upload(ftp, path)
    before = timeline(stack, dev)
    with stack.engine.begin() as conn:  # the index is lost, its recordings with it
        conn.execute(delete(DriveEntry).where(DriveEntry.drive_id == dev.drive_id))  # type: ignore[arg-type]
        conn.execute(
            update(Drive)
            .where(Drive.id == dev.drive_id)  # type: ignore[arg-type]
            .values(committed_bytes=0, object_count=0)
        )
    assert rows(stack, dev) == 0
    [check] = check_drives(stack.engine, stack.store, [dev.drive_id], repair=True)
    assert check.repaired
    assert timeline(stack, dev) == before
    stack.assert_consistent(dev)


def test_backfill_indexes_files_committed_before_the_index(stack: Stack) -> None:
    dev = stack.device()
    other = stack.device()
    with stack.ftp(dev) as ftp:
        for path in (NIGHT, CLIP, SNAP):
            upload(ftp, path)
        put(ftp, "DVRWorkDirectory", b"")
    with stack.ftp(other) as ftp:
        upload(ftp, CLIP)
    before = timeline(stack, dev)
    table = Recording.__table__  # type: ignore[attr-defined]
    with stack.engine.begin() as conn:  # as after the upgrade: files, no recordings
        conn.execute(delete(table).where(table.c.drive_id.in_([dev.drive_id, other.drive_id])))
    assert backfill(stack.engine, [dev.drive_id]) == 3
    assert timeline(stack, dev) == before
    assert rows(stack, other) == 0  # only the drives asked for
    assert backfill(stack.engine, [dev.drive_id, other.drive_id]) == 1
    assert backfill(stack.engine) == 0  # again: nothing left to add
