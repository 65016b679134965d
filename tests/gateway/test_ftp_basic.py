"""FTP commands a recorder or an installer uses, against a live gateway."""

from __future__ import annotations

import ftplib
import io
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cli.devstack.seaweed import SeaweedServer
from tests.support.stack import MiB, Stack, put, stack_with


def get(ftp: ftplib.FTP, path: str, rest: int | None = None) -> bytes:
    buf = io.BytesIO()
    ftp.retrbinary(f"RETR {path}", buf.write, rest=rest)
    return buf.getvalue()


def test_store_small_and_multipart_files(stack: Stack) -> None:
    dev = stack.device()
    small, big = os.urandom(200_000), os.urandom(12 * MiB + 123)
    with stack.ftp(dev) as ftp:
        assert put(ftp, "snap.jpg", small).startswith("226")
        assert put(ftp, "clip.dav", big).startswith("226")
        assert get(ftp, "snap.jpg") == small
        assert get(ftp, "clip.dav") == big
        assert ftp.size("clip.dav") == len(big)
    drive = stack.drive(dev)
    assert drive.committed_bytes == len(small) + len(big)
    assert drive.object_count == 2
    stack.assert_consistent(dev)


def test_snapshot_goes_out_in_one_request_without_expect_continue(stack: Stack) -> None:
    """A snapshot's PutObject carries its body in one send, not after an
    `Expect: 100-continue` round trip (what botocore does for a bytes body)."""
    sent: list[tuple[str, Any, Any]] = []

    def record(request: Any, **_: Any) -> None:
        sent.append((request.method, request.headers.get("Expect"), type(request.body)))

    events = stack.pipeline.store.client.meta.events
    events.register("before-send.s3.PutObject", record)
    try:
        dev = stack.device()
        with stack.ftp(dev) as ftp:
            assert put(ftp, "snap.jpg", os.urandom(150_000)).startswith("226")
    finally:
        events.unregister("before-send.s3.PutObject", record)
    assert sent == [("PUT", None, bytearray)]


def test_empty_file(stack: Stack) -> None:
    dev = stack.device()
    with stack.ftp(dev) as ftp:
        assert put(ftp, "DVRWorkDirectory", b"").startswith("226")
        assert ftp.size("DVRWorkDirectory") == 0
    stack.assert_consistent(dev)


def test_mkd_chain_cwd_pwd_and_existing_directory(stack: Stack) -> None:
    dev = stack.device()
    with stack.ftp(dev) as ftp:
        assert ftp.pwd() == "/"
        with pytest.raises(ftplib.error_perm, match="^550"):
            ftp.cwd("2026-11-22")
        for level in ("2026-11-22", "001", "dav", "21"):
            try:
                ftp.cwd(level)
            except ftplib.error_perm:
                ftp.mkd(level)
                ftp.cwd(level)
        assert ftp.pwd() == "/2026-11-22/001/dav/21"
        # creating an existing directory succeeds (XMKD too): the chain never breaks
        assert ftp.sendcmd("MKD /2026-11-22/001").startswith("257")
        assert ftp.sendcmd("XMKD /2026-11-22").startswith("257")
        ftp.cwd("/")
        ftp.sendcmd("CDUP")
        assert ftp.pwd() == "/"


def test_directories_removed_under_a_recorder_never_break_its_chain(stack: Stack) -> None:
    """A session remembers directories it has seen (gateway/drive.py DIR_CACHE_TTL).

    Another session removing them must not break the recorder's next file:
    its CWD-fails-then-MKD chain and STOR still land the file, with its
    parents back in the index. The session's own removals are seen at once.
    """
    dev = stack.device()

    def chain(ftp: ftplib.FTP, path: str) -> None:  # what the firmware does per file
        ftp.cwd("/")
        for level in path.split("/"):
            try:
                ftp.cwd(level)
            except ftplib.error_perm:
                ftp.mkd(level)
                ftp.cwd(level)

    with stack.ftp(dev) as a, stack.ftp(dev) as b:
        chain(a, "day/001/jpg")
        put(a, "1.jpg", b"one")
        b.delete("/day/001/jpg/1.jpg")
        for gone in ("/day/001/jpg", "/day/001", "/day"):
            b.rmd(gone)
        chain(a, "day/001/jpg")
        assert put(a, "2.jpg", b"two").startswith("226")
        assert b.nlst("/day/001/jpg") == ["2.jpg"]
        entries = stack.entries(dev)
        assert {p for p, e in entries.items() if e.is_dir} == {"day", "day/001", "day/001/jpg"}
        # the session's own RMD is not remembered as a directory
        a.delete("2.jpg")
        a.cwd("/day/001/jpg")
        a.cwd("/day/001")
        a.rmd("jpg")
        with pytest.raises(ftplib.error_perm, match="^550"):
            a.cwd("jpg")
    stack.assert_consistent(dev)


def test_a_clip_rename_keeps_the_sessions_directories(stack: Stack) -> None:
    """Renaming a file (every clip: `name_` -> `name`) removes no directory, so
    the session's next CWD chain is answered from memory, without a database
    read; renaming a directory is seen by the same session at once."""
    from sqlalchemy import event

    dev = stack.device()
    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    with stack.ftp(dev) as ftp:
        for level in ("day", "001", "dav"):
            ftp.mkd(level)
            ftp.cwd(level)
        put(ftp, "c.mp4_", b"clip")
        ftp.rename("c.mp4_", "c.mp4")
        event.listen(stack.engine, "before_cursor_execute", count)
        try:
            for level in ("/", "day", "001", "dav"):
                ftp.cwd(level)
        finally:
            event.remove(stack.engine, "before_cursor_execute", count)
        assert statements == []
        ftp.cwd("/")
        ftp.rename("day/001", "day/002")
        with pytest.raises(ftplib.error_perm, match="^550"):
            ftp.cwd("/day/001/dav")
        ftp.cwd("/day/002/dav")
        assert ftp.nlst() == ["c.mp4"]
    stack.assert_consistent(dev)


def test_listings_with_brackets_and_at(stack: Stack) -> None:
    dev = stack.device()
    name = "21.04.49-21.05.14[M][0@0][0].mp4"
    with stack.ftp(dev) as ftp:
        ftp.mkd("2019-05-09")
        put(ftp, f"2019-05-09/{name}", b"x" * 1000)
        put(ftp, "2019-05-09/52[M][0@0][0].jpg", b"y" * 10)
        assert sorted(ftp.nlst("2019-05-09")) == [
            "21.04.49-21.05.14[M][0@0][0].mp4",
            "52[M][0@0][0].jpg",
        ]
        lines: list[str] = []
        ftp.retrlines("LIST 2019-05-09", lines.append)
        assert any(line.endswith(" " + name) and " 1000 " in line for line in lines)
        ftp.cwd("2019-05-09")
        lines = []
        ftp.retrlines("LIST -la", lines.append)
        assert len(lines) == 2
        facts = dict(ftp.mlsd("/2019-05-09"))
        assert facts[name]["type"] == "file" and facts[name]["size"] == "1000"
        assert ftp.sendcmd(f"MDTM {name}").startswith("213 20")
        root = dict(ftp.mlsd("/"))
        assert root["2019-05-09"]["type"] == "dir"


def test_dele_rmd(stack: Stack) -> None:
    dev = stack.device()
    with stack.ftp(dev) as ftp:
        ftp.mkd("a")
        put(ftp, "a/f.jpg", b"1234")
        with pytest.raises(ftplib.error_perm, match="550 .*not empty"):
            ftp.rmd("a")
        with pytest.raises(ftplib.error_perm, match="550 .*directory"):
            ftp.delete("a")
        ftp.delete("a/f.jpg")
        ftp.rmd("a")
        with pytest.raises(ftplib.error_perm, match="^550"):
            ftp.delete("a/f.jpg")
        assert ftp.nlst() == []
    stack.assert_consistent(dev)


def test_rename_is_server_side_and_counted_once(stack: Stack) -> None:
    """Amcrest/Dahua: STOR x.mp4_ then RNFR x.mp4_ / RNTO x.mp4."""
    dev = stack.device()
    data = os.urandom(6 * MiB)
    with stack.ftp(dev) as ftp:
        ftp.mkd("d")
        put(ftp, "d/x.mp4_", data)
        key_before = stack.entries(dev)["d/x.mp4_"].key
        ftp.rename("d/x.mp4_", "d/x.mp4")
        assert ftp.nlst("d") == ["x.mp4"]
        assert get(ftp, "d/x.mp4") == data
        # renaming onto an existing file replaces it, usage still counted once
        put(ftp, "d/y.mp4_", b"new")
        ftp.rename("d/y.mp4_", "d/x.mp4")
        assert get(ftp, "d/x.mp4") == b"new"
        # a directory tree moves too
        ftp.rename("d", "e")
        assert ftp.nlst("e") == ["x.mp4"]
        with pytest.raises(ftplib.error_perm, match="^503"):
            ftp.sendcmd("RNTO z")
        with pytest.raises(ftplib.error_perm, match="^550"):
            ftp.rename("nope", "z")
    entries = stack.entries(dev)
    assert entries["e/x.mp4"].size == 3
    assert key_before not in stack.s3_keys(dev)
    assert stack.drive(dev).committed_bytes == 3
    stack.assert_consistent(dev)


def test_store_onto_a_directory_is_refused(stack: Stack) -> None:
    dev = stack.device()
    with stack.ftp(dev) as ftp:
        ftp.mkd("dir")
        with pytest.raises(ftplib.error_perm, match="^550 /dir is a directory"):
            put(ftp, "dir", b"data")
        with pytest.raises(ftplib.error_perm, match="^550 / is a directory"):
            put(ftp, "/", b"data")
    stack.assert_consistent(dev)


def test_mkd_creates_missing_parents_and_names_the_file_in_the_way(stack: Stack) -> None:
    dev = stack.device()
    with stack.ftp(dev) as ftp:
        assert ftp.sendcmd("MKD /a/b/c").startswith('257 "/a/b/c" created')  # mkdir -p
        for level in ("/a", "/a/b", "/a/b/c"):
            ftp.cwd(level)
        assert ftp.sendcmd("MKD /a/b/c/d").startswith('257 "/a/b/c/d" created')  # a new leaf
        assert ftp.sendcmd("MKD /a/b").startswith('257 "/a/b" already exists')
        assert put(ftp, "/a/f.jpg", b"jpeg").startswith("226")
        with pytest.raises(ftplib.error_perm, match="^550 /a/f.jpg exists and is a file"):
            ftp.mkd("/a/f.jpg")
        with pytest.raises(ftplib.error_perm, match="^550 /a/f.jpg is a file, not a directory"):
            ftp.mkd("/a/f.jpg/x/y")
        with pytest.raises(ftplib.error_perm, match="^550 /a/f.jpg is a file, not a directory"):
            put(ftp, "/a/f.jpg/x/snap.jpg", b"jpeg")
        names = sorted(ftp.nlst("/a"))
    assert [n.rsplit("/", 1)[-1] for n in names] == ["b", "f.jpg"]
    assert stack.drive(dev).object_count == 1
    stack.assert_consistent(dev)


def test_overwrite_replaces_and_counts_once(stack: Stack) -> None:
    dev = stack.device()
    with stack.ftp(dev) as ftp:
        put(ftp, "f", b"a" * 100)
        put(ftp, "f", b"b" * 40)
        assert get(ftp, "f") == b"b" * 40
    assert stack.drive(dev).committed_bytes == 40
    stack.assert_consistent(dev)


def test_rest_retr_resumes_download(stack: Stack) -> None:
    dev = stack.device()
    data = os.urandom(300_000)
    with stack.ftp(dev) as ftp:
        put(ftp, "v.dav", data)
        assert get(ftp, "v.dav", rest=123_456) == data[123_456:]
        with pytest.raises(ftplib.error_perm, match="^554"):
            get(ftp, "v.dav", rest=len(data) + 1)


def test_allo_rest0_appe_and_rest_stor(stack: Stack) -> None:
    dev = stack.device()
    with stack.ftp(dev) as ftp:
        assert ftp.sendcmd("TYPE I").startswith("200")
        assert ftp.sendcmd("ALLO 5").startswith("200 ")
        assert ftp.sendcmd("REST 0").startswith("350")
        assert put(ftp, "a.mp4_", b"12345").startswith("226")
        with pytest.raises(ftplib.error_perm, match="^502 APPE"):
            ftp.storbinary("APPE a.mp4_", io.BytesIO(b"more"))
        ftp.sendcmd("REST 3")
        with pytest.raises(ftplib.error_perm, match="^554"):
            ftp.storbinary("STOR a.mp4_", io.BytesIO(b"45"))
        assert get(ftp, "a.mp4_") == b"12345"
        # EPSV works as well as PASV
        ftp.af = 10  # type: ignore[attr-defined]  (force EPSV in ftplib)
        assert put(ftp, "b", b"epsv").startswith("226")
    stack.assert_consistent(dev)


def test_passive_range_and_masquerade_address(db_url: str, seaweed: SeaweedServer) -> None:
    """PASV answers with the configured public address and a port from the range."""
    with stack_with(db_url, seaweed, ftp_masquerade_address="203.0.113.10") as stack:
        dev = stack.device()
        low, high = (int(p) for p in stack.settings.ftp_passive_ports.split("-"))
        with stack.ftp(dev) as ftp:
            resp = ftp.sendcmd("PASV")
            nums = [int(n) for n in resp[resp.index("(") + 1 : resp.index(")")].split(",")]
            assert nums[:4] == [203, 0, 113, 10]
            assert low <= nums[4] * 256 + nums[5] <= high
            epsv = ftp.sendcmd("EPSV")
            port = int(epsv.split("|")[3])
            assert low <= port <= high


def test_concurrent_pasv_on_a_narrow_range(db_url: str, seaweed: SeaweedServer) -> None:
    """Many sessions opening passive data channels at once never lose their session.

    pyftpdlib binds before it listens; two session threads could bind the
    same port and the loser's listen() used to drop its control connection.
    """
    import threading

    base = 40000 + (os.getpid() % 200) * 100
    errors: list[BaseException] = []
    with stack_with(db_url, seaweed, ftp_passive_ports=f"{base}-{base + 3}") as stack:
        dev = stack.device()
        with stack.ftp(dev) as ftp:
            put(ftp, "a.jpg", b"x")

        def lister() -> None:
            try:
                with stack.ftp(dev) as ftp:
                    done = 0
                    while done < 15:
                        try:
                            assert ftp.nlst() == ["a.jpg"]
                            done += 1
                        except ftplib.error_temp as err:  # all 4 ports busy: 425, retry
                            assert str(err).startswith("425")
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=lister) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []


@pytest.mark.parametrize(
    ("announced", "sent"), [(3 * MiB, 3 * MiB), (2 * MiB, 7 * MiB), (2 * MiB, 12 * MiB)]
)
def test_buffers_sized_by_allo_still_take_any_length(
    stack: Stack, announced: int, sent: int
) -> None:
    """Buffered (streaming off: signed payloads or s3_stream_announced=false):
    ALLO sizes the first buffer; a client that sends more still gets every
    byte stored."""
    from billing.entitlement import upload_entitlement

    stack.pipeline.streaming = False
    dev = stack.device()
    data = os.urandom(sent)
    up = stack.pipeline.start(
        upload_entitlement(stack.engine, dev.device_id), "clip.dav", expected_size=announced
    )
    for i in range(0, sent, 65536):
        up.write(data[i : i + 65536])
    up.commit()
    key = stack.entries(dev)["clip.dav"].key
    assert stack.store.open_range(key).read() == data
    stack.assert_consistent(dev)


def test_concurrent_uploads_share_one_buffer_budget(stack: Stack) -> None:
    """Sessions that need a buffer while the process's budget is spent wait for it
    (their sockets go unread) instead of growing memory; every upload completes,
    and an aborted one gives its bytes back."""
    from concurrent.futures import ThreadPoolExecutor

    from gateway.memory import BufferBudget

    part = stack.settings.s3_part_size
    budget = stack.pipeline.budget = BufferBudget(2 * part, wait=120)
    dev = stack.device(capacity="1GB")
    files = {f"cam{i}.dav": os.urandom(3 * part + 1000 * i) for i in range(4)}

    def send(name: str) -> str:
        with stack.ftp(dev) as ftp:
            return put(ftp, name, files[name])

    with ThreadPoolExecutor(4) as pool:
        assert all(r.startswith("226") for r in pool.map(send, files))
    assert budget.waits > 0 and budget.overdrafts == 0
    assert budget.peak <= budget.limit and budget.used == 0
    with stack.ftp(dev) as ftp:
        for name, data in files.items():
            assert get(ftp, name) == data
    # a recorder that stops short of what it announced: the upload is aborted
    # and its buffers come back
    with stack.ftp(dev) as ftp:
        ftp.voidcmd("TYPE I")
        ftp.voidcmd(f"ALLO {3 * part}")
        conn = ftp.transfercmd("STOR gone.dav")
        conn.sendall(os.urandom(part + part // 2))
        conn.close()
        with pytest.raises(ftplib.Error):
            ftp.voidresp()
    assert budget.used == 0 and "gone.dav" not in stack.entries(dev)
    stack.assert_consistent(dev)


def test_a_session_waiting_for_budget_does_not_pin_the_part_it_sent(stack: Stack) -> None:
    """Every upload buffer of a megabyte or more is charged to the budget, also
    while its session waits for the next one. A session that handed a full part
    to S3 and then waited for its next buffer kept the sent part referenced
    through the wait, after S3 had acknowledged it and its bytes had gone
    back to the budget: in the saturated fleet that was 100 MB the budget
    did not see. Measured as glibc's own count of large (mmapped) blocks."""
    import ctypes
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from gateway.memory import BufferBudget, tune_allocator

    class MallInfo2(ctypes.Structure):
        _fields_ = [
            (n, ctypes.c_size_t)
            for n in (
                "arena",
                "ordblks",
                "smblks",
                "hblks",
                "hblkhd",
                "usmblks",
                "fsmblks",
                "uordblks",
                "fordblks",
                "keepcost",
            )
        ]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    assert tune_allocator()  # every buffer of 1 MiB or more is its own mapping, as in a gateway

    part = stack.settings.s3_part_size
    budget = stack.pipeline.budget = BufferBudget(2 * part, wait=120)
    stack.pipeline.streaming = False  # the buffered path, where ALLO sizes buffers
    dev = stack.device(capacity="1GB")
    files = {f"cam{i}.dav": os.urandom(3 * part + 1000 * i) for i in range(6)}
    base = libc.mallinfo2().hblkhd
    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], libc.mallinfo2().hblkhd - base)
            time.sleep(0.0005)

    def send(name: str) -> str:
        with stack.ftp(dev) as ftp:
            ftp.voidcmd("TYPE I")
            ftp.voidcmd(f"ALLO {len(files[name])}")  # as recorders do: exact buffers
            return put(ftp, name, files[name])

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with ThreadPoolExecutor(len(files)) as pool:
            assert all(r.startswith("226") for r in pool.map(send, files))
    finally:
        done.set()
        sampler.join()
    assert budget.waits > 0 and budget.overdrafts == 0 and budget.used == 0
    # the budget plus page rounding, never a whole part more
    assert peak[0] <= budget.limit + part // 4, (peak[0], budget.limit)


def test_an_announced_large_file_waits_for_budget_before_buffering(stack: Stack) -> None:
    """A clip whose ALLO says 3 MiB waits for its buffer at its first bytes: had it
    gathered its first MiB as small-file chunks first, every clip session
    waiting on a spent budget would hold a MiB the budget does not count."""
    import threading

    from billing.entitlement import upload_entitlement
    from gateway.memory import BufferBudget

    budget = stack.pipeline.budget = BufferBudget(4 * MiB, wait=120)
    stack.pipeline.streaming = False  # buffered, as where payloads are signed
    dev = stack.device()
    ent = upload_entitlement(stack.engine, dev.device_id)
    budget.take(4 * MiB)  # another session holds it all
    upload = stack.pipeline.start(ent, "clip.dav", expected_size=3 * MiB)
    data = os.urandom(3 * MiB)
    writer = threading.Thread(
        target=lambda: [upload.write(data[i : i + 65536]) for i in range(0, len(data), 65536)]
    )
    writer.start()
    writer.join(0.5)
    assert writer.is_alive() and upload.size == 65536  # waiting, one chunk in
    assert upload._buffered == 0  # and holding nothing outside the budget
    budget.give(4 * MiB)
    writer.join()
    upload.commit()
    assert stack.store.open_range(stack.entries(dev)["clip.dav"].key).read() == data
    assert budget.used == 0
    stack.assert_consistent(dev)


def test_the_startup_heap_is_frozen_out_of_full_collections(stack: Stack) -> None:
    """What a gateway built at start-up (boto3's model, SQLAlchemy, ...) is frozen, so
    a full collection no longer walks it with the GIL held."""
    import gc

    from gateway.memory import freeze_startup_heap

    assert gc.get_freeze_count() == 0
    try:
        frozen = freeze_startup_heap()
        assert frozen > 10_000  # the S3 client alone is tens of thousands
        assert len(gc.get_objects(generation=2)) < frozen // 10
    finally:
        gc.unfreeze()


def test_heap_trim_returns_free_pages_from_the_middle_of_the_heap(tmp_path: Path) -> None:
    """Freed small buffers that a live one pins below the heap's top stay resident
    until trimmed; `trim_heap` (what the gateway's trimmer calls) gives them back."""
    script = """
from gateway.memory import trim_heap, tune_allocator
tune_allocator()
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * 4096
blocks = [bytearray(200_000) for _ in range(1000)]   # 200 MB of heap chunks
for b in blocks:
    b[::4096] = b'x' * len(b[::4096])                # touch every page
pinned = blocks[9::10]                               # every tenth stays alive
del blocks, b
before = rss()
assert trim_heap()
print(before, rss())
"""
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    ).stdout
    before, after = map(int, out.split())
    assert before - after > 100_000_000, (before, after)


def test_heap_trim_spawns_nothing_after_the_first_call() -> None:
    """The trimmer runs every few seconds inside a large gateway: looking glibc
    up (`find_library` runs `ldconfig -p`) must happen once, not each time."""
    import ctypes.util

    from gateway.memory import trim_heap

    assert trim_heap()
    real = ctypes.util.find_library
    calls: list[str] = []
    ctypes.util.find_library = lambda name: calls.append(name) or real(name)  # type: ignore[assignment]
    try:
        assert trim_heap() and trim_heap()
    finally:
        ctypes.util.find_library = real
    assert calls == []


def test_an_upload_without_allo_allocates_what_arrives(stack: Stack) -> None:
    """SFTP sends no size: a 3 MB clip written in one go must cost about 3 MB
    of buffer, not a zero-filled whole part plus a trimmed copy of it."""
    import tracemalloc

    from billing.entitlement import upload_entitlement

    part = stack.settings.s3_part_size
    dev = stack.device()
    data = os.urandom(3 * MiB)
    ent = upload_entitlement(stack.engine, dev.device_id)
    upload = stack.pipeline.start(ent, "clip.mp4")  # no size announced
    tracemalloc.start()
    try:
        upload.write(data)
        upload.commit()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < len(data) + MiB < part, peak
    with stack.ftp(dev) as ftp:
        assert get(ftp, "clip.mp4") == data
    stack.assert_consistent(dev)


def test_an_announced_clip_takes_memory_as_it_arrives(stack: Stack) -> None:
    """Buffered: ALLO says 3 MB, the budget is charged 3 MB at the first
    bytes, but the buffer holds only what has arrived (a recorder's clip
    trickles in over seconds when the gateway is busy), and the file is
    stored whole."""
    import tracemalloc

    from billing.entitlement import upload_entitlement

    stack.pipeline.streaming = False
    dev = stack.device()
    data = os.urandom(3 * MiB)
    ent = upload_entitlement(stack.engine, dev.device_id)
    upload = stack.pipeline.start(ent, "clip.mp4", expected_size=len(data))
    budget = stack.pipeline.budget
    held = budget.used
    tracemalloc.start()
    try:
        upload.write(data[: 64 * 1024])
        first = tracemalloc.get_traced_memory()[0]
        assert budget.used - held == len(data)
        for at in range(64 * 1024, len(data), 64 * 1024):
            upload.write(data[at : at + 64 * 1024])
        upload.commit()
    finally:
        tracemalloc.stop()
    assert first < 512 * 1024, first
    assert budget.used == held
    with stack.ftp(dev) as ftp:
        assert get(ftp, "clip.mp4") == data
    stack.assert_consistent(dev)


@pytest.mark.process
def test_a_plain_ftp_gateway_does_not_load_pyopenssl() -> None:
    """pyOpenSSL (and cryptography under it) is ~11 MB of RSS a plain-FTP
    gateway never uses; FTPS loads it when a certificate is configured."""
    import subprocess
    import sys

    code = (
        "import sys, cli.main, cli.context, gateway.ftp.server, gateway.store;"
        "print('OpenSSL' in sys.modules, 'cryptography' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "False"]
