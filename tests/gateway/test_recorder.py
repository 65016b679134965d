"""The Dahua recorder emulator against the gateway: what installers will see."""

from __future__ import annotations

from tests.support.recorder import DahuaRecorder
from tests.support.stack import MiB, Stack


def test_dahua_session_video_and_snapshots(stack: Stack) -> None:
    dev = stack.device(capacity="1GB")
    rec = DahuaRecorder("127.0.0.1", stack.port, dev.username, dev.password)
    rec.connect()
    assert any(r.startswith("550") for r in rec.replies)  # SIZE of the missing marker
    assert rec.video_clip("2019-05-09", 1, "21.04.49", "21.05.14", 6 * MiB).startswith("226")
    assert rec.video_clip("2019-05-09", 1, "21.05.14", "21.05.40", 300_000).startswith("226")
    assert all(
        r.startswith("226") for r in rec.snapshot_burst("2019-05-09", 1, "09.32.52", 3, 30_000)
    )
    rec.drop()  # no QUIT
    # a second session re-walks the MKD chain over existing directories
    rec.connect()
    assert rec.video_clip("2019-05-09", 2, "21.04.49", "21.05.14", 1000).startswith("226")
    rec.quit()
    assert not any(r.startswith("202") for r in rec.replies)  # ALLO is always 200
    files = {p: e.size for p, e in stack.entries(dev).items() if not e.is_dir}
    base = "NVR01/AMC0009L_M35704/2019-05-09"
    assert files == {
        f"{base}/001/dav/21/21.04.49-21.05.14[M][0@0][0].mp4": 6 * MiB,
        f"{base}/001/dav/21/21.05.14-21.05.40[M][0@0][0].mp4": 300_000,
        f"{base}/001/jpg/09/32/52[M][0@0][0].jpg": 30_000,
        f"{base}/001/jpg/09/32/52[M][0@0][1].jpg": 30_000,
        f"{base}/001/jpg/09/32/52[M][0@0][2].jpg": 30_000,
        f"{base}/002/dav/21/21.04.49-21.05.14[M][0@0][0].mp4": 1000,
    }
    stack.assert_consistent(dev)


def test_recorder_on_a_full_reject_drive_keeps_its_file(stack: Stack) -> None:
    dev = stack.device(capacity="100000B", on_full="reject")
    rec = DahuaRecorder("127.0.0.1", stack.port, dev.username, dev.password)
    rec.connect()
    assert rec.video_clip("2026-11-22", 1, "10.00.00", "10.00.30", 90_000).startswith("226")
    refused = rec.video_clip("2026-11-22", 1, "10.00.30", "10.01.00", 20_000)
    assert refused.startswith("552") and "full" in refused
    rec.quit()
    stack.assert_consistent(dev)
    assert stack.drive(dev).committed_bytes == 90_000


def test_dahua_recorder_over_sftp(stack: Stack) -> None:
    import asyncio

    from tests.support.recorder import DahuaSftpRecorder

    port = stack.start_sftp()
    dev = stack.device(capacity=f"{8 * MiB}B", on_full="reject")
    rec = DahuaSftpRecorder(port, dev.username, dev.password)
    results = asyncio.run(
        rec.session(
            [
                ("2026-11-22", 1, "10.00.00", "10.00.30", 6 * MiB),
                ("2026-11-22", 2, "10.00.00", "10.00.30", 100_000),
                ("2026-11-22", 1, "10.00.30", "10.01.00", 3 * MiB),
            ]
        )
    )  # does not fit: refused
    assert results[:2] == ["ok", "ok"]
    assert results[2].startswith("SFTPQuotaExceeded") or "Drive is full" in results[2]
    files = sorted(p for p, e in stack.entries(dev).items() if not e.is_dir)
    assert files == [
        "NVR01/AMC0009L_M35704/2026-11-22/001/dav/10/10.00.00-10.00.30[M][0@0][0].mp4",
        "NVR01/AMC0009L_M35704/2026-11-22/002/dav/10/10.00.00-10.00.30[M][0@0][0].mp4",
    ]
    stack.assert_consistent(dev)
