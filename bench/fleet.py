"""Fleet benchmark: N Dahua-shaped recorders on the FTP and SFTP gateways at once.

    .venv/bin/python bench/fleet.py [--recorders 200] [--channels 4] [--seconds 60]
                                    [--sftp-share 0.25] [--clip-scale 0.25] [--workers 2]
                                    [--load 0.5[,0.3,...]] [--one-process]
                                    [--paced-only MB_PER_S[,MB_PER_S,...]]

Starts SeaweedFS, a fresh PostgreSQL database, one `cam2drive gateway ftp`
and one `cam2drive gateway sftp` process, and N devices with a subscription.
Each recorder is one session (FTP, or SFTP for `--sftp-share` of them) that
for T seconds cycles through its channels the way ../shared/recorders.md
describes: snapshot bursts (3 x 30-230 KB), motion clips (2-20 MB x
clip-scale) and hourly segments (scaled down the same way), each under the
`<dir>/<device>/<day>/<ccc>/{jpg,dav}/...` layout with the CWD/MKD chains,
`name_` then rename for video. Then direct boto3 with the same number of
concurrent sessions, the same mix and sizes, for the same time.

Two loads, each run on both paths:

* saturated: every recorder uploads back to back, as one catching up on a
  backlog from its HDD does. This gives the throughput ratio; commit times
  here are mostly queueing for the machine's two cores, on both paths.
* paced: every recorder uploads on its own open-loop schedule (exponential
  gaps) so that the fleet offers `--load` x the MB/s direct boto3 reached
  saturated, as recorders uploading what their cameras produce do. Commit
  times at a load the machine can carry are what a recorder waits for.
  Several loads (`--load 0.2,0.35,0.5`) make a sweep: how far the machine
  goes before the snapshot p99 passes 250 ms, on each path, in one run
  (figures from different days differ by more than the code does).

Prints aggregate MB/s and files/s for both and their ratio; p50/p99 of the
time from the end of a file's data to its 226 / close-OK, snapshots and
video apart; failed transfers; the gateways' peak RSS and mean CPU, as
JSON (`paced`: one entry per load, lowest first).
`--one-process` serves both protocols from one `cam2drive gateway all` node,
`--gateway-workers N` forks N processes per node (gateway/workers.py);
memory is reported as the peak sum of RSS and of PSS over every gateway
process (PSS counts a page shared by forked workers once).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import sys
import threading
import time
from pathlib import Path

import psutil
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stack import PG_ADMIN, bench_stack  # noqa: E402
from cli.devstack.seaweed import free_port  # noqa: E402
from tests.support.recorder import DahuaRecorder, DahuaSftpRecorder  # noqa: E402

KB, MB = 1000, 1000 * 1000


def workload(rng: random.Random, channels: int, clip_scale: float):  # type: ignore[no-untyped-def]
    """Endless (kind, channel, size) for one recorder: mostly snapshots, some video."""
    while True:
        channel = rng.randrange(1, channels + 1)
        roll = rng.random()
        if roll < 0.75:
            for _ in range(3):
                yield "snapshot", channel, rng.randrange(30 * KB, 230 * KB)
        elif roll < 0.97:
            yield "clip", channel, int(rng.randrange(2 * MB, 20 * MB) * clip_scale)
        else:
            yield "segment", channel, int(60 * MB * clip_scale)


class Pacer:
    """Open-loop start times for one recorder: a file is due when the schedule says,
    whether or not the previous one has finished; a late recorder catches up
    without pause, like one draining its HDD."""

    def __init__(self, rate: float | None, rng: random.Random) -> None:
        self.rate, self.rng = rate, rng
        self.due = time.perf_counter()

    def wait(self, size: int, deadline: float) -> float | None:
        """Seconds to sleep before starting a file of `size` bytes; None if that
        is past the deadline (the session is over)."""
        if not self.rate:
            return 0.0
        # the gap is charged before the file, not after: a 15 MB segment
        # drawn first must not land in the window for free (that inflated the
        # offered load by half over 60 s)
        self.due += self.rng.expovariate(1.0) * size / self.rate
        now = time.perf_counter()
        delay = max(0.0, self.due - now)
        return None if now + delay >= deadline else delay


def _names(kind: str, n: int, channel: int) -> tuple[str, str]:
    hh, mm, ss = f"{n // 3600 % 24:02d}", f"{n // 60 % 60:02d}", f"{n % 60:02d}"
    if kind == "snapshot":
        return f"2026-11-22/{channel:03d}/jpg/{hh}/{mm}", f"{ss}[M][0@0][{n % 3}].jpg"
    return f"2026-11-22/{channel:03d}/dav/{hh}", f"{hh}.{mm}.{ss}-{hh}.{mm}.{ss}[M][0@0][{n}].mp4"


class Start:
    """Everyone's setup (FTP logins, SSH handshakes, boto3 clients) happens before
    the clock starts, so neither path pays its connection set-up inside the
    measured window; `wait()` returns the session's deadline."""

    def __init__(self, go, seconds: float) -> None:  # type: ignore[no-untyped-def]
        self.go, self.seconds = go, seconds

    def wait(self) -> float:
        self.go.wait()
        return time.perf_counter() + self.seconds


def ftp_recorder(
    port: int,
    login: dict,
    args: dict,
    ready: threading.Barrier,  # type: ignore[type-arg]
    start: Start,
    out: list,
) -> None:  # type: ignore[type-arg]
    rng = random.Random(login["username"])
    rec = DahuaRecorder(
        "127.0.0.1",
        port,
        login["username"],
        login["password"],
        remote_dir="site",
        device_name=login["username"],
    )
    try:
        rec.connect()
    except Exception as exc:  # noqa: BLE001 - a failed session is a reported failure
        out.append(("connect", 0, None, repr(exc)))
        return
    finally:
        ready.wait()
    deadline = start.wait()
    pacer = Pacer(args["rate"], rng)
    for n, (kind, channel, size) in enumerate(workload(rng, args["channels"], args["clip_scale"])):
        delay = pacer.wait(size, deadline)
        if delay is None or time.perf_counter() + delay >= deadline:
            break
        time.sleep(delay)
        directory, name = _names(kind, n, channel)
        try:
            reply = rec.upload(
                f"/site/{login['username']}/{directory}",
                name,
                os.urandom(size),
                temp_suffix=kind != "snapshot",
            )
            ok = reply.startswith("226")
            out.append((kind, size, rec.last_commit, None if ok else reply))
        except Exception as exc:  # noqa: BLE001
            out.append((kind, size, None, repr(exc)))
            return
    rec.drop()


async def sftp_recorder(
    port: int,
    login: dict,
    args: dict,
    ready: asyncio.Barrier,  # type: ignore[type-arg]
    start: asyncio.Future,
    out: list,
) -> None:  # type: ignore[type-arg]
    import asyncssh

    rng = random.Random(login["username"])
    helper = DahuaSftpRecorder(port, login["username"], login["password"])
    try:
        conn = await asyncssh.connect(
            "127.0.0.1",
            port,
            username=login["username"],
            password=login["password"],
            known_hosts=None,
            client_keys=None,
        )
        sftp = await conn.start_sftp_client()
    except (asyncssh.Error, OSError) as exc:
        out.append(("connect", 0, None, repr(exc)))
        await ready.wait()
        return
    await ready.wait()
    deadline = await start
    pacer = Pacer(args["rate"], rng)
    try:
        for n, (kind, channel, size) in enumerate(
            workload(rng, args["channels"], args["clip_scale"])
        ):
            delay = pacer.wait(size, deadline)
            if delay is None or time.perf_counter() + delay >= deadline:
                break
            await asyncio.sleep(delay)
            directory, name = _names(kind, n, channel)
            path = f"/site/{login['username']}/{directory}/{name}"
            temp = path + "_" if kind != "snapshot" else path
            try:
                await helper._ensure_dirs(sftp, f"/site/{login['username']}/{directory}")
                f = await sftp.open(temp, "wb")
                await f.write(os.urandom(size))
                t0 = time.perf_counter()
                await f.close()
                commit = time.perf_counter() - t0
                if temp != path:
                    await sftp.rename(temp, path)
                out.append((kind, size, commit, None))
            except (asyncssh.Error, OSError) as exc:
                out.append((kind, size, None, repr(exc)))
    finally:
        sftp.exit()
        conn.close()


def boto3_session(
    endpoint: str,
    bucket: str,
    tag: str,
    args: dict,  # type: ignore[type-arg]
    ready: threading.Barrier,
    start: Start,
    out: list,
) -> None:  # type: ignore[type-arg]
    import io

    import boto3
    from boto3.s3.transfer import TransferConfig

    from billing.core.settings import Settings
    from gateway.store import client_config

    try:
        s3 = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            config=client_config(Settings(s3_endpoint_url=endpoint), max_pool_connections=10),
        )
    finally:
        ready.wait()
    cfg = TransferConfig(multipart_chunksize=8 * 1024 * 1024, max_concurrency=3)
    rng = random.Random(tag)
    deadline = start.wait()
    pacer = Pacer(args["rate"], rng)
    for n, (kind, channel, size) in enumerate(workload(rng, args["channels"], args["clip_scale"])):
        delay = pacer.wait(size, deadline)
        if delay is None or time.perf_counter() + delay >= deadline:
            break
        time.sleep(delay)
        directory, name = _names(kind, n, channel)
        key = f"peer/{tag}/{directory}/{name}"
        t0 = time.perf_counter()
        try:
            s3.upload_fileobj(io.BytesIO(os.urandom(size)), bucket, key, Config=cfg)
            out.append((kind, size, time.perf_counter() - t0, None))
        except Exception as exc:  # noqa: BLE001
            out.append((kind, size, None, repr(exc)))


def worker(role: str, items: list, args: dict, ready_q, go, queue) -> None:  # type: ignore[no-untyped-def, type-arg]
    """One client process: threads for FTP and boto3, one asyncio loop for SFTP.

    Reports on `ready_q` once every session is set up, then all start on `go`.
    """
    out: list = []  # type: ignore[type-arg]
    if role == "sftp":

        async def all_sessions() -> None:
            loop = asyncio.get_running_loop()
            ready = asyncio.Barrier(len(items) + 1)
            start: asyncio.Future = loop.create_future()  # type: ignore[type-arg]
            tasks = [
                asyncio.create_task(
                    sftp_recorder(args["sftp_port"], login, args, ready, start, out)
                )
                for login in items
            ]
            await ready.wait()
            ready_q.put(role)
            await loop.run_in_executor(None, go.wait)
            start.set_result(time.perf_counter() + args["seconds"])
            await asyncio.gather(*tasks)

        asyncio.run(all_sessions())
    else:
        ready = threading.Barrier(len(items) + 1)
        start = Start(go, args["seconds"])
        threads = []
        for item in items:
            if role == "ftp":
                t = threading.Thread(
                    target=ftp_recorder, args=(args["ftp_port"], item, args, ready, start, out)
                )
            else:
                t = threading.Thread(
                    target=boto3_session,
                    args=(args["endpoint"], args["bucket"], item, args, ready, start, out),
                )
            threads.append(t)
            t.start()
        ready.wait()
        ready_q.put(role)
        for t in threads:
            t.join()
    queue.put([(*r, role) for r in out])


def run_phase(plan: list[tuple[str, list]], args: dict) -> tuple[list, float]:  # type: ignore[type-arg]
    ctx = mp.get_context("spawn")
    queue, ready_q, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(target=worker, args=(role, items, args, ready_q, go, queue))
        for role, items in plan
        if items
    ]
    for p in procs:
        p.start()
    for _ in procs:
        ready_q.get()
    go.set()
    results: list = []  # type: ignore[type-arg]
    for _ in procs:
        results += queue.get()
    for p in procs:
        p.join()
    return results, args["seconds"]


def summarise(name: str, results: list, seconds: float) -> dict:  # type: ignore[type-arg]
    done = [r for r in results if r[3] is None]
    failed = [r for r in results if r[3] is not None]

    def pct(kind_set: set[str], q: float, role: str | None = None) -> float | None:
        xs = sorted(r[2] for r in done if r[0] in kind_set and role in (None, r[4]))
        return round(xs[min(len(xs) - 1, int(q * len(xs)))] * 1000, 1) if xs else None

    roles = sorted({r[4] for r in done})
    return {
        "path": name,
        "files": len(done),
        "failed": len(failed),
        "MB_per_s": round(sum(r[1] for r in done) / MB / seconds, 2),
        "files_per_s": round(len(done) / seconds, 1),
        "MB_per_s_by_protocol": {
            role: round(sum(r[1] for r in done if r[4] == role) / MB / seconds, 2) for role in roles
        },
        "snapshot_commit_ms_p50": pct({"snapshot"}, 0.5),
        "snapshot_commit_ms_p99": pct({"snapshot"}, 0.99),
        "snapshot_commit_ms_p99_by_protocol": {
            role: pct({"snapshot"}, 0.99, role) for role in roles
        },
        "video_commit_ms_p50": pct({"clip", "segment"}, 0.5),
        "video_commit_ms_p99": pct({"clip", "segment"}, 0.99),
        "first_failures": [r[3] for r in failed[:3]],
    }


class Sampler(threading.Thread):
    """Peak memory and mean CPU of the gateway processes and their workers,
    and the CPU of the PostgreSQL backends serving the fleet's database.

    RSS counts the pages forked workers still share with their supervisor
    once per process; PSS splits each shared page among its sharers, so
    its sum is what the node takes from the machine. CPU is summed as
    process CPU time over the phase, so it divides into CPU per file."""

    def __init__(self, pids: list[int], db: str) -> None:
        super().__init__(daemon=True)
        self.roots = [psutil.Process(p) for p in pids]
        self.db = db
        self.procs: dict[int, psutil.Process] = {}
        self.backends: dict[int, psutil.Process] = {}
        self.peak_rss, self.peak_pss, self.cpu, self.samples, self.stop = 0, 0, 0.0, 0, False
        self.peaks: dict[int, int] = {}
        self.cpu_start: dict[int, float] = {}
        self.cpu_last: dict[int, float] = {}
        self._refresh()
        self._refresh_backends()
        self.started = time.perf_counter()

    @staticmethod
    def _cpu(p: psutil.Process) -> float:
        t = p.cpu_times()
        return t.user + t.system

    def _track(self, p: psutil.Process) -> None:
        try:
            self.cpu_start.setdefault(p.pid, self._cpu(p))
        except psutil.Error:
            pass

    def _refresh(self) -> list[psutil.Process]:
        live = []
        for root in self.roots:
            try:
                family = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for p in family:
                if p.pid not in self.procs:
                    self.procs[p.pid] = p
                    p.cpu_percent()
                    self._track(p)
                live.append(self.procs[p.pid])
        return live

    def _refresh_backends(self) -> None:
        """The database's backends (a gateway's pool may open more during the phase)."""
        try:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                pids = [
                    r[0]
                    for r in conn.execute(
                        "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.db,)
                    )
                ]
        except psycopg.Error:
            return
        for pid in pids:
            if pid not in self.backends:
                try:
                    self.backends[pid] = psutil.Process(pid)
                except psutil.Error:
                    continue
                self._track(self.backends[pid])

    def _cpu_seconds(self, procs: dict[int, psutil.Process]) -> float:
        total = 0.0
        for pid, p in procs.items():
            try:
                self.cpu_last[pid] = self._cpu(p)
            except psutil.Error:
                pass  # ended: its last reading stands
            total += self.cpu_last.get(pid, self.cpu_start.get(pid, 0.0)) - self.cpu_start.get(
                pid, 0.0
            )
        return total

    def run(self) -> None:
        n = 0
        while not self.stop:
            time.sleep(0.5)
            rss = pss = 0
            cpu = 0.0
            for p in self._refresh():
                try:
                    r = p.memory_info().rss
                    pss += _pss(p.pid)
                    cpu += p.cpu_percent()
                except psutil.NoSuchProcess:
                    continue
                rss += r
                self.peaks[p.pid] = max(self.peaks.get(p.pid, 0), r)
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            self.cpu += cpu
            self.samples += 1
            n += 1
            if n % 4 == 0:
                self._refresh_backends()
                self._cpu_seconds(self.backends)  # read them while they live

    def mean_cpu(self) -> float:
        return round(self.cpu / max(self.samples, 1), 1)

    def report(self, files: int = 0) -> dict:  # type: ignore[type-arg]
        out = {
            "gateway_peak_rss_MB": round(self.peak_rss / 2**20, 1),
            "gateway_peak_pss_MB": round(self.peak_pss / 2**20, 1),
            "peak_rss_MB_per_process": [round(x / 2**20, 1) for x in self.peaks.values()],
            "gateway_mean_cpu_percent": self.mean_cpu(),
        }
        if files:
            gw, db = self._cpu_seconds(self.procs), self._cpu_seconds(self.backends)
            out["gateway_cpu_ms_per_file"] = round(gw * 1000 / files, 2)
            out["database_cpu_ms_per_file"] = round(db * 1000 / files, 2)
        return out


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def numbers(text: str) -> list[float]:
    """`0.2,0.35,0.5` → [0.2, 0.35, 0.5] (argparse type: one load or a sweep)."""
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a number or comma-separated numbers: {text}"
        ) from None


def reach(paced: list[dict], path: str) -> float | None:  # type: ignore[type-arg]
    """The highest MB/s a sweep's path delivered with its snapshot p99 under 250 ms,
    counting only loads below the first one that passed it (a lucky run at a
    higher load after a miss is not capacity)."""
    best = None
    for phase in paced:
        p99 = phase[path]["snapshot_commit_ms_p99"]
        if p99 is None or p99 >= 250 or phase[path]["failed"]:
            break
        best = phase[path]["MB_per_s"]
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recorders", type=int, default=200, help="devices, one session each")
    ap.add_argument("--channels", type=int, default=4, help="cameras per recorder")
    ap.add_argument("--seconds", type=float, default=60, help="length of each phase")
    ap.add_argument(
        "--sftp-share",
        type=float,
        default=0.25,
        help="fraction of the recorders that upload over SFTP",
    )
    ap.add_argument(
        "--clip-scale",
        type=float,
        default=0.25,
        help="motion clips and hourly segments scaled down by this",
    )
    ap.add_argument("--workers", type=int, default=2, help="client processes for FTP and boto3")
    ap.add_argument(
        "--load",
        type=numbers,
        default=[0.5],
        help="paced phase: offered load as a fraction of boto3's saturated MB/s "
        "(0 skips it); several, comma-separated, make a sweep",
    )
    ap.add_argument(
        "--paced-only",
        type=numbers,
        default=[],
        metavar="MB_PER_S",
        help="skip the saturated phase and pace the fleet at this many MB/s in all "
        "(quick A/B runs of commit times); several, comma-separated, make a "
        "sweep",
    )
    ap.add_argument(
        "--one-process",
        action="store_true",
        help="serve FTP and SFTP from one `cam2drive gateway all` node",
    )
    ap.add_argument(
        "--gateway-workers",
        type=int,
        default=1,
        help="processes per gateway node (CAM2DRIVE_GATEWAY_WORKERS; 0: one per core)",
    )
    a = ap.parse_args()
    with bench_stack("fleet", a.recorders) as stack:
        tmp, weed, name = stack.tmp, stack.weed, stack.db
        logins = [{"username": u, "password": p} for u, p in stack.logins]
        ftp_port, sftp_port = free_port(), free_port()
        env = stack.ftp_env(
            "fleet",
            ftp_port,
            "41000-41999",
            CAM2DRIVE_SFTP_HOST="127.0.0.1",
            CAM2DRIVE_SFTP_PORT=str(sftp_port),
            CAM2DRIVE_SFTP_HOST_KEY_DIR=str(tmp / "keys"),
            CAM2DRIVE_FTP_MAX_CONNECTIONS_PER_IP="1000",
            CAM2DRIVE_GATEWAY_WORKERS=str(a.gateway_workers),
        )
        for kind in ("all",) if a.one_process else ("ftp", "sftp"):
            stack.start_gateway(kind, env)
        stack.wait_for_ports(ftp_port, sftp_port)
        n_sftp = int(a.recorders * a.sftp_share)
        sftp_logins, ftp_logins = logins[:n_sftp], logins[n_sftp:]
        args = {
            "channels": a.channels,
            "clip_scale": a.clip_scale,
            "seconds": a.seconds,
            "ftp_port": ftp_port,
            "sftp_port": sftp_port,
            "endpoint": weed.endpoint,
            "bucket": "fleet",
        }
        os.environ.update(weed.env())
        gateway_plan = [("ftp", ftp_logins[i :: a.workers]) for i in range(a.workers)]
        gateway_plan.append(("sftp", sftp_logins))
        tags = [f"r{i}" for i in range(a.recorders)]
        peer_plan = [("boto3", tags[i :: a.workers]) for i in range(a.workers)]
        pids = [g.pid for g in stack.gateways]

        logs = sorted(tmp.glob("*.log"))

        def overdrafts() -> int:
            """Sessions served past the buffer budget so far (gateway/memory.py)."""
            return sum(f.read_text(errors="replace").count("over budget") for f in logs)

        def gateway_phase(rate: float | None) -> tuple[dict, Sampler]:  # type: ignore[type-arg]
            sampler = Sampler(pids, name)
            before = overdrafts()
            sampler.start()
            results, seconds = run_phase(gateway_plan, {**args, "rate": rate})
            sampler.stop = True
            sampler.join()
            summary = summarise("gateway (FTP+SFTP)", results, seconds)
            summary["budget_overdrafts"] = overdrafts() - before
            return summary, sampler

        def peer_phase(rate: float | None) -> dict:  # type: ignore[type-arg]
            results, seconds = run_phase(peer_plan, {**args, "rate": rate})
            return summarise("boto3", results, seconds)

        report: dict = {
            "recorders": a.recorders,
            "sftp_recorders": n_sftp,  # type: ignore[type-arg]
            "seconds": a.seconds,
            "one_process": a.one_process,
            "gateway_workers": a.gateway_workers,
        }
        paced_mbps = [x for x in a.paced_only if x > 0]
        if not paced_mbps:  # `--paced-only 0`, as before: the saturated phase too
            g, g_sampler = gateway_phase(None)
            p = peer_phase(None)
            paced_mbps = [x * p["MB_per_s"] for x in a.load if x > 0]
            report["saturated"] = {
                "gateway": g,
                "boto3": p,
                "ratio_MB_per_s": round(g["MB_per_s"] / p["MB_per_s"], 2)
                if p["MB_per_s"]
                else None,
                **g_sampler.report(g["files"]),
            }
        paced = []
        for mbps in sorted(paced_mbps):
            rate = mbps * MB / a.recorders
            pp = peer_phase(rate)
            gp, gp_sampler = gateway_phase(rate)
            paced.append(
                {
                    "offered_MB_per_s": round(rate * a.recorders / MB, 2),
                    "offered_Mbit_per_s_per_recorder": round(rate * 8 / MB, 3),
                    "gateway": gp,
                    "boto3": pp,
                    **gp_sampler.report(gp["files"]),
                }
            )
        if paced:  # one phase per load, lowest first
            report["paced"] = paced
            report["snapshot_p99_under_250_ms_up_to_MB_per_s"] = {
                path: reach(paced, path) for path in ("gateway", "boto3")
            }
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
