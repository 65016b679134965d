"""Operations endpoints: liveness, readiness (database and S3) and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from billing.core.db import reader
from billing.core.errors import Cam2DriveError

router = APIRouter(tags=["operations"])


@router.get("/livez", summary="The process answers (no database, no S3)")
async def livez() -> dict[str, str]:
    return {"status": "ok"}


def _checks(parts: Any) -> dict[str, str]:
    checks: dict[str, str] = {}
    try:
        with reader(parts.engine).connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure is "not ready", named but not detailed
        checks["database"] = f"unavailable ({type(exc).__name__})"
    try:
        parts.store.ping()
        checks["s3"] = "ok"
    except Cam2DriveError as exc:
        checks["s3"] = f"unavailable ({exc})"
    return checks


@router.get(
    "/readyz",
    summary="The database and S3 answer",
    responses={503: {"description": "a dependency is down"}},
)
async def readyz(request: Request) -> JSONResponse:
    checks = await run_in_threadpool(_checks, request.app.state.parts)
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> PlainTextResponse:
    def render() -> bytes:
        return generate_latest(request.app.state.registry) + generate_latest(REGISTRY)

    return PlainTextResponse(await run_in_threadpool(render), media_type=CONTENT_TYPE_LATEST)
