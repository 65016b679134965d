"""The ERP API under load: PUT contracts and GET their status at concurrency 50.

The HTTP service runs as its own process (`cam2drive http serve`, with
`--workers` uvicorn workers, one by default), on SQLite and on a fresh
PostgreSQL database; the load comes from this process (httpx, asyncio) on
the same machine. Each run prints p50, p99 and req/s for:

* `put`: new contracts, each a customer, a recorder, a drive and its
  subscription (no `customer.password`: its argon2 hash would be the figure);
* `get`: the status of those contracts;
* `get@R`, `put@R`: the same at a paced R req/s (`--rate`), the issue's
  target being p99 < 50 ms at 200 req/s on PostgreSQL.

Usage: python bench/api.py [--puts 1000] [--gets 3000] [--rate 200] [--db sqlite,postgresql]
                          [--workers 1,2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from billing import apikeys, catalog  # noqa: E402
from billing.contracts import set_wholesale_price  # noqa: E402
from billing.core.db import make_engine, session_scope  # noqa: E402
from billing.core.schema import upgrade  # noqa: E402
from cli.devstack.seaweed import free_port  # noqa: E402

BIN = str(Path(sys.executable).parent / "cam2drive")
PG_ADMIN = os.environ.get("CAM2DRIVE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
CONCURRENCY = 50


def seed(url: str) -> tuple[str, str, str]:
    """A distributor selling one plan, with an API key: (key_id, secret, label)."""
    engine = make_engine(url)
    with session_scope(engine) as s:
        dist = catalog.add_distributor(s, name="Bench ISP", email="bench@example.com", actor="b")
        terms = catalog.PlanTerms("BENCH-50", "50GB", "99.00", "BRL")
        catalog.add_plan(s, terms, actor="b")
        set_wholesale_price(s, dist.id, "BENCH-50", "39.90", actor="b")  # type: ignore[arg-type]
        key = apikeys.create(s, dist.id, actor="b")  # type: ignore[arg-type]
        out = key.key.key_id, key.secret, "BENCH-50"
    engine.dispose()
    return out


def body(label: str) -> dict[str, object]:
    tag = uuid.uuid4().hex[:12]
    return {
        "label": label,
        "customer": {
            "name": f"Cliente {tag}",
            "email": f"{tag}@example.com",
            "phone": "+55 11 91234-5678",
            "document": "52998224725",
        },
    }


async def run(
    client: httpx.AsyncClient, requests: list[tuple[str, str, object]], rate: float | None
) -> tuple[list[float], float, int]:
    """Send `requests` with at most CONCURRENCY in flight (paced at `rate` if given);
    (latencies in ms, wall seconds, errors)."""
    latencies: list[float] = []
    errors = 0
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(method: str, path: str, payload: object) -> None:
        nonlocal errors
        async with gate:
            started = time.perf_counter()
            reply = await client.request(method, path, json=payload)
            latencies.append((time.perf_counter() - started) * 1000)
            if reply.status_code >= 400:
                errors += 1

    started = time.perf_counter()
    tasks = []
    for i, (method, path, payload) in enumerate(requests):
        if rate:
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(method, path, payload)))
    await asyncio.gather(*tasks)
    return latencies, time.perf_counter() - started, errors


def report(db: str, name: str, result: tuple[list[float], float, int]) -> None:
    latencies, wall, errors = result
    cuts = statistics.quantiles(latencies, n=100)
    print(
        f"{db:<13} {name:<9} n={len(latencies):<5} p50={cuts[49]:6.1f} ms  "
        f"p99={cuts[98]:6.1f} ms  {len(latencies) / wall:7.1f} req/s  errors={errors}",
        flush=True,
    )


async def bench(db: str, url: str, args: argparse.Namespace, workers: int) -> None:
    key_id, secret, label = seed(url)
    db = f"{db}/{workers}w"
    port = free_port()
    env = {
        **os.environ,
        "CAM2DRIVE_DATABASE_URL": url,
        "CAM2DRIVE_S3_ENDPOINT_URL": "http://127.0.0.1:9",  # never called by these routes
    }
    server = subprocess.Popen(
        [BIN, "http", "serve", "--port", str(port), *(["--workers", str(workers)] * (workers > 1))],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(os.environ.get("BENCH_SERVER_LOG", os.devnull), "w"),  # noqa: SIM115
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(
            base_url=base,
            auth=(key_id, secret),
            timeout=60,
            # idle connections dropped before uvicorn's 5 s keep-alive ends them:
            # a request sent on one it is closing fails with ReadError
            limits=httpx.Limits(max_connections=CONCURRENCY, keepalive_expiry=3),
        ) as client:
            for _ in range(200):
                try:
                    if (await client.get("/livez")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            ids = [f"B-{i}" for i in range(args.puts)]
            puts = [("PUT", f"/api/v1/contracts/{cid}", body(label)) for cid in ids]
            report(db, "put", await run(client, puts, None))
            gets = [
                ("GET", f"/api/v1/contracts/{ids[i % len(ids)]}", None) for i in range(args.gets)
            ]
            report(db, "get", await run(client, gets, None))
            if args.rate:
                seconds = 10
                n = int(args.rate * seconds)
                report(db, f"get@{args.rate:g}", await run(client, gets[:n], args.rate))
                more = [("PUT", f"/api/v1/contracts/P-{i}", body(label)) for i in range(n)]
                report(db, f"put@{args.rate:g}", await run(client, more, args.rate))
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--puts", type=int, default=1000, help="new contracts to PUT")
    parser.add_argument("--gets", type=int, default=3000, help="GETs of their status")
    parser.add_argument("--rate", type=float, default=200, help="paced phase req/s (0: none)")
    parser.add_argument("--db", default="sqlite,postgresql", help="databases to run on")
    parser.add_argument("--workers", default="1", help="server processes, e.g. 1,2")
    args = parser.parse_args()
    for db, workers in [(db, int(w)) for db in args.db.split(",") for w in args.workers.split(",")]:
        if db == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                url = f"sqlite:///{tmp}/bench.db"
                upgrade(url)
                asyncio.run(bench(db, url, args, workers))
        else:
            name = f"c2d_bench_api_{uuid.uuid4().hex[:6]}"
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
            try:
                upgrade(url)
                pg = url.replace("postgresql://", "postgresql+psycopg://")
                asyncio.run(bench(db, pg, args, workers))
            finally:
                with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
