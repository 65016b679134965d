"""Only one scheduler acts at a time, on PostgreSQL and on SQLite."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

from billing.core.db import make_engine
from billing.scheduler import LeaderLock, leader_only


def test_one_leader_at_a_time(db_url: str) -> None:
    a, b = LeaderLock(make_engine(db_url)), LeaderLock(make_engine(db_url))
    assert a.held() is True
    assert a.held() is True  # stays the leader
    assert b.held() is False  # the other waits
    ran: list[str] = []
    leader_only(b, "job", lambda: ran.append("b"))()
    leader_only(a, "job", lambda: ran.append("a"))()
    assert ran == ["a"]
    a.release()
    assert b.held() is True  # takes over
    b.release()


def test_leader_that_dies_is_replaced(db_url: str) -> None:
    """A scheduler killed with SIGKILL loses the lock with its process."""
    script = textwrap.dedent(f"""
        import time
        from billing.core.db import make_engine
        from billing.scheduler import LeaderLock
        lock = LeaderLock(make_engine({db_url!r}))
        print("held" if lock.held() else "not", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    mine = LeaderLock(make_engine(db_url))
    assert mine.held() is False
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while not mine.held() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert mine.held() is True
    mine.release()


def test_scheduler_command_runs_billing_and_janitor(tmp_path, seaweed) -> None:  # type: ignore[no-untyped-def]
    from datetime import date
    from pathlib import Path

    from billing.core.schema import upgrade
    from cli.devstack.mp_emulator import MercadoPagoEmulator

    url = f"sqlite:///{tmp_path / 'sched.db'}"
    upgrade(url)
    with MercadoPagoEmulator(today=date(2026, 11, 22)) as emu:
        env = {
            **os.environ,
            "CAM2DRIVE_DATABASE_URL": url,
            "CAM2DRIVE_MP_API_BASE": emu.url,
            "CAM2DRIVE_MP_ACCESS_TOKEN": "TEST-x",
            "CAM2DRIVE_S3_BUCKET": "c2d-sched",
            "CAM2DRIVE_JANITOR_EVERY_SECONDS": "5",
            "CAM2DRIVE_BILLING_EVERY_SECONDS": "10",
        }
        bin_ = str(Path(sys.executable).parent / "cam2drive")
        proc = subprocess.Popen([bin_, "scheduler"], env=env, stderr=subprocess.PIPE, text=True)
        seen: list[str] = []
        deadline = time.monotonic() + 60
        try:
            assert proc.stderr is not None
            while time.monotonic() < deadline and not (
                any("billing done" in s for s in seen) and any("janitor done" in s for s in seen)
            ):
                seen.append(proc.stderr.readline())
        finally:
            proc.terminate()
            proc.wait(10)
        assert any("billing done" in s for s in seen), seen
        assert any("janitor done" in s for s in seen), seen
        assert not any("Traceback" in s for s in seen)
