"""Mis suscripciones: plans with the prorated quote, Mercado Pago checkout, upgrade,
cancel (consequences first), and pay now when past due."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import Session

from billing import contracts, queries
from billing.core.db import reader, session_scope
from billing.core.errors import Cam2DriveError, InvalidField
from billing.core.models import Device, Plan, Subscription
from billing.dunning import ladder, retention_end
from billing.payments.checkout import LinkTerms
from billing.subscriptions import changes, lifecycle
from billing.subscriptions.proration import prorate
from web.portal.pages import (
    CustomerDep,
    PageError,
    error_text,
    form,
    formatter,
    parts,
    redirect,
    render,
)
from web.sessions import Principal
from web.webhooks import mercadopago_for

router = APIRouter(include_in_schema=False)


def today() -> date:
    return datetime.now(UTC).date()


def _device_id(value: str | None) -> int:
    try:
        return int(value or "")
    except ValueError:
        raise PageError(422, "Choose a recorder.") from None


def owned_subscription(s: Session, customer_id: int, sub_id: int) -> Subscription:
    sub = s.get(Subscription, sub_id)
    device = s.get(Device, sub.device_id) if sub is not None else None
    if sub is None or device is None or device.customer_id != customer_id:
        raise PageError(404, "No such subscription.")
    return sub


def offered(s: Session, distributor_id: int) -> list[Plan]:
    """The priced plans the customer's distributor sells (its products, as its ERP syncs
    them); a distributor that lists none sells the operator's whole catalogue."""
    sold = [plan for plan, _ in contracts.products(s, distributor_id)]
    return [p for p in sold or queries.plans(s) if Decimal(p.price) > 0]


def _offered_code(s: Session, who: Principal, code: str) -> str:
    """`code` if the customer's distributor sells it (a form may name any plan)."""
    if code.strip().upper() not in {p.code for p in offered(s, who.distributor_id)}:
        raise InvalidField("plan", "%(plan)s is not one of your distributor's plans", plan=code)
    return code


def page(request: Request, who: Principal, status: int = 200, **context: Any) -> Response:
    st = parts(request).settings
    on = today()
    with Session(reader(parts(request).engine)) as s:
        rows = queries.device_overview(s, who.id)
        plans = offered(s, who.distributor_id)
    quotes = {p.code: prorate(Decimal(p.price), p.currency, on, st.billing_day) for p in plans}
    dates: dict[int, dict[str, date]] = {}
    for r in rows:
        sub = r.subscription
        if sub is None or sub.id is None:
            continue
        if sub.status == "past_due" and sub.past_due_since is not None:
            steps = ladder(st, past_due_since=sub.past_due_since.date())
            dates[sub.id] = {"block_on": steps.block_on, "delete_on": steps.delete_on}
        elif sub.status == "blocked" and sub.blocked_at is not None:
            steps = ladder(st, blocked_on=sub.blocked_at.date())
            dates[sub.id] = {"delete_on": steps.delete_on}
    return render(
        request,
        "subscriptions.html",
        status,
        rows=rows,
        plans=plans,
        quotes=quotes,
        dates=dates,
        paynow=importlib.util.find_spec("billing.subscriptions.paynow") is not None,
        **context,
    )


@router.get("/portal/subscriptions")
def subscriptions(request: Request, who: CustomerDep) -> Response:
    return page(request, who)


def _go(request: Request, who: Principal, step: Callable[[Session, Any], str | None]) -> Response:
    """Run one step on the customer's subscriptions in a transaction (given the app's
    parts), then go where it says: Mercado Pago's checkout, or back to this page.
    Its error is shown here (422); no link means Mercado Pago could not be reached,
    and the customer tries again later (503): the request is kept."""
    p = parts(request)
    try:
        with session_scope(p.engine) as s:
            url = step(s, p)
    except Cam2DriveError as err:
        return page(request, who, 422, error=error_text(request, err))
    if not url:
        message = "Mercado Pago cannot be reached right now; try again in a few minutes."
        return page(request, who, 503, error=formatter(request).gettext(message))
    return redirect(url)


@router.post("/portal/subscriptions")
async def subscribe(request: Request, who: CustomerDep) -> Response:
    """Subscribe a device to a plan, then off to Mercado Pago's checkout to pay."""
    fields = await form(request)
    device_id = _device_id(fields.get("device"))

    def step(s: Session, p: Any) -> str | None:
        device = s.get(Device, device_id)
        if device is None or device.customer_id != who.id:
            raise PageError(404, "No such device.")
        code = _offered_code(s, who, fields.get("plan", ""))
        sub = lifecycle.create_paid(
            s,
            mercadopago_for(p),
            device_ref=device_id,
            plan_code=code,
            on=today(),
            billing_day=p.settings.billing_day,
            actor=who.actor,
        )
        return sub.checkout_url

    return _go(request, who, step)


@router.post("/portal/subscriptions/{sub_id}/upgrade")
async def upgrade(request: Request, sub_id: int, who: CustomerDep) -> Response:
    fields = await form(request)

    def step(s: Session, p: Any) -> str | None:
        owned_subscription(s, who.id, sub_id)
        code = _offered_code(s, who, fields.get("plan", ""))
        terms = LinkTerms.of(p.settings, who.actor)
        charge = changes.upgrade(s, mercadopago_for(p), sub_id, code, today(), terms)
        return charge.checkout_url

    return _go(request, who, step)


@router.get("/portal/subscriptions/{sub_id}/cancel")
def cancel_page(request: Request, sub_id: int, who: CustomerDep) -> Response:
    """What cancelling means, before the button that does it."""
    st = parts(request).settings
    with Session(reader(parts(request).engine)) as s:
        sub = owned_subscription(s, who.id, sub_id)
        device = s.get(Device, sub.device_id)
        plan = s.get(Plan, sub.plan_id)
    end = sub.paid_through or today()
    return render(
        request,
        "cancel.html",
        sub=sub,
        device=device,
        plan=plan,
        paid_through=end,
        delete_on=retention_end(st, end),
    )


@router.post("/portal/subscriptions/{sub_id}/cancel")
async def cancel(request: Request, sub_id: int, who: CustomerDep) -> Response:
    await form(request)

    def step(s: Session, p: Any) -> str:
        owned_subscription(s, who.id, sub_id)
        changes.cancel(s, mercadopago_for(p), sub_id, actor=who.actor)
        return "/portal/subscriptions"

    return _go(request, who, step)


@router.post("/portal/subscriptions/{sub_id}/pay")
async def pay_now(request: Request, sub_id: int, who: CustomerDep) -> Response:
    await form(request)
    try:
        from billing.subscriptions import paynow
    except ImportError:
        raise PageError(404, "Paying from the portal is not available yet.") from None

    def step(s: Session, p: Any) -> str | None:
        owned_subscription(s, who.id, sub_id)
        terms = LinkTerms.of(p.settings, who.actor)
        link = paynow.pay_link(s, mercadopago_for(p), sub_id, today(), terms)
        url = link.get("pay_url")
        return str(url) if url else None

    return _go(request, who, step)
