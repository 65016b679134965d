"""Watching recordings: how soon a clip plays, how fast a day loads, how soon a clip shows.

On SeaweedFS, a fresh PostgreSQL database, `cam2drive gateway ftp` and
`cam2drive http serve`, all on this machine; one recorder uploads as a Dahua
does (MKD, STOR `name_`, RNFR/RNTO `name`). Prints, as medians of --runs:

* `dav first byte`: request sent -> first byte of the remuxed MP4 (`.dav`,
  ~20 MB, 4 Mbit/s 720p H.264 + G.711, made by tests/support/dhav.py);
* `dav playable`: -> ftyp, moov and the first complete moof + mdat (what a
  `<video>` needs to show the first picture);
* `mp4 first byte` / `mp4 playable`: a ~20 MB faststart `.mp4` read as
  stored: -> its moov and the first 512 KiB of media data after it (a second
  of 4 Mbit/s video);
* `timeline`: GET of a day holding 2 000 events (uploaded snapshots);
* `226 -> timeline`: a clip's 226 (STOR `name_` done) -> the clip is in the
  day's JSON (the recorder's rename included), polled every 10 ms;
* `session only`: a request that stops after the portal session's lookup
  and one query (a 404): every figure above includes it. The viewer signs in
  once through the portal's form (argon2), as a browser does; that is not
  timed.

Usage: python bench/playback.py [--runs 5] [--events 2000] [--seconds 40]
"""

from __future__ import annotations

import argparse
import ftplib
import io
import os
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stack import BIN, bench_stack  # noqa: E402
from billing import catalog  # noqa: E402
from billing.core.db import make_engine, session_scope  # noqa: E402
from cli.devstack.seaweed import free_port  # noqa: E402
from tests.support.dhav import make_dav, make_mp4  # noqa: E402
from tests.support.portal import sign_in_http  # noqa: E402

DAY = "2026-12-06"
PASSWORD = "bench-viewer-password"


def mkdirs(ftp: ftplib.FTP, path: str, made: set[str]) -> None:
    parts = path.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        folder = "/".join(parts[:i])
        if folder not in made:
            try:
                ftp.mkd(folder)
            except ftplib.error_perm:
                pass
            made.add(folder)


def upload_clip(ftp: ftplib.FTP, path: str, data: bytes, made: set[str]) -> float:
    """STOR `name_` then rename, as a Dahua does; the time of the 226."""
    mkdirs(ftp, path, made)
    ftp.storbinary(f"STOR {path}_", io.BytesIO(data), blocksize=1 << 20)
    at = time.perf_counter()
    ftp.rename(path + "_", path)
    return at


def first_fragment(stream: httpx.Response, t0: float) -> tuple[float, float]:
    """(first byte, first playable fragment) of a fragmented MP4, seconds from `t0`."""
    first = playable = 0.0
    buf = bytearray()
    seen: list[str] = []
    for chunk in stream.iter_raw(65536):
        if not first:
            first = time.perf_counter() - t0
        buf += chunk
        seen = _boxes(buf)
        if "moof" in seen and "mdat" in seen[seen.index("moof") :]:
            playable = time.perf_counter() - t0
            break
    assert seen[:2] == ["ftyp", "moov"], seen
    return first, playable


def first_mp4(stream: httpx.Response, t0: float) -> tuple[float, float]:
    """(first byte, moov + 512 KiB of mdat) of a faststart MP4, seconds from `t0`."""
    first = 0.0
    buf = bytearray()
    for chunk in stream.iter_raw(65536):
        if not first:
            first = time.perf_counter() - t0
        buf += chunk
        if "moov" in _boxes(buf) and "mdat" in [k for k, _ in _box_starts(buf)]:
            mdat_at = dict(_box_starts(buf))["mdat"]
            if len(buf) >= mdat_at + 512 * 1024:
                return first, time.perf_counter() - t0
    raise AssertionError("no moov before the media data: not a faststart MP4")


def _box_starts(buf: bytes | bytearray) -> list[tuple[str, int]]:
    out, at = [], 0
    while at + 8 <= len(buf):
        size, kind = struct.unpack(">I4s", buf[at : at + 8])
        out.append((kind.decode("latin-1"), at))
        if size < 8:
            break
        at += size
    return out


def _boxes(buf: bytes | bytearray) -> list[str]:
    """Whole top-level boxes, in order."""
    out, at = [], 0
    while at + 8 <= len(buf):
        size, kind = struct.unpack(">I4s", buf[at : at + 8])
        if size < 8 or at + size > len(buf):
            break
        out.append(kind.decode("latin-1"))
        at += size
    return out


def median_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--seconds", type=int, default=40, help="length of the 20 MB clips")
    args = ap.parse_args()

    t = time.perf_counter()
    dav = make_dav(args.seconds, size=(1280, 720), bitrate="4M", start=datetime(2026, 12, 6, 9))
    mp4 = make_mp4(args.seconds, size=(1280, 720), bitrate="4M")
    print(f"clips made in {time.perf_counter() - t:.1f} s: .dav {len(dav) / 1e6:.1f} MB, "
          f".mp4 {len(mp4) / 1e6:.1f} MB")  # fmt: skip

    with bench_stack("playback", 1) as stack:
        engine = make_engine(stack.url)
        with session_scope(engine) as s:
            cust = catalog.set_customer_password(s, "c0@bench.mx", PASSWORD, actor="bench")
            email = cust.email
        from sqlalchemy import text

        with engine.connect() as conn:
            device_id = conn.execute(text("SELECT min(id) FROM devices")).scalar_one()
        engine.dispose()
        ftp_port, http_port = free_port(), free_port()
        env = stack.ftp_env("playback", ftp_port, "42000-42999")
        stack.start_gateway("ftp", env)
        http = subprocess.Popen(
            [BIN, "http", "serve", "--port", str(http_port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(stack.tmp / "http.log", "w"),  # noqa: SIM115
        )
        stack.gateways.append(http)
        stack.wait_for_ports(ftp_port, http_port)

        user, password = stack.logins[0]
        ftp = ftplib.FTP()
        ftp.connect("127.0.0.1", ftp_port)
        ftp.login(user, password)
        made: set[str] = set()
        dav_path = f"{DAY}/001/dav/09/09.00.00-09.00.{args.seconds:02d}[M][0@0][0].dav"
        mp4_path = f"{DAY}/002/dav/09/09.00.00-09.00.{args.seconds:02d}[A][0@0][0].mp4"
        upload_clip(ftp, dav_path, dav, made)
        upload_clip(ftp, mp4_path, mp4, made)
        t = time.perf_counter()
        for i in range(args.events - 2):
            h, m, sec = 10 + i // 3600, i // 60 % 60, i % 60
            path = f"{DAY}/003/jpg/{h:02d}/{m:02d}/{sec:02d}[M][0@0][0].jpg"
            mkdirs(ftp, path, made)
            ftp.storbinary(f"STOR {path}", io.BytesIO(b"j" * 20_000))
        print(f"{args.events - 2} snapshots uploaded in {time.perf_counter() - t:.1f} s")

        web = httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=120)
        assert sign_in_http(web, email, PASSWORD).status_code == 303  # the session cookie
        day_url = f"/media/devices/{device_id}/days/{DAY}"

        def timed(fn: Callable[[], object]) -> float:
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0

        def day_events() -> list[dict]:  # type: ignore[type-arg]
            r = web.get(day_url)
            r.raise_for_status()
            return r.json()["events"]  # type: ignore[no-any-return]

        events = day_events()
        assert len(events) == args.events, len(events)
        ids = {e["name"]: e["id"] for e in events if not e["snapshot"]}
        dav_id, mp4_id = (ids[p.rsplit("/", 1)[1]] for p in (dav_path, mp4_path))

        results: dict[str, list[float]] = {}
        for _ in range(args.runs):
            t0 = time.perf_counter()  # the request is sent: headers wait for ffmpeg
            with web.stream("GET", f"/media/recordings/{dav_id}") as r:
                first, playable = first_fragment(r, t0)
            results.setdefault("dav first byte", []).append(first)
            results.setdefault("dav playable", []).append(playable)
            t0 = time.perf_counter()
            with web.stream("GET", f"/media/recordings/{mp4_id}") as r:
                first, playable = first_mp4(r, t0)
            results.setdefault("mp4 first byte", []).append(first)
            results.setdefault("mp4 playable", []).append(playable)
            results.setdefault(f"timeline ({args.events} events)", []).append(timed(day_events))
            results.setdefault("session only (404)", []).append(
                timed(lambda: web.get("/media/recordings/999999999"))
            )
        for run in range(args.runs):
            path = f"{DAY}/004/dav/20/20.00.{run:02d}-20.00.{run + 30:02d}[M][0@0][0].dav"
            at = upload_clip(ftp, path, dav[: 512 * 1024], made)
            name = path.rsplit("/", 1)[1]
            while not any(e["name"] == name for e in day_events()):
                time.sleep(0.01)
            results.setdefault("226 -> timeline", []).append(time.perf_counter() - at)
        ftp.quit()
        web.close()

    session = statistics.median(results["session only (404)"])
    print(f"\nPostgreSQL, SeaweedFS, 1 gateway + 1 http worker; medians of {args.runs}")
    print("(net: less the median session-only request)")
    for name, values in results.items():
        net = statistics.median(values) - session
        extra = f"  net {net * 1000:7.1f} ms" if not name.startswith(("session", "226")) else ""
        print(f"  {name:28} {median_ms(values)}   (max {max(values) * 1000:7.1f} ms){extra}")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
