"""Every error a client can cause, as one status and one JSON body; never a traceback.

`{"detail": "..."}`, plus `"field"` for a 422 naming the field at fault
(`customer.email`, `label`, `month`). Anything unexpected is logged here
and answered 500 with no detail: nothing a client sent is echoed into a
log line except through %r-quoting.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from billing.core.errors import (
    AlreadyExists,
    Cam2DriveError,
    Conflict,
    InvalidField,
    InvalidInput,
    NotFound,
    StorageUnavailable,
)

log = logging.getLogger("cam2drive.web")

_STATUS: list[tuple[type[Cam2DriveError], int]] = [
    (InvalidInput, 422),
    (NotFound, 404),
    (AlreadyExists, 409),
    (Conflict, 409),
    (StorageUnavailable, 503),
]


def status_for(err: Cam2DriveError) -> int:
    for cls, code in _STATUS:
        if isinstance(err, cls):
            return code
    return 400


def body_for(err: Cam2DriveError) -> dict[str, Any]:
    if isinstance(err, InvalidField):
        return {"detail": f"{err.field} {err.reason}", "field": err.field}
    text = str(err)
    field, sep, rest = text.partition(": ")
    if sep and isinstance(err, AlreadyExists) and "." in field and " " not in field:
        return {"detail": f"{field} {rest}", "field": field}
    return {"detail": text}


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(Cam2DriveError)
    async def _known(_: Request, err: Cam2DriveError) -> JSONResponse:
        return JSONResponse(body_for(err), status_code=status_for(err))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field(tuple(e.get("loc", ()))), "message": str(e.get("msg", "invalid"))}
            for e in err.errors()
        ]
        first = errors[0] if errors else {"field": "body", "message": "invalid"}
        return JSONResponse(
            {
                "detail": f"{first['field']}: {first['message']}",
                "field": first["field"],
                "errors": errors,
            },
            status_code=422,
        )

    @app.exception_handler(SQLAlchemyError)
    async def _database(_: Request, err: SQLAlchemyError) -> JSONResponse:
        log.error("database error: %s", type(err).__name__)
        return JSONResponse({"detail": "database unavailable; retry later"}, status_code=503)

    @app.exception_handler(Exception)
    async def _bug(request: Request, err: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %r", request.method, request.url.path)
        return JSONResponse({"detail": "internal error"}, status_code=500)
