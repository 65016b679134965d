"""Read models that the CLI and the HTTP service share.

Every list an operator, a distributor or an ERP reads is built here, once, so
that the two frontends cannot drift apart on what "a customer's devices" or
"the ledger" means. Each function takes the scope it may see (a distributor,
a customer) as an argument; a frontend never writes its own query.
"""

from __future__ import annotations

from collections.abc import Sequence

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
)


def distributors(session: Session) -> Sequence[Distributor]:
    return session.exec(select(Distributor).order_by(col(Distributor.id))).all()


def customers(session: Session, distributor_id: int | None = None) -> Sequence[Customer]:
    q = select(Customer).order_by(col(Customer.id))
    if distributor_id is not None:
        q = q.where(Customer.distributor_id == distributor_id)
    return session.exec(q).all()


def plans(session: Session) -> Sequence[Plan]:
    return session.exec(select(Plan).order_by(col(Plan.id))).all()


def devices(session: Session, customer_id: int | None = None) -> Sequence[Device]:
    q = select(Device).order_by(col(Device.id))
    if customer_id is not None:
        q = q.where(Device.customer_id == customer_id)
    return session.exec(q).all()


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
    q = select(Drive).order_by(col(Drive.id))
    if device_id is not None:
        q = q.where(Drive.device_id == device_id)
    return session.exec(q).all()


def invoices(session: Session, customer_id: int | None = None) -> Sequence[Invoice]:
    q = select(Invoice).order_by(col(Invoice.id))
    if customer_id is not None:
        q = q.where(Invoice.customer_id == customer_id)
    return session.exec(q).all()


def notifications(session: Session, pending: bool = False) -> Sequence[Notification]:
    q = select(Notification).order_by(col(Notification.id))
    if pending:
        q = q.where(Notification.status != "sent")
    return session.exec(q).all()
