"""Losing the database: Litestream's copy in the bucket, `db restore`, then
`drive fsck --repair` from the bucket alone. Zero recordings lost or unnamed."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from billing.core.db import make_engine
from billing.core.schema import upgrade
from cli.devstack.seaweed import SeaweedServer
from cli.litestream import Replication, restore
from gateway.names import is_name_key
from tests.support.stack import MiB, Stack, put, record_clip
from tests.support.wait import wait_for

pytestmark = pytest.mark.process  # runs Litestream and the cam2drive command

BIN = str(Path(sys.executable).parent / "cam2drive")


def _paths_in(db: Path) -> set[str]:
    """The file paths a database file indexes (read with sqlite3, as a copy)."""
    if not db.exists():
        return set()
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute("SELECT path FROM drive_entries WHERE NOT is_dir")}


def _copied(stack: Stack, probe: Path, paths: set[str]) -> bool:
    """Whether Litestream's copy in the bucket already indexes `paths`."""
    try:
        restore(stack.settings, output=probe, force=True)
    except Exception:  # noqa: BLE001  (no copy yet)
        return False
    return paths <= _paths_in(probe)


def test_the_database_lost_mid_session_comes_back_whole(
    seaweed: SeaweedServer, tmp_path: Path
) -> None:
    db = tmp_path / "var" / "cam2drive.db"
    url = f"sqlite:///{db}"
    upgrade(url)
    stack = Stack(url, seaweed, "c2d-recovery", litestream_sync_interval=0.2)
    replication = Replication(stack.settings, tmp_path / "litestream.log").start()
    dev = stack.device()
    clip, later_clip = os.urandom(2 * MiB), os.urandom(MiB + 7)
    expected = {
        "2026-11-22/001/jpg/05[M][0@0][0].jpg": b"first snapshot",
        "2026-11-22/001/dav/10.00.00-10.05.00.mp4": clip,
        "2026-11-22/001/dav/10.05.00-10.10.00.mp4": later_clip,
        "2026-11-22/001/jpg/10[M][0@0][0].jpg": b"after the copy",
        "renamed after the copy.jpg": b"renamed",
    }
    try:
        ftp = stack.ftp(dev)
        ftp.voidcmd("TYPE I")
        put(ftp, "2026-11-22/001/jpg/05[M][0@0][0].jpg", b"first snapshot")
        record_clip(ftp, "2026-11-22/001/dav/10.00.00-10.05.00.mp4", clip)
        put(ftp, "to rename.jpg", b"renamed")
        put(ftp, "deleted after the copy.jpg", b"x")
        wait_for(
            lambda: _copied(stack, tmp_path / "probe.db", {"to rename.jpg"}),
            timeout=60,
            what="Litestream's copy",
        )
        replication.stop()  # from here on, the bucket alone knows
        put(ftp, "2026-11-22/001/jpg/10[M][0@0][0].jpg", b"after the copy")
        record_clip(ftp, "2026-11-22/001/dav/10.05.00-10.10.00.mp4", later_clip)
        ftp.rename("to rename.jpg", "renamed after the copy.jpg")
        ftp.delete("deleted after the copy.jpg")
        # mid-session, the database is lost
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        ftp.close()
    finally:
        replication.stop()
        stack.close()

    env = {
        **os.environ,
        **seaweed.env(),
        "CAM2DRIVE_DATABASE_URL": url,
        "CAM2DRIVE_S3_BUCKET": "c2d-recovery",
    }

    def cam2drive(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([BIN, *args], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done

    assert "restored the database" in cam2drive("db", "restore").stdout
    assert "deleted after the copy.jpg" in _paths_in(db)  # the copy is a second behind
    report = json.loads(cam2drive("drive", "fsck", "--repair", "--json").stdout)
    [mine] = [d for d in report["drives"] if d["drive_id"] == dev.drive_id]
    # two recordings after the copy, one rename after it, one deleted after it
    assert (mine["orphans"], mine["renamed"], mine["missing"]) == (2, 1, 1)
    assert mine["repaired"]
    again = json.loads(cam2drive("drive", "fsck", "--json").stdout)  # exit 0: clean now
    assert [d["findings"] for d in again["drives"]] == [[]]

    check = Stack(url, seaweed, "c2d-recovery")
    try:
        files = {p: e for p, e in check.entries(dev).items() if not e.is_dir}
        assert set(files) == set(expected)  # nothing lost, nothing unnamed, nothing stale
        for path, data in expected.items():
            assert check.store.open_range(files[path].key).read() == data
        check.assert_consistent(dev)
        names = [k for k, _ in check.store.list_keys(dev.prefix) if is_name_key(k)]
        assert names  # the renames' records
    finally:
        check.close()
        make_engine(url).dispose()
