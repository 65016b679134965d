"""A customer's privacy page: whether their distributor's staff may watch their video."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import Session

from billing import video_grants
from billing.core.db import reader, session_scope
from billing.core.models import Distributor
from web.portal.pages import CustomerDep, form, parts, redirect, render

router = APIRouter(include_in_schema=False)


@router.get("/portal/privacy")
def privacy(request: Request, who: CustomerDep) -> Response:
    with Session(reader(parts(request).engine)) as s:
        granted = video_grants.granted(s, who.id)
        dist = s.get(Distributor, who.distributor_id)
    return render(request, "privacy.html", granted=granted, distributor=dist)


@router.post("/portal/privacy")
async def set_privacy(request: Request, who: CustomerDep) -> Response:
    fields = await form(request)
    with session_scope(parts(request).engine) as s:
        video_grants.set_grant(s, who.id, fields.get("allow") == "yes", actor=who.actor)
    return redirect("/portal/privacy")
