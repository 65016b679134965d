"""The HTTP service's Prometheus metrics: its requests, and cluster facts read at scrape time.

Requests are counted by method, route template (never the raw path: a
contract id would make a series per contract) and status. Reservations,
bans, contracts by status and the callback outbox are read from the
database when Prometheus scrapes, so any one HTTP node reports them for
the whole cluster. The gateways' and scheduler's own counters are served
by those processes (`metrics_port`, gateway/metrics.py, billing/metrics.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from billing.core.db import reader
from billing.core.models import (
    CallbackEvent,
    Contract,
    LoginFailure,
    Reservation,
    Subscription,
    utcnow,
)

log = logging.getLogger("cam2drive.web")


class ClusterFacts(Collector):
    """Gauges read from the database at each scrape (a few aggregate queries)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        res = Reservation.__table__  # type: ignore[attr-defined]
        bans = LoginFailure.__table__  # type: ignore[attr-defined]
        subs = Subscription.__table__  # type: ignore[attr-defined]
        contracts = Contract.__table__  # type: ignore[attr-defined]
        events = CallbackEvent.__table__  # type: ignore[attr-defined]
        try:
            with reader(self.engine).connect() as conn:
                count, size = conn.execute(
                    select(func.count(), func.coalesce(func.sum(res.c.bytes), 0))
                ).one()
                banned = conn.execute(
                    select(func.count()).where(bans.c.banned_until > utcnow())
                ).scalar_one()
                by_status = conn.execute(
                    select(subs.c.status, func.count())
                    .select_from(contracts.join(subs, subs.c.id == contracts.c.subscription_id))
                    .group_by(subs.c.status)
                ).all()
                outbox = conn.execute(
                    select(events.c.status, func.count()).group_by(events.c.status)
                ).all()
        except SQLAlchemyError as exc:
            log.warning("metrics: database unavailable (%s)", type(exc).__name__)
            return
        yield GaugeMetricFamily(
            "cam2drive_reservations", "Uploads in flight holding drive space", value=count
        )
        yield GaugeMetricFamily(
            "cam2drive_reserved_bytes", "Bytes held by uploads in flight", value=int(size)
        )
        yield GaugeMetricFamily("cam2drive_bans_active", "Addresses banned now", value=banned)
        family = GaugeMetricFamily(
            "cam2drive_contracts", "ERP contracts by status", labels=["status"]
        )
        for status, n in by_status:
            family.add_metric([status], n)
        yield family
        family = GaugeMetricFamily(
            "cam2drive_callbacks", "ERP callback outbox by status", labels=["status"]
        )
        for status, n in outbox:
            family.add_metric([status], n)
        yield family


def install(app: FastAPI, engine: Engine) -> None:
    registry = CollectorRegistry()
    requests = Counter(
        "cam2drive_http_requests",
        "HTTP requests by method, route and status",
        ["method", "route", "status"],
        registry=registry,
    )
    latency = Histogram(
        "cam2drive_http_request_seconds",
        "HTTP request latency by route",
        ["route"],
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        registry=registry,
    )
    registry.register(ClusterFacts(engine))
    app.state.registry = registry

    app.add_middleware(_Count, requests=requests, latency=latency)


class _Count:
    """Counts each request once it is answered: a plain ASGI middleware, because
    Starlette's BaseHTTPMiddleware (`@app.middleware`) runs every request
    through a task group and memory streams, a cost larger than a GET's query."""

    def __init__(self, app: ASGIApp, *, requests: Counter, latency: Histogram) -> None:
        self.app, self.requests, self.latency = app, requests, latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            # the router put the matched route into this same scope
            name = getattr(scope.get("route"), "path", "unmatched")
            self.requests.labels(scope["method"], name, str(status)).inc()
            self.latency.labels(name).observe(time.perf_counter() - started)
