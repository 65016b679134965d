"""`cam2drive http serve --workers N`: several uvicorn processes behind one port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from billing import apikeys, catalog
from billing.core.db import make_engine, session_scope
from cli.devstack.seaweed import free_port
from tests.support.wait import wait_for

BIN = str(Path(sys.executable).parent / "cam2drive")


def _workers(pid: int) -> list[int]:
    """Live uvicorn workers of `pid`: spawned children (not the resource tracker), not zombies."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            state, ppid = stat.rsplit(")", 1)[1].split()[:2]
            if int(ppid) == pid and state != "Z" and b"spawn_main" in cmdline:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_workers_each_build_their_parts_and_stop_with_the_server(
    db_url: str, tmp_path: Path
) -> None:
    engine = make_engine(db_url)
    with session_scope(engine) as s:
        dist = catalog.add_distributor(s, name="Workers ISP", email="w@example.com", actor="t")
        assert dist.id is not None
        key = apikeys.create(s, dist.id, actor="t")
        key_id, secret = key.key.key_id, key.secret
    engine.dispose()
    config = tmp_path / "cam2drive.toml"  # the workers are spawned: they read this file
    config.write_text(f'database_url = "{db_url}"\ns3_endpoint_url = "http://127.0.0.1:9"\n')
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAM2DRIVE_")}
    server = subprocess.Popen(
        [BIN, "--config", str(config), "http", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            try:
                return httpx.get(f"{url}/livez", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(answers, what="the HTTP workers")
        wait_for(lambda: len(_workers(server.pid)) == 2, what="two worker processes")
        with httpx.Client(base_url=url, auth=(key_id, secret), timeout=10) as client:
            # each request may land on either worker: all of them read the database
            for _ in range(20):
                assert client.get("/api/v1/products").json() == []
            assert client.get("/api/v1/contracts/NOPE").status_code == 404
        workers = _workers(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=60)
    assert server.returncode == 0, err.decode()[-2000:]
    assert len(workers) == 2 and not any(_alive(pid) for pid in workers)
