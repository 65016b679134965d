"""The HTTP service's one ASGI app, built from the parts the composition root hands in.

`create_app(parts)` is the only way to make it (as Datasette's `Datasette`
object is): cli/commands/http.py passes the CLI's `App`, tests pass their
stack. Routers live in their own modules and know nothing of where their
database or S3 store came from.
"""

from __future__ import annotations

from typing import Protocol

from fastapi import FastAPI

from gateway.node import Parts
from web import errors, media, metrics, ops, webhooks
from web.api import contracts, products, statement
from web.portal import install as install_portal

VERSION = "1"
DESCRIPTION = """\
The HTTP service of cam2drive: the ERP integration API under `/api/v1`, and
health (`/livez`, `/readyz`) and Prometheus metrics (`/metrics`).

Every `/api/v1` call authenticates with HTTP Basic `key_id:secret`
(`cam2drive distributor api-key create`). Every PUT and POST honours an
`Idempotency-Key` header: a replay within a day gets the first answer.
Bad input is `422` naming the field; another distributor's contract is `404`.
"""


class Store(Protocol):
    def ping(self) -> None: ...


WebParts = Parts[Store]  # cli.context.App provides it


def create_app(parts: WebParts) -> FastAPI:
    app = FastAPI(
        title="cam2drive",
        version=VERSION,
        description=DESCRIPTION,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.parts = parts
    errors.install(app)
    metrics.install(app, parts.engine)
    app.include_router(ops.router)
    app.include_router(webhooks.router)
    app.include_router(media.router)
    for module in (products, contracts, statement):
        # each router carries its /api/v1 prefix: a request's route (its
        # metrics label) is then the full path template
        app.include_router(module.router)
    install_portal(app)
    return app
