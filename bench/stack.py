"""What the gateway benches share: SeaweedFS, a fresh PostgreSQL database with
subscribed recorders, and gateway processes started on them and stopped after."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from cli.devstack.seaweed import SeaweedServer

BIN = str(Path(sys.executable).parent / "cam2drive")
PG_ADMIN = os.environ.get("CAM2DRIVE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass
class BenchStack:
    tmp: Path
    weed: SeaweedServer
    db: str  # the database's name
    url: str  # its SQLAlchemy URL
    logins: list[tuple[str, str]]  # (username, password) of each recorder
    gateways: list[subprocess.Popen] = field(default_factory=list)  # type: ignore[type-arg]

    def env(self, bucket: str, **settings: str) -> dict[str, str]:
        """The environment of a gateway on this stack (`settings`: CAM2DRIVE_* values)."""
        return {
            **os.environ,
            **self.weed.env(),
            "CAM2DRIVE_DATABASE_URL": self.url,
            "CAM2DRIVE_S3_BUCKET": bucket,
            **settings,
        }

    def ftp_env(self, bucket: str, ftp_port: int, passive: str, **settings: str) -> dict[str, str]:
        """`env` for an FTP gateway on 127.0.0.1:`ftp_port`, passive ports `passive`."""
        return self.env(
            bucket,
            CAM2DRIVE_FTP_HOST="127.0.0.1",
            CAM2DRIVE_FTP_PORT=str(ftp_port),
            CAM2DRIVE_FTP_PASSIVE_PORTS=passive,
            **settings,
        )

    def start_gateway(self, kind: str, env: dict[str, str]) -> subprocess.Popen:  # type: ignore[type-arg]
        """`cam2drive gateway <kind>`, its stderr in `<tmp>/<kind>.log`; stopped on exit."""
        proc = subprocess.Popen(
            [BIN, "gateway", kind],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.tmp / f"{kind}.log", "w"),
        )  # noqa: SIM115
        self.gateways.append(proc)
        return proc

    def wait_for_ports(self, *ports: int, timeout: float = 120) -> None:
        """Until every port accepts; exits if a gateway died or time ran out
        (the first start makes SFTP host keys, hence the long default)."""
        for port in ports:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or any(
                        g.poll() is not None for g in self.gateways
                    ):
                        raise SystemExit(f"a gateway did not start; see {self.tmp}") from None
                    time.sleep(0.2)


@contextmanager
def bench_stack(tag: str, recorders: int) -> Iterator[BenchStack]:
    """SeaweedFS and a fresh database with `recorders` devices on a 1 TB rotating
    plan; gateways started through the stack, the database and S3 gone after."""
    from billing.catalog import PlanTerms
    from billing.core.db import make_engine, session_scope
    from billing.core.schema import upgrade
    from cli.devstack.demo import add_seller

    plan = PlanTerms("AC-ST-1T", "1TB", "1.00")

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        weed = SeaweedServer(tmp / "weed").start()
        name = f"c2d_{tag}_{os.getpid()}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = (
            PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
            + f"/{name}"
        )
        stack = BenchStack(tmp, weed, name, url, [])
        try:
            upgrade(url)
            engine = make_engine(url)
            with session_scope(engine) as s:
                seller = add_seller(s, "Bench", "bench@example.com", plan, "bench")
                for i in range(recorders):
                    new = seller.add_recorder(s, f"c{i}@bench.mx", f"NVR {i}")
                    stack.logins.append((new.device.username, new.password))
            engine.dispose()
            yield stack
        finally:
            for proc in stack.gateways:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            weed.stop()
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
