"""Read models that the CLI and the HTTP service share.

Every list an operator, a distributor or an ERP reads is built here, once, so
that the two frontends cannot drift apart on what "a customer's devices" or
"the ledger" means. Each function takes the scope it may see (a distributor,
a customer) as an argument; a frontend never writes its own query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from billing.core.models import (
    Charge,
    Customer,
    Device,
    Distributor,
    Drive,
    Invoice,
    Notification,
    Plan,
    Subscription,
    WithId,
)

_Row = TypeVar("_Row", bound=WithId)


def _listing(session: Session, model: type[_Row], **equal: object) -> Sequence[_Row]:
    """Every row of `model` by id, narrowed to the columns given a value (None: any)."""
    q = select(model).order_by(col(model.id))
    for column, value in equal.items():
        if value is not None:
            q = q.where(getattr(model, column) == value)
    return session.exec(q).all()


def distributors(session: Session) -> Sequence[Distributor]:
    return _listing(session, Distributor)


def customers(session: Session, distributor_id: int | None = None) -> Sequence[Customer]:
    return _listing(session, Customer, distributor_id=distributor_id)


def plans(session: Session) -> Sequence[Plan]:
    return _listing(session, Plan)


def devices(session: Session, customer_id: int | None = None) -> Sequence[Device]:
    return _listing(session, Device, customer_id=customer_id)


def subscriptions(
    session: Session, customer_id: int | None = None, status: str | None = None
) -> Sequence[Subscription]:
    q = select(Subscription).order_by(col(Subscription.id))
    if customer_id is not None:
        q = q.join(Device, col(Device.id) == Subscription.device_id).where(
            Device.customer_id == customer_id
        )
    if status is not None:
        q = q.where(Subscription.status == status)
    return session.exec(q).all()


def ledger(session: Session, customer_id: int | None = None) -> Sequence[Charge]:
    q = select(Charge).order_by(col(Charge.id))
    if customer_id is not None:
        q = (
            q.join(Subscription, col(Subscription.id) == Charge.subscription_id)
            .join(Device, col(Device.id) == Subscription.device_id)
            .where(Device.customer_id == customer_id)
        )
    return session.exec(q).all()


def drives(session: Session, device_id: int | None = None) -> Sequence[Drive]:
    return _listing(session, Drive, device_id=device_id)


def invoices(session: Session, customer_id: int | None = None) -> Sequence[Invoice]:
    return _listing(session, Invoice, customer_id=customer_id)


def notifications(session: Session, pending: bool = False) -> Sequence[Notification]:
    q = select(Notification).order_by(col(Notification.id))
    if pending:
        q = q.where(Notification.status != "sent")
    return session.exec(q).all()


@dataclass(frozen=True)
class DeviceOverview:
    """A recorder as its owner and distributor see it: drive use, last upload, plan."""

    device: Device
    drive: Drive | None
    subscription: Subscription | None
    plan: Plan | None

    @property
    def used_fraction(self) -> float:
        if self.drive is None or not self.drive.capacity_bytes:
            return 0.0
        return min(1.0, self.drive.committed_bytes / self.drive.capacity_bytes)

    @property
    def near_full(self) -> bool:
        return self.used_fraction >= NEAR_FULL

    @property
    def past_due(self) -> bool:
        return self.subscription is not None and self.subscription.status in PAST_DUE


#: a drive this full is reported (the ERP's callback fires at the same mark)
NEAR_FULL = 0.9
PAST_DUE = frozenset({"past_due", "blocked", "blocked_partial", "blocked_total"})


def device_overview(session: Session, customer_id: int) -> list[DeviceOverview]:
    """Every device of one customer with its drive, newest live subscription and plan."""
    rows = session.exec(
        select(Device, Drive)
        .join(Drive, col(Drive.device_id) == Device.id, isouter=True)
        .where(Device.customer_id == customer_id)
        .order_by(col(Device.id))
    ).all()
    subs: dict[int, Subscription] = {}
    for sub in session.exec(
        select(Subscription)
        .join(Device, col(Device.id) == Subscription.device_id)
        .where(Device.customer_id == customer_id, Subscription.status != "deleted")
        .order_by(col(Subscription.id))
    ).all():
        subs[sub.device_id] = sub  # the newest wins
    plans = {p.id: p for p in session.exec(select(Plan)).all()}
    out = []
    for device, drive in rows:
        live = subs.get(device.id or 0)
        plan = plans.get(live.plan_id) if live is not None else None
        out.append(DeviceOverview(device, drive, live, plan))
    return out


def customer_search(
    session: Session, distributor_id: int, text: str = "", limit: int = 200
) -> Sequence[Customer]:
    """A distributor's customers whose email or name contains `text` (any case)."""
    q = select(Customer).where(Customer.distributor_id == distributor_id)
    text = text.strip().lower()[:100]
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        q = q.where(
            or_(
                func.lower(col(Customer.email)).like(pattern, escape="\\"),
                func.lower(func.coalesce(col(Customer.name), "")).like(pattern, escape="\\"),
            )
        )
    return session.exec(q.order_by(col(Customer.id)).limit(limit)).all()
