"""Grabaciones: a day's timeline per device and channel, snapshots, and a player.

The day comes from the recordings index in one query (gateway/recordings.py
`day`) and is drawn on the server: one bar per clip, placed by its minutes
in the device's zone, each kind (R, M, A, I, F) in its own colour and named
in words too. A bar is a link to the clip; the page's script plays it in the
<video> element without leaving the page (with no script, the link opens it).
Staff reach a customer's day only while the customer grants it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import Session

from billing import queries, video_grants
from billing.core.db import reader
from billing.core.models import Customer
from gateway import recordings
from web.portal.pages import CustomerDep, PageError, StaffDep, parts, render

router = APIRouter(include_in_schema=False)
KIND_NAMES = {
    "R": "Regular",
    "M": "Motion",
    "A": "Alarm",
    "I": "Intelligent",
    "F": "Manual",
}


def media_url(entry_id: int, customer_id: int | None) -> str:
    """The media endpoint (web/media.py) of a recording; staff name the customer."""
    query = f"?customer={customer_id}" if customer_id is not None else ""
    return f"/media/recordings/{entry_id}{query}"


def original_url(entry_id: int, customer_id: int | None) -> str:
    query = f"?customer={customer_id}" if customer_id is not None else ""
    return f"/media/recordings/{entry_id}/original{query}"


def _place(start: datetime, end: datetime, on: date) -> tuple[float, float]:
    """(left %, width %) of a span on day `on`, cut at its midnights."""
    lo = datetime.combine(on, time(), tzinfo=start.tzinfo)
    a = max(0.0, (start - lo).total_seconds())
    b = min(86400.0, (end - lo).total_seconds())
    return a / 864, max(0.15, (b - a) / 864)


def page(request: Request, customer_id: int, base: str, staff_view: bool) -> Response:
    p = parts(request)
    with Session(reader(p.engine)) as s:
        devices = [r.device for r in queries.device_overview(s, customer_id)]
    asked = request.query_params.get("device")
    if not devices and not asked:
        return render(request, "recordings.html", devices=[], base=base)
    try:
        device_id = int(asked or devices[0].id or 0)
    except ValueError:
        raise PageError(422, "device must be a number") from None
    found = recordings.device_drive(p.engine, customer_id, device_id)
    if found is None:
        raise PageError(404, "No such device.")
    zone = ZoneInfo(found.timezone or p.settings.device_timezone)
    text = request.query_params.get("day") or datetime.now(UTC).astimezone(zone).date().isoformat()
    try:
        on = date.fromisoformat(text)
    except ValueError:
        raise PageError(422, "day must be a date such as 2026-12-06") from None
    events = recordings.day(p.engine, found.drive_id, on, zone)
    owner = customer_id if staff_view else None
    channels: dict[int, dict[str, list[dict[str, Any]]]] = {}
    for ev in events:
        row = channels.setdefault(ev.channel, {"clips": [], "snaps": []})
        left, width = _place(ev.start, ev.end, on)
        item = {
            "id": ev.entry_id,
            "kind": ev.kind,
            "start": ev.start,
            "end": ev.end,
            "left": round(left, 3),
            "width": round(width, 3),
            "url": media_url(ev.entry_id, owner),
            "original": original_url(ev.entry_id, owner),
            "name": ev.path.rsplit("/", 1)[-1],
        }
        row["snaps" if ev.is_snapshot else "clips"].append(item)
    return render(
        request,
        "recordings.html",
        devices=devices,
        device_id=device_id,
        day=on,
        prev=(on - timedelta(days=1)).isoformat(),
        next=(on + timedelta(days=1)).isoformat(),
        channels=dict(sorted(channels.items())),
        kinds=KIND_NAMES,
        zone=str(zone),
        base=base,
    )


@router.get("/portal/recordings")
def customer_recordings(request: Request, who: CustomerDep) -> Response:
    return page(request, who.id, "/portal/recordings", staff_view=False)


@router.get("/distributor/customers/{customer_id}/recordings")
def staff_recordings(request: Request, customer_id: int, who: StaffDep) -> Response:
    """A customer's recordings for their distributor's staff: only with the customer's grant."""
    with Session(reader(parts(request).engine)) as s:
        cust = s.get(Customer, customer_id)
        if cust is None or cust.distributor_id != who.distributor_id:
            raise PageError(404, "No such customer.")
        if not video_grants.granted(s, customer_id):
            raise PageError(403, "This customer has not allowed you to watch their recordings.")
    return page(request, customer_id, f"/distributor/customers/{customer_id}/recordings", True)
