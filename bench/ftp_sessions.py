"""FTP gateway CPU per snapshot as the number of concurrent sessions grows.

    .venv/bin/python bench/ftp_sessions.py [--sessions 1,8,32,150] [--files 3000]
                                           [--size 120000]

Starts SeaweedFS, a fresh PostgreSQL database and one `cam2drive gateway ftp`
process, then for each session count uploads `--files` snapshots in all
from that many concurrent recorder sessions (tests/support/recorder.py: the Dahua
CWD chain, PASV, ALLO, REST 0, STOR), spread over three client processes
so the clients are not the limit. Prints, per count, snapshots per second
and the gateway's CPU time per snapshot (user + system, from /proc).

What it isolates: the cost of serving many sessions at once, apart from
the bytes (the fleet bench, bench/fleet.py, mixes clips, SFTP and pacing).
A server whose CPU per file rises with the session count spends it on
taking turns, not on the work.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stack import bench_stack  # noqa: E402
from cli.devstack.seaweed import free_port  # noqa: E402
from tests.support.recorder import DahuaRecorder  # noqa: E402

DIR = "2026-11-29/001/jpg/10/00"


def clients(port: int, logins: list[tuple[str, str]], per: int, size: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    """One client process: a thread per session, `per` snapshots each."""
    data = os.urandom(size)
    stored: list[int] = []

    def session(user: str, password: str) -> None:
        rec = DahuaRecorder("127.0.0.1", port, user, password, remote_dir="site", device_name=user)
        rec.connect()
        rec.ensure_dirs(f"/site/{user}/{DIR}")
        ok = 0
        for i in range(per):
            reply = rec.upload(
                f"/site/{user}/{DIR}", f"{i}[M][0@0][0].jpg", data, temp_suffix=False
            )
            ok += reply.startswith("226")
        stored.append(ok)
        rec.drop()

    threads = [threading.Thread(target=session, args=login) for login in logins]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(sum(stored))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sessions", default="1,8,32,150", help="comma-separated concurrent session counts"
    )
    ap.add_argument("--files", type=int, default=3000, help="snapshots per session count")
    ap.add_argument("--size", type=int, default=120_000, help="bytes per snapshot")
    a = ap.parse_args()
    counts = [int(n) for n in a.sessions.split(",")]
    with bench_stack("ftpsess", max(counts)) as stack:
        port = free_port()
        gateway = stack.start_gateway(
            "ftp",
            stack.ftp_env(
                "ftpsessions", port, "42000-42999", CAM2DRIVE_FTP_MAX_CONNECTIONS_PER_IP="1000"
            ),
        )
        stack.wait_for_ports(port, timeout=60)
        proc = psutil.Process(gateway.pid)

        def cpu() -> float:
            t = proc.cpu_times()
            return t.user + t.system

        for count in counts:
            per = max(1, a.files // count)
            out: mp.Queue = mp.Queue()  # type: ignore[type-arg]
            groups = [g for g in (stack.logins[:count][i::3] for i in range(3)) if g]
            cpu0, t0 = cpu(), time.perf_counter()
            procs = [mp.Process(target=clients, args=(port, g, per, a.size, out)) for g in groups]
            for p in procs:
                p.start()
            stored = sum(out.get() for _ in procs)
            for p in procs:
                p.join()
            seconds, used = time.perf_counter() - t0, cpu() - cpu0
            print(
                json.dumps(
                    {
                        "sessions": count,
                        "snapshots": stored,
                        "expected": per * count,
                        "snapshots_per_s": round(stored / seconds, 1),
                        "gateway_cpu_ms_per_snapshot": round(used / stored * 1000, 2),
                        "gateway_cpu_cores": round(used / seconds, 2),
                        "gateway_threads_after": proc.num_threads(),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
