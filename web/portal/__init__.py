"""The portal: server-rendered pages for customers and distributor staff.

One module per page group (auth, devices, subscriptions, orders, recordings,
distributor); web/portal/pages.py holds what they share: the templates, the
signed-in person, CSRF, language, and how an error becomes a page.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent.parent / "static"


def install(app: FastAPI) -> None:
    """The pages, their static files, and their error pages, on `app`."""
    from web.portal import (
        auth,
        devices,
        distributor,
        orders,
        pages,
        privacy,
        recordings,
        subscriptions,
    )

    pages.install(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (auth, devices, subscriptions, orders, recordings, privacy, distributor):
        app.include_router(module.router)
