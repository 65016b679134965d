"""Exact quotas: reject and rotate at the edge, oversize files, racing uploads."""

from __future__ import annotations

import ftplib
import os
import threading

import pytest

from billing.core.db import make_engine
from billing.core.errors import QuotaExceeded
from billing.core.settings import Settings
from billing.entitlement import upload_entitlement
from gateway.ingest import IngestPipeline
from tests.support.stack import MiB, Stack, put


def test_reject_at_the_edge(stack: Stack) -> None:
    dev = stack.device(capacity="1000B", on_full="reject")
    with stack.ftp(dev) as ftp:
        put(ftp, "a", b"x" * 600)
        put(ftp, "b", b"x" * 400)  # exactly full
        with pytest.raises(ftplib.error_perm, match="^552 Drive is full"):
            put(ftp, "c", b"x")
        assert sorted(ftp.nlst()) == ["a", "b"]
        ftp.delete("a")
        put(ftp, "c", b"x" * 600)
    assert stack.drive(dev).committed_bytes == 1000
    stack.assert_consistent(dev)


def test_rotate_deletes_oldest_first(stack: Stack) -> None:
    dev = stack.device(capacity="1000B", on_full="rotate")
    with stack.ftp(dev) as ftp:
        ftp.mkd("d")
        for i in range(5):
            put(ftp, f"d/{i}.jpg", bytes([i]) * 200)
        put(ftp, "d/5.jpg", b"5" * 300)  # needs 300: 0.jpg and 1.jpg go
        assert sorted(ftp.nlst("d")) == ["2.jpg", "3.jpg", "4.jpg", "5.jpg"]
        assert ftp.size("d/2.jpg") == 200
    drive = stack.drive(dev)
    assert drive.committed_bytes == 900
    stack.assert_consistent(dev)


def test_rotate_with_multipart_file(stack: Stack) -> None:
    dev = stack.device(capacity=f"{16 * MiB}B", on_full="rotate")
    old = [os.urandom(4 * MiB) for _ in range(3)]
    with stack.ftp(dev) as ftp:
        for i, data in enumerate(old):
            put(ftp, f"old{i}", data)
        put(ftp, "new", os.urandom(11 * MiB))  # parts of 5 MiB rotate old files out
        assert sorted(ftp.nlst()) == ["new", "old2"]
    stack.assert_consistent(dev)


@pytest.mark.parametrize("on_full", ["reject", "rotate"])
def test_file_larger_than_drive_is_552(stack: Stack, on_full: str) -> None:
    dev = stack.device(capacity=f"{6 * MiB}B", on_full=on_full)
    with stack.ftp(dev) as ftp:
        put(ftp, "keep", b"k" * 100)
        with pytest.raises(ftplib.error_perm, match="^552 .*larger than the whole drive"):
            put(ftp, "huge", os.urandom(7 * MiB))
        # announced by ALLO: refused before any byte is sent
        ftp.sendcmd(f"ALLO {7 * MiB}")
        with pytest.raises(ftplib.error_perm, match="^552"):
            put(ftp, "huge", b"")
        assert ftp.nlst() == ["keep"]  # rotate did not sacrifice anything for it
    stack.assert_consistent(dev)


def test_racing_uploads_never_overshoot(stack: Stack) -> None:
    """Many clients race for the last bytes of a drive: never above capacity."""
    dev = stack.device(capacity="10000B", on_full="reject")
    results: list[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        with stack.ftp(dev) as ftp:
            for i in range(5):
                try:
                    resp = put(ftp, f"c{n}-{i}", os.urandom(700))
                except ftplib.error_perm as exc:
                    resp = str(exc)
                with lock:
                    results.append(resp[:3])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("226") == 10000 // 700  # 14 fit, 16 are refused
    assert results.count("552") == 30 - 14
    drive = stack.drive(dev)
    assert drive.committed_bytes == 14 * 700 <= drive.capacity_bytes
    stack.assert_consistent(dev)


def test_two_pipelines_race_on_one_database(stack: Stack) -> None:
    """Two gateway nodes (own engines and pipelines) share one drive's last bytes."""
    dev = stack.device(capacity=f"{12 * MiB}B", on_full="reject")
    nodes = []
    for name in ("node-a", "node-b"):
        st = Settings(**{**stack.settings.model_dump(), "node_name": name})
        nodes.append(IngestPipeline(st, make_engine(st.database_url), stack.store))
    outcomes: list[str] = []

    def upload(pipeline: IngestPipeline, i: int) -> None:
        ent = upload_entitlement(pipeline.engine, dev.device_id)
        up = pipeline.start(ent, f"f{i}")
        try:
            for _ in range(2):
                up.write(os.urandom(3 * MiB))
            up.commit()
            outcomes.append("ok")
        except QuotaExceeded:
            up.abort()
            outcomes.append("full")

    threads = [threading.Thread(target=upload, args=(nodes[i % 2], i)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 2 and outcomes.count("full") == 2
    assert stack.drive(dev).committed_bytes == 12 * MiB
    stack.assert_consistent(dev)


def test_many_uploads_create_the_same_new_folder_at_once(stack: Stack) -> None:
    """Eight channels start a new day together: every file lands, one folder row each."""
    dev = stack.device(capacity="1GB")
    barrier = threading.Barrier(8)
    results: list[str] = []

    def channel(n: int) -> None:
        ent = upload_entitlement(stack.engine, dev.device_id)
        up = stack.pipeline.start(ent, f"NVR/2026-12-01/{n:03d}.jpg")
        up.write(b"x" * 1000)
        barrier.wait()
        try:
            up.commit()
            results.append("ok")
        except Exception as exc:  # noqa: BLE001 - the assertion below shows it
            results.append(repr(exc))

    threads = [threading.Thread(target=channel, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["ok"] * 8
    entries = stack.entries(dev)
    assert [p for p, e in entries.items() if e.is_dir] in (
        ["NVR", "NVR/2026-12-01"],
        ["NVR/2026-12-01", "NVR"],
    )
    stack.assert_consistent(dev)


def test_a_process_never_opens_more_connections_than_its_pool(stack: Stack) -> None:
    """Twelve sessions writing at once through a pool of two: they queue for a
    connection instead of each opening (and closing) one of their own."""
    from sqlalchemy import event

    engine = make_engine(stack.settings.database_url, pool_size=2)
    opened: list[object] = []
    event.listen(engine, "connect", lambda conn, _rec: opened.append(conn))
    pipeline = IngestPipeline(stack.settings, engine, stack.store)
    dev = stack.device()
    ent = upload_entitlement(engine, dev.device_id)
    errors: list[BaseException] = []

    def session(i: int) -> None:
        try:
            for n in range(5):
                upload = pipeline.start(ent, f"s{i}/{n}.jpg")
                upload.write(os.urandom(1000))
                upload.commit()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(opened) <= 2
    assert stack.drive(dev).object_count == 60
    stack.assert_consistent(dev)
    engine.dispose()


def test_a_recorders_usual_folder_and_file_are_one_statement_each(stack: Stack) -> None:
    """A new minute folder, the same folder again and a file committed into it:
    on PostgreSQL each is one statement outside a transaction block (no
    BEGIN / COMMIT round trips holding a pooled connection), with the same
    outcomes as the transactional path SQLite and missing parents take."""
    from sqlalchemy import event

    from billing.core.errors import AlreadyExists, IsADirectory

    dev = stack.device()
    ledger = stack.pipeline.ledger
    assert ledger.mkdir(dev.drive_id, "day/001") is True  # mkdir -p: the transactional path
    sent: list[bool] = []  # per statement: was the connection in autocommit?

    def statement(conn, cursor, stmt, *args) -> None:  # type: ignore[no-untyped-def]
        sent.append(bool(getattr(conn.connection.driver_connection, "autocommit", False)))

    def trips(step):  # type: ignore[no-untyped-def]
        sent.clear()
        result = step()
        return result, list(sent)

    def commit(path: str, key: str, size: int) -> tuple[object, list[bool]]:
        """A reservation for `key`, then its commit to `path` alone through `trips`."""
        rid = ledger.open_reservation(dev.drive_id, f"{dev.prefix}{key}", size, dev.device_id)
        return trips(lambda: ledger.commit(rid, dev.drive_id, path, f"{dev.prefix}{key}", size))  # type: ignore[arg-type]

    event.listen(stack.engine, "before_cursor_execute", statement)
    try:
        new = trips(lambda: ledger.mkdir(dev.drive_id, "day/001/jpg"))
        again = trips(lambda: ledger.mkdir(dev.drive_id, "day/001/jpg"))
        first = commit("day/001/jpg/a.jpg", "a", 5)
        replace = commit("day/001/jpg/a.jpg", "b", 7)
        commit("day/001/jpg/c.mp4_", "c", 2)
        rename = trips(
            lambda: ledger.rename(dev.drive_id, "day/001/jpg/c.mp4_", "day/001/jpg/c.mp4")
        )
    finally:
        event.remove(stack.engine, "before_cursor_execute", statement)
    assert (new[0], again[0], first[0], replace[0], rename[0]) == (
        True,
        False,
        None,
        f"{dev.prefix}a",
        None,
    )
    if stack.engine.dialect.name == "postgresql":
        assert [new[1], again[1], first[1], replace[1], rename[1]] == [[True]] * 5
    drive = stack.drive(dev)
    assert (drive.committed_bytes, drive.reserved_bytes, drive.object_count) == (9, 0, 2)
    # a file where a folder is asked for, a folder where a file is committed:
    # refused, and nothing changes (the reservation stays for the caller's abort)
    with pytest.raises(AlreadyExists, match="exists and is a file"):
        ledger.mkdir(dev.drive_id, "day/001/jpg/a.jpg")
    rid = ledger.open_reservation(dev.drive_id, f"{dev.prefix}d", 3, dev.device_id)
    with pytest.raises(IsADirectory):
        ledger.commit(rid, dev.drive_id, "day/001/jpg", f"{dev.prefix}d", 3)  # type: ignore[arg-type]
    drive = stack.drive(dev)
    assert (drive.committed_bytes, drive.reserved_bytes, drive.object_count) == (9, 3, 2)
    ledger.release(rid)  # type: ignore[arg-type]
    assert {p: e.is_dir for p, e in stack.entries(dev).items()} == {
        "day": True,
        "day/001": True,
        "day/001/jpg": True,
        "day/001/jpg/a.jpg": False,
        "day/001/jpg/c.mp4": False,
    }
    stack.store.put(f"{dev.prefix}b", bytearray(7))  # the ledger alone stores no bytes
    stack.store.put(f"{dev.prefix}c", bytearray(2))
    stack.assert_consistent(dev)
