"""Health and metrics of the HTTP service, over real HTTP."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from sqlalchemy import Engine

from billing.core.settings import Settings
from cli.devstack.seaweed import free_port
from gateway.store import S3DriveStore
from tests.support.stack import Stack
from tests.support.web import Erp, WebServer


def test_livez_and_readyz(web: WebServer) -> None:
    with httpx.Client(base_url=web.url) as http:
        assert http.get("/livez").json() == {"status": "ok"}
        ready = http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "checks": {"database": "ok", "s3": "ok"}}


@dataclass
class DeadS3:
    settings: Settings
    engine: Engine
    store: S3DriveStore


def test_readyz_is_503_naming_s3_when_it_does_not_answer(stack: Stack) -> None:
    nowhere = stack.settings.model_copy(
        update={"s3_endpoint_url": f"http://127.0.0.1:{free_port()}", "s3_max_attempts": 1}
    )
    server = WebServer(DeadS3(nowhere, stack.engine, S3DriveStore(nowhere)))
    try:
        reply = httpx.get(f"{server.url}/readyz", timeout=30)
    finally:
        server.close()
    assert reply.status_code == 503
    assert reply.json()["checks"]["database"] == "ok"
    assert reply.json()["checks"]["s3"].startswith("unavailable")


def test_metrics_count_requests_by_route_and_read_cluster_facts(erp: Erp, web: WebServer) -> None:
    erp.put("M-1")
    erp.http.get("/api/v1/contracts/M-1")
    erp.http.get("/api/v1/contracts/NOPE")
    text = httpx.get(f"{web.url}/metrics").text
    route = 'route="/api/v1/contracts/{contract_id}"'
    assert f'cam2drive_http_requests_total{{method="GET",{route},status="200"}} 1.0' in text
    assert f'cam2drive_http_requests_total{{method="GET",{route},status="404"}} 1.0' in text
    assert "M-1" not in text and "NOPE" not in text  # no per-contract (or device) series
    assert 'cam2drive_contracts{status="active"}' in text
    assert "cam2drive_reservations " in text and "cam2drive_bans_active " in text


def test_openapi_and_docs_are_served(web: WebServer) -> None:
    schema = httpx.get(f"{web.url}/openapi.json").json()
    assert "/api/v1/contracts/{contract_id}" in schema["paths"]
    assert httpx.get(f"{web.url}/docs").status_code == 200
