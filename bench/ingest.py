"""Ingest benchmark: FTP gateway vs direct boto3, same files, same SeaweedFS, one run.

    .venv/bin/python bench/ingest.py [--big-mb 200] [--snapshots 500] [--snap-kb 200]

Prints MB/s for one large file and files/s for snapshots through each path,
their ratios, and the gateway process's peak RSS. Unless --ftp-only: SFTP
uploads against Debian's `rclone serve sftp` on the same SeaweedFS, viewer
downloads (FTP, SFTP) against boto3 GetObject, and, where sshd is installed,
OpenSSH's own sftp-server on local files with the same client (curl) as the
SSH ceiling. Figures go in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import ftplib
import io
import json
import os
import pwd
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

import boto3
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from billing.core.settings import Settings  # noqa: E402
from cli.devstack.seaweed import SeaweedServer, free_port  # noqa: E402
from gateway.store import client_config  # noqa: E402

BIN = str(Path(sys.executable).parent / "cam2drive")


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.05)


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def _curl_transfer(args: list[str]) -> tuple[float, int]:
    """Seconds of data transfer and bytes moved, by curl's own clock.

    From `time_pretransfer` (SSH handshake, login and SFTP start-up done) to
    the end, so an SFTP figure is the transfer alone, as boto3's and FTP's
    are (their clients and logins are made before the clock starts). The
    handshake (~0.1-0.2 s here, argon2 for viewers) is not a throughput.
    """
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "-k",
            "-w",
            "%{time_pretransfer} %{time_total} %{size_upload} %{size_download}",
            *args,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    pre, total, up, down = out.split()
    return float(total) - float(pre), int(float(up)) + int(float(down))


def sftp_put(url: str, src: Path, *extra: str) -> float:
    """MB/s of one SFTP upload by curl (libssh2, C): the same client for every
    server, fast enough that the server is what is measured."""
    seconds, moved = _curl_transfer([*extra, "-T", str(src), url])
    assert moved == src.stat().st_size, moved
    return moved / 1e6 / seconds


def sftp_get(url: str, size: int, *extra: str) -> float:
    seconds, moved = _curl_transfer([*extra, "-o", "/dev/null", url])
    assert moved == size, moved
    return size / 1e6 / seconds


def sftp_url(port: int, user: str, password: str | None, path: str) -> str:
    auth = quote(user) + (f":{quote(password)}" if password is not None else "")
    return f"sftp://{auth}@127.0.0.1:{port}{path}"


class OpenSSHServer:
    """OpenSSH's own sshd + sftp-server (C) on local files: what SSH itself
    costs on this machine with the same client, the ceiling any SFTP
    server's figures should be read against. Optional: skipped without sshd."""

    SSHD = "/usr/sbin/sshd"

    def __init__(self, work: Path) -> None:
        self.dir = work / "openssh"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OpenSSHServer | None:
        if not os.path.exists(self.SSHD):
            return None
        self.dir.mkdir()
        for name in ("host", "client"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.dir / name)],
                check=True,
            )
        (self.dir / "authorized_keys").write_bytes((self.dir / "client.pub").read_bytes())
        config = self.dir / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\n"
            f"HostKey {self.dir / 'host'}\nPidFile {self.dir / 'pid'}\n"
            f"AuthorizedKeysFile {self.dir / 'authorized_keys'}\n"
            "StrictModes no\nPermitRootLogin yes\nUsePAM no\n"
            "PasswordAuthentication no\n"
            "Subsystem sftp /usr/lib/openssh/sftp-server\n"
        )
        os.makedirs("/run/sshd", exist_ok=True)
        self.proc = subprocess.Popen(
            [self.SSHD, "-D", "-e", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "sshd.log", "wb"),
        )
        wait_port(self.port)
        return self

    def curl_args(self) -> list[str]:
        return ["--key", str(self.dir / "client"), "--pubkey", str(self.dir / "client.pub")]

    def url(self, path: Path) -> str:
        return sftp_url(self.port, pwd.getpwuid(os.getuid()).pw_name, None, str(path))

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


def cli(env: dict[str, str], *args: str) -> dict:  # type: ignore[type-arg]
    out = subprocess.run(
        [BIN, *args, "--json"], env=env, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--big-mb", type=int, default=200, help="size of the one large file, MB")
    ap.add_argument("--snapshots", type=int, default=500, help="snapshots per path")
    ap.add_argument("--snap-kb", type=int, default=200, help="snapshot size, KB")
    ap.add_argument("--concurrency", type=int, default=8, help="parallel sessions/threads")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians)")
    ap.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    ap.add_argument(
        "--ftp-only",
        action="store_true",
        help="the core issue's bench alone: FTP uploads vs boto3 (no SFTP, rclone "
        "or viewer downloads), so the FTP gateway's peak RSS is ingest's",
    )
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="c2d-bench-"))
    weed = SeaweedServer(work / "weed").start()
    db_url = args.database_url or f"sqlite:///{work / 'bench.db'}"
    port, sftp_port, rclone_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        **weed.env(),
        "CAM2DRIVE_DATABASE_URL": db_url,
        "CAM2DRIVE_S3_BUCKET": "bench",
        "CAM2DRIVE_FTP_HOST": "127.0.0.1",
        "CAM2DRIVE_FTP_PORT": str(port),
        "CAM2DRIVE_FTP_PASSIVE_PORTS": "47000-47199",
        "CAM2DRIVE_SFTP_HOST": "127.0.0.1",
        "CAM2DRIVE_SFTP_PORT": str(sftp_port),
        "CAM2DRIVE_SFTP_HOST_KEY_DIR": str(work / "hostkeys"),
    }
    gw = sgw = rclone = openssh = None
    try:
        subprocess.run([BIN, "db", "upgrade"], env=env, check=True, capture_output=True)
        dist = cli(env, "distributor", "add", "--name", "Bench", "--email", "b@example.com")
        cust = cli(
            env, "customer", "add", "--distributor", str(dist["id"]), "--email", "c@example.com"
        )
        cli(env, "plan", "add", "BENCH", "--capacity", "100GB", "--price", "1", "--currency", "MXN")
        dev = cli(env, "device", "add", "--customer", str(cust["id"]), "--name", "bench")
        cli(env, "subscription", "grant", "--device", str(dev["id"]), "--plan", "BENCH")
        gw = subprocess.Popen(
            [BIN, "gateway", "ftp"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(work / "gateway.log", "wb"),
        )
        ports = [port]
        if not args.ftp_only:  # the SFTP gateway and its peer, rclone serve sftp
            sgw = subprocess.Popen(
                [BIN, "gateway", "sftp"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=open(work / "sftp.log", "wb"),
            )
            remote = (
                f":s3,provider=Other,env_auth=false,"
                f"access_key_id={env['AWS_ACCESS_KEY_ID']},"
                f"secret_access_key={env['AWS_SECRET_ACCESS_KEY']},"
                f"endpoint='{weed.endpoint}':bench/rclone"
            )
            rclone = subprocess.Popen(
                [
                    "rclone",
                    "serve",
                    "sftp",
                    remote,
                    "--addr",
                    f"127.0.0.1:{rclone_port}",
                    "--user",
                    "peer",
                    "--pass",
                    "peer-password",
                ],
                stdout=subprocess.DEVNULL,
                # a custom CA bundle breaks rclone's plain-HTTP S3 client
                env={k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"},
                stderr=open(work / "rclone.log", "wb"),
            )
            ports += [sftp_port, rclone_port]
            openssh = OpenSSHServer(work).start()
        for p in ports:
            wait_port(p)
        subprocess.run(
            [BIN, "customer", "set-password", "c@example.com", "--password-stdin"],
            env=env,
            input="viewer-password\n",
            text=True,
            check=True,
            capture_output=True,
        )
        rss = RssSampler(gw.pid)
        srss = RssSampler(sgw.pid) if sgw is not None else None
        if srss is not None:
            srss.start()
        rss.start()
        time.sleep(0.3)
        idle_rss = rss.peak

        s3 = boto3.client(
            "s3",
            endpoint_url=weed.endpoint,
            region_name="us-east-1",
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            # the gateway's own client settings: the reference does
            # the same S3 work per byte (payload signing, checksums)
            config=client_config(Settings(s3_endpoint_url=weed.endpoint)),
        )
        big = os.urandom(args.big_mb * 1_000_000)
        big_file = work / "big.bin"
        big_file.write_bytes(big)
        snaps = [os.urandom(args.snap_kb * 1000) for _ in range(args.snapshots)]
        n = args.concurrency

        def login() -> ftplib.FTP:
            c = ftplib.FTP()
            c.connect("127.0.0.1", port)
            c.login(dev["username"], dev["password"])
            c.voidcmd("TYPE I")
            return c

        def boto_big(r: int) -> float:
            t0 = time.perf_counter()
            s3.upload_fileobj(io.BytesIO(big), "bench", f"direct/big{r}.bin")
            return len(big) / 1e6 / (time.perf_counter() - t0)

        def ftp_big(r: int) -> float:
            c = login()
            t0 = time.perf_counter()
            c.voidcmd(f"ALLO {len(big)}")  # as Dahua firmwares do
            c.storbinary(f"STOR big{r}.dav", io.BytesIO(big), blocksize=256 * 1024)
            mbps = len(big) / 1e6 / (time.perf_counter() - t0)
            c.quit()
            return mbps

        def boto_snaps(idx: list[int], r: int) -> None:
            for i in idx:
                s3.put_object(Bucket="bench", Key=f"direct/r{r}/{i}.jpg", Body=snaps[i])

        def ftp_snaps(idx: list[int], r: int) -> None:
            c = login()
            for i in idx:
                c.voidcmd(f"ALLO {len(snaps[i])}")
                c.storbinary(f"STOR r{r}-{i}[M][0@0][0].jpg", io.BytesIO(snaps[i]))
            c.quit()

        def spread(fn, workers: int, r: int) -> float:  # type: ignore[no-untyped-def]
            chunks = [list(range(i, len(snaps), workers)) for i in range(workers)]
            threads = [threading.Thread(target=fn, args=(c, r)) for c in chunks]
            t0 = time.perf_counter()
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            return len(snaps) / (time.perf_counter() - t0)

        # Interleave the two paths, round after round, and keep medians: this
        # machine is shared and a single pass can be off by 30 %.
        def boto_get(r: int) -> float:
            t0 = time.perf_counter()
            body = s3.get_object(Bucket="bench", Key=f"direct/big{r}.bin")["Body"].read()
            assert len(body) == len(big)
            return len(body) / 1e6 / (time.perf_counter() - t0)

        def ftp_viewer_get(r: int) -> float:
            c = ftplib.FTP()
            c.connect("127.0.0.1", port)
            c.login("c@example.com", "viewer-password")
            got = 0

            def sink(block: bytes) -> None:
                nonlocal got
                got += len(block)

            t0 = time.perf_counter()
            c.retrbinary(f"RETR /bench/big{r}.dav", sink, blocksize=256 * 1024)
            mbps = got / 1e6 / (time.perf_counter() - t0)
            c.quit()
            assert got == len(big)
            return mbps

        runs: dict[str, list[float]] = {
            k: []
            for k in (
                "boto3_big_MBps",
                "ftp_big_MBps",
                "sftp_big_MBps",
                "rclone_sftp_big_MBps",
                "boto3_get_MBps",
                "ftp_viewer_get_MBps",
                "sftp_viewer_get_MBps",
                "openssh_put_MBps",
                "openssh_get_MBps",
                "boto3_snap_fps",
                "ftp_snap_fps",
                f"boto3_snap_fps_x{n}",
                f"ftp_snap_fps_x{n}",
            )
        }
        for r in range(args.rounds):
            runs["boto3_big_MBps"].append(boto_big(r))
            runs["ftp_big_MBps"].append(ftp_big(r))
            if not args.ftp_only:
                runs["sftp_big_MBps"].append(
                    sftp_put(
                        sftp_url(sftp_port, dev["username"], dev["password"], f"/sftp-big{r}.dav"),
                        big_file,
                    )
                )
                runs["rclone_sftp_big_MBps"].append(
                    sftp_put(
                        sftp_url(rclone_port, "peer", "peer-password", f"/rclone-big{r}.dav"),
                        big_file,
                    )
                )
                if openssh is not None:
                    runs["openssh_put_MBps"].append(
                        sftp_put(
                            openssh.url(work / f"openssh/up{r}.bin"), big_file, *openssh.curl_args()
                        )
                    )
                    runs["openssh_get_MBps"].append(
                        sftp_get(openssh.url(big_file), len(big), *openssh.curl_args())
                    )
                runs["boto3_get_MBps"].append(boto_get(r))
                runs["ftp_viewer_get_MBps"].append(ftp_viewer_get(r))
                runs["sftp_viewer_get_MBps"].append(
                    sftp_get(
                        sftp_url(
                            sftp_port, "c@example.com", "viewer-password", f"/bench/big{r}.dav"
                        ),
                        len(big),
                    )
                )
            runs["boto3_snap_fps"].append(spread(boto_snaps, 1, r))
            runs["ftp_snap_fps"].append(spread(ftp_snaps, 1, r))
            runs[f"boto3_snap_fps_x{n}"].append(spread(boto_snaps, n, 100 + r))
            runs[f"ftp_snap_fps_x{n}"].append(spread(ftp_snaps, n, 100 + r))
        rss.stop.set()
        rss.join()
        results: dict[str, float] = {k: statistics.median(v) for k, v in runs.items() if v}
        results[f"ratio_snap_x{n}"] = statistics.median(
            f / b
            for f, b in zip(runs[f"ftp_snap_fps_x{n}"], runs[f"boto3_snap_fps_x{n}"], strict=True)
        )
        results["gateway_idle_rss_MB"] = idle_rss / 1e6
        if srss is not None:
            srss.stop.set()
            srss.join()
            results["sftp_gateway_peak_rss_MB"] = srss.peak / 1e6

        def ratio(a: str, b: str) -> float:
            return statistics.median(x / y for x, y in zip(runs[a], runs[b], strict=True))

        if not args.ftp_only:
            results["ratio_sftp_vs_rclone"] = ratio("sftp_big_MBps", "rclone_sftp_big_MBps")
            results["ratio_sftp_vs_boto3"] = ratio("sftp_big_MBps", "boto3_big_MBps")
            results["ratio_ftp_viewer_get"] = ratio("ftp_viewer_get_MBps", "boto3_get_MBps")
            results["ratio_sftp_viewer_get"] = ratio("sftp_viewer_get_MBps", "boto3_get_MBps")
            if runs["openssh_get_MBps"]:
                results["ratio_sftp_vs_openssh_put"] = ratio("sftp_big_MBps", "openssh_put_MBps")
                results["ratio_sftp_vs_openssh_get"] = ratio(
                    "sftp_viewer_get_MBps", "openssh_get_MBps"
                )
                results["ratio_openssh_get_vs_boto3"] = ratio("openssh_get_MBps", "boto3_get_MBps")
        results["ratio_big"] = statistics.median(
            f / b for f, b in zip(runs["ftp_big_MBps"], runs["boto3_big_MBps"], strict=True)
        )
        results["ratio_snap"] = statistics.median(
            f / b for f, b in zip(runs["ftp_snap_fps"], runs["boto3_snap_fps"], strict=True)
        )
        results["gateway_peak_rss_MB"] = rss.peak / 1e6
        print(f"medians of {args.rounds} interleaved rounds")
        print(
            f"large file ({args.big_mb} MB):   boto3 {results['boto3_big_MBps']:7.1f} MB/s   "
            f"FTP {results['ftp_big_MBps']:7.1f} MB/s   ratio {results['ratio_big']:.2f} "
            f"(target >= 0.9)"
        )
        print(
            f"snapshots ({args.snapshots} x {args.snap_kb} KB): boto3 "
            f"{results['boto3_snap_fps']:7.1f} files/s  FTP {results['ftp_snap_fps']:7.1f} "
            f"files/s  ratio {results['ratio_snap']:.2f} (target >= 0.7)"
        )
        print(
            f"snapshots, {n} at once:      boto3 {results[f'boto3_snap_fps_x{n}']:7.1f} files/s  "
            f"FTP {results[f'ftp_snap_fps_x{n}']:7.1f} files/s  ratio "
            f"{results[f'ratio_snap_x{n}']:.2f}"
        )
        if not args.ftp_only:
            print(
                f"SFTP upload ({args.big_mb} MB):  gateway {results['sftp_big_MBps']:7.1f} MB/s   "
                f"rclone serve sftp {results['rclone_sftp_big_MBps']:7.1f} MB/s   ratio "
                f"{results['ratio_sftp_vs_rclone']:.2f} (target >= 1.2); vs boto3 "
                f"{results['ratio_sftp_vs_boto3']:.2f} (target >= 0.8)"
            )
            print(
                f"viewer download:        boto3 GetObject {results['boto3_get_MBps']:7.1f} MB/s   "
                f"FTP {results['ftp_viewer_get_MBps']:7.1f} ({results['ratio_ftp_viewer_get']:.2f})"
                f"   SFTP {results['sftp_viewer_get_MBps']:7.1f} "
                f"({results['ratio_sftp_viewer_get']:.2f}) (target >= 0.8)"
            )
            if runs["openssh_get_MBps"]:
                print(
                    f"OpenSSH sftp-server (C, local files; the SSH ceiling): put "
                    f"{results['openssh_put_MBps']:7.1f} MB/s (gateway "
                    f"{results['ratio_sftp_vs_openssh_put']:.2f} of it)   get "
                    f"{results['openssh_get_MBps']:7.1f} MB/s (gateway "
                    f"{results['ratio_sftp_vs_openssh_get']:.2f} of it; itself "
                    f"{results['ratio_openssh_get_vs_boto3']:.2f} x boto3 GetObject)"
                )
            print(f"SFTP gateway peak RSS: {results['sftp_gateway_peak_rss_MB']:.0f} MB")
        print(
            f"gateway peak RSS: {results['gateway_peak_rss_MB']:.0f} MB (idle "
            f"{results['gateway_idle_rss_MB']:.0f} MB; target < 150)"
        )
        print(json.dumps({k: round(v, 3) for k, v in results.items()}))
    finally:
        if openssh is not None:
            openssh.stop()
        for proc in (gw, sgw, rclone):
            if proc is not None:
                proc.terminate()
                proc.wait(10)
        weed.stop()


if __name__ == "__main__":
    main()
