"""Distributor pages: customers (search, status, device health), adding a customer
and their devices, and the ERP's API keys and callback URL.

Every query is scoped by the staff member's distributor; another
distributor's customer is a 404 like one that does not exist.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import Session, select

from billing import apikeys, catalog, password_links, queries, video_grants
from billing.core.db import reader, session_scope
from billing.core.errors import Cam2DriveError
from billing.core.models import ApiKey, CallbackEndpoint, Customer, utcnow
from billing.invoicing.invoices import orders
from web.portal.devices import owned_device, settings_page
from web.portal.pages import (
    PageError,
    StaffDep,
    error_text,
    form,
    parts,
    redirect,
    render,
)

router = APIRouter(include_in_schema=False)


def own_customer(s: Session, distributor_id: int, customer_id: int) -> Customer:
    cust = s.get(Customer, customer_id)
    if cust is None or cust.distributor_id != distributor_id:
        raise PageError(404, "No such customer.")
    return cust


def customers_page(request: Request, who: Any, status: int = 200, **context: Any) -> Response:
    text = request.query_params.get("q", "")[:100]
    health = request.query_params.get("health", "")
    rows = []
    with Session(reader(parts(request).engine)) as s:
        for cust in queries.customer_search(s, who.distributor_id, text):
            assert cust.id is not None
            devices = queries.device_overview(s, cust.id)
            flags = {
                "silent": any(d.device.silent_since for d in devices),
                "near_full": any(d.near_full for d in devices),
                "past_due": any(d.past_due for d in devices),
            }
            if health in flags and not flags[health]:
                continue
            rows.append({"customer": cust, "devices": devices, **flags})
    return render(
        request, "distributor_customers.html", status, rows=rows, q=text, health=health, **context
    )


@router.get("/distributor/customers")
def customers(request: Request, who: StaffDep) -> Response:
    return customers_page(request, who)


@router.post("/distributor/customers")
async def add_customer(request: Request, who: StaffDep) -> Response:
    """The customer gets an email with a link to set their own password."""
    fields = await form(request)
    p = parts(request)
    try:
        with session_scope(p.engine) as s:
            cust = catalog.add_customer(
                s,
                distributor_id=who.distributor_id,
                email=fields.get("email", ""),
                name=fields.get("name") or None,
                actor=who.actor,
            )
            password_links.email_customer(s, p.settings, cust, first=True)
            cust_id = cust.id
    except Cam2DriveError as err:
        return customers_page(
            request,
            who,
            422,
            error=error_text(request, err),
            new_email=fields.get("email", "")[:254],
            new_name=fields.get("name", "")[:200],
        )
    return redirect(f"/distributor/customers/{cust_id}")


@router.get("/distributor/customers/{customer_id}")
def customer(request: Request, customer_id: int, who: StaffDep) -> Response:
    with Session(reader(parts(request).engine)) as s:
        cust = own_customer(s, who.distributor_id, customer_id)
        devices = queries.device_overview(s, customer_id)
        order_rows = orders(s, customer_id)
        granted = video_grants.granted(s, customer_id)
    return render(
        request,
        "distributor_customer.html",
        customer=cust,
        rows=devices,
        orders=list(reversed(order_rows))[:24],
        granted=granted,
        now=utcnow(),
        base=f"/distributor/customers/{customer_id}/devices",
    )


@router.post("/distributor/customers/{customer_id}/devices")
async def add_device(request: Request, customer_id: int, who: StaffDep) -> Response:
    fields = await form(request)
    back = f"/distributor/customers/{customer_id}"
    try:
        with session_scope(parts(request).engine) as s:
            own_customer(s, who.distributor_id, customer_id)
            new = catalog.add_device(
                s,
                customer_id=customer_id,
                name=fields.get("name", ""),
                serial=fields.get("serial") or None,
                actor=who.actor,
            )
    except Cam2DriveError as err:
        raise PageError(422, error_text(request, err)) from None
    return settings_page(request, new.device, new.password, back, f"{back}/devices")


@router.get("/distributor/customers/{customer_id}/devices/{device_id}")
def device(request: Request, customer_id: int, device_id: int, who: StaffDep) -> Response:
    back = f"/distributor/customers/{customer_id}"
    with Session(reader(parts(request).engine)) as s:
        own_customer(s, who.distributor_id, customer_id)
        dev = owned_device(s, customer_id, device_id)
    return settings_page(request, dev, None, back, f"{back}/devices")


@router.post("/distributor/customers/{customer_id}/devices/{device_id}/password")
async def device_password(
    request: Request, customer_id: int, device_id: int, who: StaffDep
) -> Response:
    await form(request)
    back = f"/distributor/customers/{customer_id}"
    with session_scope(parts(request).engine) as s:
        own_customer(s, who.distributor_id, customer_id)
        owned_device(s, customer_id, device_id)
        dev, password = catalog.reset_device_password(s, device_id, actor=who.actor)
    return settings_page(request, dev, password, back, f"{back}/devices")


@router.post("/distributor/customers/{customer_id}/password-link")
async def resend_link(request: Request, customer_id: int, who: StaffDep) -> Response:
    await form(request)
    p = parts(request)
    with session_scope(p.engine) as s:
        cust = own_customer(s, who.distributor_id, customer_id)
        password_links.email_customer(s, p.settings, cust, first=cust.password_hash is None)
    return redirect(f"/distributor/customers/{customer_id}?sent=1")


def api_page(request: Request, who: Any, status: int = 200, **context: Any) -> Response:
    with Session(reader(parts(request).engine)) as s:
        keys = apikeys.listing(s, who.distributor_id)
        endpoint = s.get(CallbackEndpoint, who.distributor_id)
    return render(request, "distributor_api.html", status, keys=keys, endpoint=endpoint, **context)


@router.get("/distributor/api")
def api(request: Request, who: StaffDep) -> Response:
    return api_page(request, who)


@router.post("/distributor/api/keys")
async def new_key(request: Request, who: StaffDep) -> Response:
    await form(request)
    with session_scope(parts(request).engine) as s:
        key = apikeys.create(s, who.distributor_id, actor=who.actor)
        shown = {"key_id": key.key.key_id, "secret": key.secret}
    return api_page(request, who, new_key=shown)


@router.post("/distributor/api/keys/{key_id}/revoke")
async def revoke_key(request: Request, key_id: str, who: StaffDep) -> Response:
    await form(request)
    with session_scope(parts(request).engine) as s:
        key = s.exec(select(ApiKey).where(ApiKey.key_id == key_id[:40])).first()
        if key is None or key.distributor_id != who.distributor_id:
            raise PageError(404, "No such API key.")
        apikeys.revoke(s, key.key_id, actor=who.actor)
    return redirect("/distributor/api")


@router.post("/distributor/api/callback")
async def callback(request: Request, who: StaffDep) -> Response:
    from billing import callbacks

    fields = await form(request)
    try:
        with session_scope(parts(request).engine) as s:
            _, secret = callbacks.set_endpoint(
                s, who.distributor_id, fields.get("url", ""), None, actor=who.actor
            )
    except Cam2DriveError as err:
        return api_page(request, who, 422, error=error_text(request, err))
    return api_page(request, who, new_secret=secret)
