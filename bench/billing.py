"""Billing benchmark: one billing run over 10k, 50k and 100k paid subscriptions.

    .venv/bin/python bench/billing.py [--sizes 10000,50000,100000] [--db sqlite,postgresql]

For each database and size: a fresh database, N subscriptions whose payers
accepted on 2026-11-22 (seeded into the Mercado Pago emulator, which runs
in its own process and is reached over HTTP through the official SDK), then:

  activation   2026-11-22: every subscription is pending; the pass polls all
  again        the same day: must poll none
  renewal      2026-12-05, the billing day: every installment is due; polls all
  again        the same day: must poll none

Prints per run: subscriptions polled, seconds, database round trips, Mercado
Pago calls, and the cost per subscription. Figures go in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import event, insert

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from billing.core.db import make_engine, session_scope  # noqa: E402
from billing.core.models import Customer, Device, Drive, Subscription  # noqa: E402
from billing.core.schema import upgrade  # noqa: E402
from billing.core.settings import Settings  # noqa: E402
from billing.cycle import billing_pass  # noqa: E402
from billing.payments.mercadopago import MercadoPago  # noqa: E402
from billing.subscriptions.lifecycle import ensure_mp_plan  # noqa: E402
from cli.devstack.demo import DEMO_PLAN, add_seller  # noqa: E402
from cli.devstack.seaweed import free_port  # noqa: E402

PG_ADMIN = os.environ.get("CAM2DRIVE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
START, RENEWAL = date(2026, 11, 22), date(2026, 12, 5)
EMULATOR = """
import sys, time
from datetime import date
from cli.devstack.mp_emulator import MercadoPagoEmulator
emu = MercadoPagoEmulator(port=int(sys.argv[1]), today=date(2026, 11, 22)).start()
print("ready", flush=True)
time.sleep(10**6)
"""


def post(url: str, body: object) -> object:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=600) as resp:
        return json.loads(resp.read())


class Counted(MercadoPago):
    """The real client, counting its calls to Mercado Pago."""

    calls = 0

    def get_preapproval(self, preapproval_id: str):  # type: ignore[no-untyped-def]
        Counted.calls += 1
        return super().get_preapproval(preapproval_id)

    def installments(self, preapproval_id: str):  # type: ignore[no-untyped-def]
        Counted.calls += 1
        return super().installments(preapproval_id)

    def payments_updated(self, begin: str, end: str, page: int = 1000):  # type: ignore[no-untyped-def]
        for results in super().payments_updated(begin, end, page):
            Counted.calls += 1  # one search call per page
            yield results


def fresh_database(kind: str, n: int, tmp: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp / f'bench-{n}.db'}"
    name = f"c2d_bench_{n}_{os.getpid()}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"


def drop_database(url: str) -> None:
    if url.startswith("postgresql"):
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed(url: str, n: int, mp: MercadoPago, emu_url: str) -> None:
    engine = make_engine(url)
    with session_scope(engine) as s:
        seller = add_seller(s, "Bench", "bench@example.com", DEMO_PLAN, "bench")
        mp_plan = ensure_mp_plan(s, mp, seller.plan, 5)
        dist_id, plan_id = seller.distributor.id, seller.plan.id
    ids: list[str] = []
    for lo in range(1, n + 1, 5000):
        batch = [
            {"payer_email": f"c{i}@bench.mx", "external_reference": f"sub-{i}"}
            for i in range(lo, min(lo + 5000, n + 1))
        ]
        ids += post(
            f"{emu_url}/__emulator/seed", {"preapproval_plan_id": mp_plan, "payers": batch}
        )["ids"]  # type: ignore[index]
    now = datetime.now(UTC)
    # subscription i: customer i, device i and drive i, inserted 5 000 rows a statement
    rows: dict[Any, Callable[[int], dict[str, object]]] = {
        Customer: lambda i: dict(
            id=i, distributor_id=dist_id, email=f"c{i}@bench.mx", created_at=now
        ),
        Device: lambda i: dict(
            id=i,
            customer_id=i,
            name=f"NVR {i}",
            username=f"c2d-b{i}",
            secret_hash="x",
            created_at=now,
        ),
        Drive: lambda i: dict(
            id=i,
            device_id=i,
            prefix=f"t/{i}/d/{i}/",
            capacity_bytes=0,
            committed_bytes=0,
            reserved_bytes=0,
            object_count=0,
        ),
        Subscription: lambda i: dict(
            id=i,
            device_id=i,
            plan_id=plan_id,
            status="pending",
            kind="paid",
            created_at=now,
            updated_at=now,
            mp_preapproval_id=ids[i - 1],
            start_date=START,
            first_charge=Decimal("86.23"),
            cancel_at_period_end=False,
        ),
    }
    with engine.begin() as conn:
        for lo in range(0, n, 5000):
            rng = range(lo + 1, min(lo + 5001, n + 1))
            for model, row in rows.items():
                conn.execute(insert(model.__table__), [row(i) for i in rng])
    if url.startswith("postgresql"):  # explicit ids: move the sequences past them
        with engine.begin() as conn:
            for table in ("customers", "devices", "drives", "subscriptions"):
                conn.exec_driver_sql(f"SELECT setval('{table}_id_seq', {n})")
    engine.dispose()


def timed_pass(
    url: str, mp: MercadoPago, settings: Settings, today: date, now: datetime
) -> dict[str, object]:
    engine = make_engine(url)
    trips = [0]

    @event.listens_for(engine, "before_cursor_execute")
    def _count(*_: object) -> None:
        trips[0] += 1

    Counted.calls = 0
    started = time.perf_counter()
    report = billing_pass(engine, mp, None, settings, today, now=now)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    engine.dispose()
    polled = len(report.polled)
    return {
        "polled": polled,
        "seconds": round(seconds, 2),
        "db_round_trips": trips[0],
        "mp_calls": Counted.calls,
        "ms_per_subscription": round(seconds * 1000 / polled, 3) if polled else None,
        "errors": len(report.errors) + len(report.unreachable),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sizes",
        default="10000,50000,100000",
        help="comma-separated subscription counts, one billing run each",
    )
    ap.add_argument(
        "--db",
        default="sqlite,postgresql",
        help="comma-separated databases to run on: sqlite, postgresql",
    )
    ap.add_argument(
        "--poll",
        action="store_true",
        help="poll each subscription (no payment feed): the before figures",
    )
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for kind in args.db.split(","):
            for n in (int(x) for x in args.sizes.split(",")):
                port = free_port()
                emu = subprocess.Popen(
                    [sys.executable, "-c", EMULATOR, str(port)],
                    stdout=subprocess.PIPE,
                    text=True,
                    cwd=ROOT,
                    env={**os.environ, "PYTHONPATH": str(ROOT)},
                )
                assert emu.stdout is not None and emu.stdout.readline().strip() == "ready"
                emu_url = f"http://127.0.0.1:{port}"
                url = fresh_database(kind, n, tmp)
                try:
                    upgrade(url)
                    mp = Counted("TEST-bench", emu_url, timeout=30)
                    t0 = time.perf_counter()
                    seed(url, n, mp, emu_url)
                    print(f"{kind} {n}: seeded in {time.perf_counter() - t0:.1f}s", flush=True)
                    settings = Settings(
                        database_url=url, billing_feed_min=10**9 if args.poll else 50
                    )
                    noon = datetime(2026, 11, 22, 12, tzinfo=UTC)
                    runs = {
                        "activation": timed_pass(url, mp, settings, START, noon),
                        "activation_again": timed_pass(
                            url, mp, settings, START, noon + timedelta(minutes=5)
                        ),
                    }
                    post(f"{emu_url}/__emulator/clock", {"date": RENEWAL.isoformat()})
                    renewal = noon + timedelta(days=13)
                    runs["renewal"] = timed_pass(url, mp, settings, RENEWAL, renewal)
                    runs["renewal_again"] = timed_pass(
                        url, mp, settings, RENEWAL, renewal + timedelta(minutes=5)
                    )
                    for name, r in runs.items():
                        print(f"  {kind:10} {n:>7} {name:17} {json.dumps(r)}", flush=True)
                    results.append({"db": kind, "subscriptions": n, **runs})
                finally:
                    emu.kill()
                    drop_database(url)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
