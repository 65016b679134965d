"""Recordings outlive the database: objects carry their names, renames are
recorded in the bucket, and fsck rebuilds a lost index from the bucket alone."""

from __future__ import annotations

import ftplib
import io
import os

from sqlalchemy import delete, update

from billing.core.models import Drive, DriveEntry
from gateway.fsck import check_drives
from gateway.names import from_metadata, name_key, parse_record
from tests.support.stack import DeviceLogin, MiB, Stack, put, record_clip

CLIP = "2026-11-22/001/dav/10/10.00.00-10.05.00[M][0@0][0].mp4"
SNAP = "2026-11-22/001/jpg/10/00/05[M][0@0][0].jpg"
NAMED = "Cámara entrada/imagen 1.jpg"  # not ASCII: S3 metadata is


def _record_session(stack: Stack, dev: DeviceLogin) -> dict[str, bytes]:
    """A recorder's morning: a snapshot, a streamed clip sent as `name_` and
    renamed, a buffered upload of unknown size, a non-ASCII name, a folder
    renamed and a file deleted. What the drive should hold: path -> bytes."""
    clip, big, snap = os.urandom(2 * MiB), os.urandom(6 * MiB), os.urandom(70_000)
    with stack.ftp(dev) as ftp:
        ftp.voidcmd("TYPE I")
        for folder in ("2026-11-22", "2026-11-22/001", "2026-11-22/001/dav"):
            ftp.mkd(folder)
        put(ftp, SNAP, snap)
        record_clip(ftp, CLIP, clip)
        put(ftp, "big.dav", big)  # no ALLO: buffered, multipart
        put(ftp, NAMED, b"jpeg bytes")
        put(ftp, "old/a.jpg", b"a")
        put(ftp, "old/b.jpg", b"bb")
        ftp.rename("old", "new")  # a folder: every file in it moves
        put(ftp, "gone.jpg", b"deleted later")
        ftp.delete("gone.jpg")
    return {
        SNAP: snap,
        CLIP: clip,
        "big.dav": big,
        NAMED: b"jpeg bytes",
        "new/a.jpg": b"a",
        "new/b.jpg": b"bb",
    }


def _files(stack: Stack, dev: DeviceLogin) -> dict[str, tuple[str, int]]:
    return {p: (e.key, e.size) for p, e in stack.entries(dev).items() if not e.is_dir}  # type: ignore[misc]


def test_each_object_says_what_it_is(stack: Stack) -> None:
    """Drive, device and upload path ride on every object (put, streamed,
    multipart); a rename leaves a name record, which goes with the object."""
    dev = stack.device()
    _record_session(stack, dev)
    files = _files(stack, dev)
    for path in (SNAP, "big.dav", NAMED):
        naming = from_metadata(stack.store.head(files[path][0]))
        assert naming is not None, path
        assert (naming.drive_id, naming.device_id, naming.path) == (
            dev.drive_id,
            dev.device_id,
            path,
        )
    clip_key = files[CLIP][0]
    assert from_metadata(stack.store.head(clip_key)).path == CLIP + "_"  # type: ignore[union-attr]
    record = parse_record(stack.store.open_range(name_key(clip_key)).read())
    assert record is not None and record.path == CLIP
    for path in ("new/a.jpg", "new/b.jpg"):
        assert parse_record(stack.store.open_range(name_key(files[path][0])).read()).path == path  # type: ignore[union-attr]
    with stack.ftp(dev) as ftp:
        ftp.delete(CLIP)
    assert name_key(clip_key) not in dict(stack.store.list_keys(dev.prefix))
    stack.assert_consistent(dev)


def test_fsck_rebuilds_a_lost_index_from_the_bucket_alone(stack: Stack) -> None:
    dev = stack.device()
    expected = _record_session(stack, dev)
    before = _files(stack, dev)
    assert set(before) == set(expected)
    other = stack.device()
    with stack.ftp(other) as ftp:
        put(ftp, "untouched.jpg", b"x")
    # the index is lost: every row and counter of the drive
    with stack.engine.begin() as conn:
        conn.execute(delete(DriveEntry).where(DriveEntry.drive_id == dev.drive_id))  # type: ignore[arg-type]
        conn.execute(
            update(Drive)
            .where(Drive.id == dev.drive_id)  # type: ignore[arg-type]
            .values(committed_bytes=0, object_count=0)
        )
    [check] = check_drives(stack.engine, stack.store, [dev.drive_id])
    assert (check.count("orphan"), check.count("missing"), check.count("size")) == (6, 0, 0)
    assert not check.repaired and _files(stack, dev) == {}  # a check changes nothing
    [check] = check_drives(stack.engine, stack.store, [dev.drive_id], repair=True)
    assert check.repaired
    assert _files(stack, dev) == before  # every recording, under its latest name
    for path, data in expected.items():
        assert stack.store.open_range(before[path][0]).read() == data
    stack.assert_consistent(dev)
    checks = check_drives(stack.engine, stack.store, [dev.drive_id, other.drive_id])
    assert [c.clean for c in checks] == [True, True]
    stack.assert_consistent(other)


def test_fsck_reports_and_repairs_missing_objects_and_wrong_sizes(stack: Stack) -> None:
    dev = stack.device()
    with stack.ftp(dev) as ftp:
        put(ftp, "kept.jpg", b"12345")
        put(ftp, "lost.jpg", b"lost")
        put(ftp, "taken.jpg", b"newer")
    files = _files(stack, dev)
    stack.store.delete([files["lost.jpg"][0]])  # gone from the bucket
    with stack.engine.begin() as conn:
        conn.execute(
            update(DriveEntry)
            .where(DriveEntry.key == files["kept.jpg"][0])  # type: ignore[arg-type]
            .values(size=99)
        )
    # an object the index does not know, whose name another file holds now
    orphan = f"{dev.prefix}{'ab' * 16}"
    meta = {"c2d-drive": str(dev.drive_id), "c2d-device": str(dev.device_id)}
    stack.store.put(orphan, bytearray(b"older"), {**meta, "c2d-path": "taken.jpg"})
    nameless = f"{dev.prefix}{'cd' * 16}"
    stack.store.put(nameless, bytearray(b"who am i"))  # no metadata at all
    [check] = check_drives(stack.engine, stack.store, [dev.drive_id])
    kinds = sorted((f.kind, f.path or "") for f in check.findings)
    assert kinds == [
        ("missing", "lost.jpg"),
        ("orphan", ""),  # no name at all
        ("orphan", "taken.jpg"),
        ("size", "kept.jpg"),
    ]
    check_drives(stack.engine, stack.store, [dev.drive_id], repair=True)
    after = _files(stack, dev)
    assert after["kept.jpg"][1] == 5 and "lost.jpg" not in after
    assert after["taken.jpg"][0] == files["taken.jpg"][0]  # the indexed file keeps its name
    assert after[f"lost+found/taken.{'ab' * 4}.jpg"][0] == orphan  # nothing is lost
    assert after[f"lost+found/{'cd' * 16}"][0] == nameless
    stack.assert_consistent(dev)


def test_a_rename_the_bucket_cannot_record_is_refused_and_changes_nothing(ostack: Stack) -> None:
    dev = ostack.device()
    with ostack.ftp(dev) as ftp:
        put(ftp, "a.jpg_", b"snapshot")
        ostack.seaweed.stop()
        try:
            try:
                ftp.rename("a.jpg_", "a.jpg")
                raise AssertionError("rename acknowledged without its name record")
            except ftplib.error_temp as err:
                assert str(err).startswith("451")
        finally:
            ostack.seaweed.start()
        assert ftp.nlst() == ["a.jpg_"]
        ftp.rename("a.jpg_", "a.jpg")
        assert ftp.nlst() == ["a.jpg"]
        data = io.BytesIO()
        ftp.retrbinary("RETR a.jpg", data.write)
    assert data.getvalue() == b"snapshot"
    ostack.assert_consistent(dev)
