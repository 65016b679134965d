"""Mis dispositivos: a customer's recorders, adding one, and what to type into it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import Session

from billing import catalog, queries
from billing.core.db import reader, session_scope
from billing.core.errors import Cam2DriveError
from billing.core.models import Device, utcnow
from web.portal.pages import CustomerDep, PageError, error_text, form, parts, render

router = APIRouter(include_in_schema=False)


def recorder_settings(request: Request, device: Device, password: str | None) -> dict[str, Any]:
    """The fields of the recorder's FTP page (Dahua: Network > FTP), in its order."""
    st = parts(request).settings
    return {
        "server": st.recorder_host(),
        "port": st.ftp_port,
        "sftp_port": st.sftp_port,
        "username": device.username,
        "password": password,
        "remote_directory": "/",
    }


def overview_page(request: Request, customer_id: int, **context: Any) -> Response:
    with Session(reader(parts(request).engine)) as s:
        rows = queries.device_overview(s, customer_id)
    status = int(context.pop("status", 200))
    return render(request, "devices.html", status, rows=rows, now=utcnow(), **context)


def owned_device(s: Session, customer_id: int, device_id: int) -> Device:
    """The device if it is this customer's; 404 alike for another's and for none."""
    device = s.get(Device, device_id)
    if device is None or device.customer_id != customer_id:
        raise PageError(404, "No such device.")
    return device


def settings_page(
    request: Request, device: Device, password: str | None, back: str, base: str | None = None
) -> Response:
    """`base` is where this device's pages live (/portal/devices, or a distributor's)."""
    return render(
        request,
        "device_settings.html",
        device=device,
        rec=recorder_settings(request, device, password),
        back=back,
        base=base or back,
    )


@router.get("/portal/devices")
def devices(request: Request, who: CustomerDep) -> Response:
    return overview_page(request, who.id)


@router.post("/portal/devices")
async def add_device(request: Request, who: CustomerDep) -> Response:
    fields = await form(request)
    try:
        with session_scope(parts(request).engine) as s:
            new = catalog.add_device(
                s,
                customer_id=who.id,
                name=fields.get("name", ""),
                serial=fields.get("serial") or None,
                actor=who.actor,
            )
            device, password = new.device, new.password
    except Cam2DriveError as err:
        return overview_page(
            request,
            who.id,
            status=422,
            error=error_text(request, err),
            name=fields.get("name", "")[:100],
            serial=fields.get("serial", "")[:100],
        )
    return settings_page(request, device, password, "/portal/devices")


@router.get("/portal/devices/{device_id}")
def device_settings(request: Request, device_id: int, who: CustomerDep) -> Response:
    with Session(reader(parts(request).engine)) as s:
        device = owned_device(s, who.id, device_id)
    return settings_page(request, device, None, "/portal/devices")


@router.post("/portal/devices/{device_id}/password")
async def new_password(request: Request, device_id: int, who: CustomerDep) -> Response:
    await form(request)
    with session_scope(parts(request).engine) as s:
        owned_device(s, who.id, device_id)
        device, password = catalog.reset_device_password(s, device_id, actor=who.actor)
    return settings_page(request, device, password, "/portal/devices")
