"""Mercado Pago's webhooks, queued on arrival and applied through the polling path.

The HTTP handler (web/webhooks.py) only checks the signature and `enqueue`s:
Mercado Pago wants a 2xx within 22 seconds and retries otherwise, and it must
get one even while its own API cannot be reached. `drain` then reads each
named resource again from Mercado Pago (a notification says only "this
changed", never what it is now) and applies it with `sync`, the function
every billing pass uses, so a webhook and a poll can never disagree.

Topics (https://www.mercadopago.com.mx/developers/en/docs/your-integrations/notifications):
`subscription_preapproval` names a preapproval, `subscription_authorized_payment`
an installment (whose `preapproval_id` says which), `payment` a payment (an
installment's attempt names its preapproval in
`point_of_interaction.transaction_data.subscription_id`; a one-off payment
carries our charge's id in `external_reference`).

A row that cannot be applied (Mercado Pago unreachable) stays queued and is
retried by the next drain; polling remains the reconciliation either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Engine, and_, or_
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from billing.core.models import (
    Charge,
    Customer,
    Device,
    MercadoPagoNotification,
    MercadoPagoPlan,
    Plan,
    Subscription,
    SubscriptionStatus,
    utcnow,
)
from billing.payments.accounts import OneOrByCurrency
from billing.payments.mercadopago import MercadoPago, MercadoPagoFailed, MercadoPagoRefused
from billing.payments.sync import sync

TOPICS = ("subscription_preapproval", "subscription_authorized_payment", "payment")
MAX_ATTEMPTS = 20  # then it is left to polling, and says why


@dataclass
class DrainReport:
    applied: list[int] = field(default_factory=list)  # notification ids
    retrying: list[dict[str, Any]] = field(default_factory=list)


def enqueue(session: Session, topic: str, resource_id: str) -> MercadoPagoNotification:
    """Queue one notification; the same resource already waiting is not queued twice
    (Mercado Pago retries a delivery it did not see answered)."""
    waiting = session.exec(
        select(MercadoPagoNotification).where(
            MercadoPagoNotification.topic == topic,
            MercadoPagoNotification.resource_id == resource_id,
            col(MercadoPagoNotification.processed_at).is_(None),
        )
    ).first()
    if waiting is not None:
        return waiting
    row = MercadoPagoNotification(topic=topic, resource_id=resource_id)
    session.add(row)
    return row


def drain(
    engine: Engine, mp: OneOrByCurrency, today: date, billing_day: int, pending_expiry_days: int = 7
) -> DrainReport:
    """Apply every queued notification, each in its own transaction.

    With several Mercado Pago accounts (`mp` by currency, the default first) a
    notification does not say whose it is: the resource is read from each
    account until one knows it (another account answers 404), and each
    subscription is synced through the account of its plan's currency.
    """
    accounts = list(mp.values()) if isinstance(mp, Mapping) else [mp]
    by_currency = dict(mp) if isinstance(mp, Mapping) else {}
    report = DrainReport()
    with Session(engine) as session:
        ids = session.exec(
            select(MercadoPagoNotification.id)
            .where(
                col(MercadoPagoNotification.processed_at).is_(None),
                MercadoPagoNotification.attempts < MAX_ATTEMPTS,
            )
            .order_by(col(MercadoPagoNotification.id))
        ).all()
    for note_id in ids:
        assert note_id is not None  # read from the database
        with Session(engine) as session:
            note = session.get(MercadoPagoNotification, note_id)
            if note is None or note.processed_at is not None:
                continue  # another drain (the scheduler, a webhook's task) took it
            try:
                subs = _resolve(session, accounts, note.topic, note.resource_id)
                reached = all(
                    sync(
                        session,
                        _account_of(session, sub, by_currency, accounts[0]),
                        sub,
                        today,
                        billing_day,
                        pending_expiry_days=pending_expiry_days,
                    )
                    for sub in subs
                )
                why = None if reached else "Mercado Pago could not be reached"
            except (MercadoPagoFailed, SQLAlchemyError) as exc:
                # SQLAlchemyError: another process applied the same change first
                session.rollback()
                why = str(exc).splitlines()[0]
            note = session.get(MercadoPagoNotification, note_id)
            assert note is not None
            note.attempts += 1
            if why is None:
                note.processed_at, note.last_error = utcnow(), None
                report.applied.append(note_id)
            else:
                note.last_error = why
                report.retrying.append({"notification": note_id, "error": why})
            session.add(note)
            session.commit()
    return report


def _resolve(
    session: Session, accounts: list[MercadoPago], topic: str, resource_id: str
) -> list[Subscription]:
    """`_subscriptions` through the first account that knows the resource."""
    for account in accounts[:-1]:
        try:
            return _subscriptions(session, account, topic, resource_id)
        except MercadoPagoRefused:
            continue  # another account's resource
    return _subscriptions(session, accounts[-1], topic, resource_id)


def _account_of(
    session: Session, sub: Subscription, by_currency: dict[str, MercadoPago], default: MercadoPago
) -> MercadoPago:
    plan = session.get(Plan, sub.plan_id)
    return by_currency.get(plan.currency, default) if plan is not None else default


def _subscriptions(
    session: Session, mp: MercadoPago, topic: str, resource_id: str
) -> list[Subscription]:
    """The subscriptions a notification is about (read again from Mercado Pago)."""
    if topic == "subscription_preapproval":
        return _by_preapproval(session, mp, resource_id)
    if topic == "subscription_authorized_payment":
        pre_id = mp.get_installment(resource_id).get("preapproval_id")
        return _by_preapproval(session, mp, str(pre_id)) if pre_id else []
    if topic == "payment":
        payment = mp.get_payment(resource_id)
        data = (payment.get("point_of_interaction") or {}).get("transaction_data") or {}
        if data.get("subscription_id"):
            return _by_preapproval(session, mp, str(data["subscription_id"]))
        charge = session.exec(
            select(Charge).where(Charge.idempotency_key == str(payment.get("external_reference")))
        ).first()
        sub = session.get(Subscription, charge.subscription_id) if charge else None
        return [sub] if sub is not None else []
    return []


def _by_preapproval(session: Session, mp: MercadoPago, pre_id: str) -> list[Subscription]:
    """The subscription linked to the preapproval; if none yet (the payer just
    subscribed at the plan's checkout), the pending ones on that plan whose
    customer's email is the payer's, and the past_due or blocked ones who may
    be subscribing again: `sync` links them as polling would."""
    linked = session.exec(
        select(Subscription).where(Subscription.mp_preapproval_id == pre_id)
    ).first()
    if linked is not None:
        return [linked]
    pre = mp.get_preapproval(pre_id)
    plan_id = pre.raw.get("preapproval_plan_id")
    email = pre.payer_email.strip().lower()
    if not plan_id or not email:
        return []
    return [
        sub
        for sub, customer_email in session.exec(
            select(Subscription, Customer.email)
            .join(Device, col(Device.id) == col(Subscription.device_id))
            .join(Customer, col(Customer.id) == col(Device.customer_id))
            .join(MercadoPagoPlan, col(MercadoPagoPlan.plan_id) == col(Subscription.plan_id))
            .where(
                Subscription.kind == "paid",
                or_(
                    and_(
                        col(Subscription.status) == SubscriptionStatus.pending.value,
                        col(Subscription.mp_preapproval_id).is_(None),
                    ),
                    # Mercado Pago cancelled theirs and they subscribed again (sync.relink)
                    col(Subscription.status).in_(
                        [SubscriptionStatus.past_due.value, SubscriptionStatus.blocked.value]
                    ),
                ),
                MercadoPagoPlan.mp_plan_id == str(plan_id),
            )
        ).all()
        if customer_email.strip().lower() == email
    ]
