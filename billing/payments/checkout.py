"""One-off charges paid at a Checkout Pro link: pay-now and upgrades.

A charge that is not an installment (the overdue month of a past_due or
blocked customer, an upgrade's prorated difference) is paid by the payer at a
Checkout Pro preference, where they enter their card at Mercado Pago
(https://www.mercadopago.com.mx/developers/en/guides/online-payments/checkout-pro/configurations).
cam2drive never holds a card token, so it never posts /v1/payments itself.

The order of writes is what makes a crash harmless:

1. the ledger row is committed first (`pending`), and its idempotency key is
   the charge's own id (`charge-<id>`), never a date;
2. the preference is created with that key as X-Idempotency-Key and as
   `external_reference`: a re-run after a crash between the call and the
   ledger write gets the same preference back, and any payment made at any
   link for that charge names it;
3. the payment is found by `external_reference`, by a webhook (`payment`
   topic, billing/payments/notifications.py) or by the billing pass (`poll`),
   and `settle` applies it once: the charge is approved and only then does
   the subscription change (paid-through date, plan).

A link nobody paid by `expires_at` ends `expired`; asking again makes a new charge.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlmodel import Session, col, select

from billing.catalog import drive_of
from billing.core import audit
from billing.core.models import Charge, Customer, Device, Plan, Subscription, utcnow
from billing.core.settings import Settings
from billing.payments.mercadopago import MercadoPago
from billing.payments.outbox import queue_amount
from billing.subscriptions.lifecycle import restore_paid

ONE_OFF = ("paynow", "upgrade")  # charge kinds paid at a link


@dataclass(frozen=True)
class LinkTerms:
    """Who asks for a payment link and on what terms, the same for the CLI and
    the portal (`of`): the audit's actor, the billing day its period runs to, how
    many days it stays payable, where Mercado Pago reports its payment, and the
    settings whose dunning ladder a pay-now link must not outlive (None: `days` only)."""

    actor: str
    billing_day: int
    days: int = 3
    notification_url: str | None = None
    ladder: Settings | None = None

    @classmethod
    def of(cls, settings: Settings, actor: str) -> LinkTerms:
        return cls(
            actor,
            settings.billing_day,
            settings.pay_link_days,
            settings.mp_notification_url,
            settings,
        )


def expiry(on: date, days: int) -> datetime:
    """The end of the link's last payable day (on + days), in UTC."""
    return datetime.combine(on + timedelta(days=days), time(23, 59, 59), UTC)


def expired(charge: Charge, today: date) -> bool:
    return charge.expires_at is not None and charge.expires_at.date() < today


def payer_email(session: Session, sub: Subscription) -> str:
    device = session.get(Device, sub.device_id)
    customer = session.get(Customer, device.customer_id) if device else None
    assert customer is not None
    return customer.email


def _record(
    session: Session, charge: Charge, step: str, cause: str, *, actor: str, **detail: Any
) -> None:
    """One audit shape for every step of a charge, keyed by its idempotency key."""
    audit.record(
        session,
        actor=actor,
        entity="charge",
        entity_id=charge.idempotency_key,
        action=f"{charge.kind}:{step}",
        cause=cause,
        **detail,
    )


def new_charge(
    session: Session,
    sub: Subscription,
    *,
    kind: str,
    amount: Decimal,
    currency: str,
    period_start: date,
    period_end: date,
    expires_at: datetime,
    plan_id: int | None,
    actor: str,
    cause: str,
) -> Charge:
    """A pending one-off charge, committed before Mercado Pago hears of it."""
    assert kind in ONE_OFF and sub.id is not None
    charge = Charge(
        subscription_id=sub.id,
        kind=kind,
        plan_id=plan_id,
        amount=amount,
        currency=currency,
        idempotency_key=f"new-{uuid.uuid4().hex}",  # unique until the id is known
        status="pending",
        period_start=period_start,
        period_end=period_end,
        expires_at=expires_at,
    )
    session.add(charge)
    session.flush()
    charge.idempotency_key = f"charge-{charge.id}"
    session.add(charge)
    _record(
        session,
        charge,
        "requested",
        cause,
        actor=actor,
        subscription_id=sub.id,
        amount=amount,
    )
    session.commit()
    return charge


def open_link(
    session: Session,
    mp: MercadoPago,
    sub: Subscription,
    charge: Charge,
    *,
    title: str,
    notification_url: str | None,
    actor: str,
) -> Charge:
    """The charge's Checkout Pro link, created once (the same one on every re-run).

    Raises MercadoPagoUnavailable/Refused; the pending charge stays, and the
    next call asks again with the same key.
    """
    if charge.checkout_url:
        return charge
    assert charge.expires_at is not None
    pref = mp.create_preference(
        key=charge.idempotency_key,
        title=title,
        amount=Decimal(charge.amount),
        currency=charge.currency,
        external_reference=charge.idempotency_key,
        payer_email=payer_email(session, sub),
        expires_at=charge.expires_at,
        notification_url=notification_url,
    )
    charge.mp_preference_id, charge.checkout_url = str(pref["id"]), str(pref["init_point"])
    charge.updated_at = utcnow()
    session.add(charge)
    _record(
        session,
        charge,
        "link",
        "Checkout Pro preference for the payer",
        actor=actor,
        preference_id=charge.mp_preference_id,
    )
    session.commit()
    return charge


def waiting(session: Session, sub_id: int, kind: str | None = None) -> list[Charge]:
    """The subscription's one-off charges still waiting for their payment."""
    kinds = [kind] if kind else list(ONE_OFF)
    return list(
        session.exec(
            select(Charge)
            .where(
                Charge.subscription_id == sub_id,
                col(Charge.kind).in_(kinds),
                Charge.status == "pending",
            )
            .order_by(col(Charge.id))
        ).all()
    )


def poll(session: Session, mp: MercadoPago, sub: Subscription, today: date, *, actor: str) -> None:
    """Settle the subscription's waiting links from Mercado Pago's payments.

    Raises MercadoPagoUnavailable/Refused (the caller reports it; nothing changed).
    """
    assert sub.id is not None
    for charge in waiting(session, sub.id):
        settle(session, sub, charge, mp.payments_for(charge.idempotency_key), today, actor=actor)


def settle(
    session: Session,
    sub: Subscription,
    charge: Charge,
    payments: list[dict[str, Any]],
    today: date,
    *,
    actor: str,
) -> None:
    """Apply what Mercado Pago says of a link's payments. Idempotent.

    Approved: the charge is paid and the subscription changes now (a pay-now
    restores it, an upgrade moves its plan). A rejected attempt leaves the
    link payable until it expires; in process waits. Statuses:
    https://www.mercadopago.com.mx/developers/en/reference/online-payments/checkout-api-payments/get-payment/get
    """
    if charge.status != "pending":
        return
    approved = [p for p in payments if p.get("status") == "approved"]
    if approved:
        pay = approved[0]
        charge.status, charge.mp_id = "approved", str(pay["id"])
        charge.payment_type_id = pay.get("payment_type_id")
        charge.updated_at = utcnow()
        session.add(charge)
        _record(
            session,
            charge,
            "approved",
            "paid at the Checkout Pro link",
            actor=actor,
            subscription_id=sub.id,
            payment_id=charge.mp_id,
            payments_approved=len(approved),  # more than one: the payer paid twice, refund
        )
        if charge.kind == "paynow":
            assert charge.period_end is not None
            restore_paid(session, sub, charge.period_end, actor=actor, cause="paid now")
        else:
            apply_upgrade(session, sub, charge, actor=actor)
        return
    if any(p.get("status") in ("in_process", "pending", "authorized") for p in payments):
        return
    if expired(charge, today):
        charge.status, charge.updated_at = "expired", utcnow()
        session.add(charge)
        _record(
            session,
            charge,
            "expired",
            f"nobody paid the link by {charge.expires_at}",
            actor=actor,
            subscription_id=sub.id,
        )


def apply_upgrade(session: Session, sub: Subscription, charge: Charge, *, actor: str) -> None:
    """The paid upgrade takes effect: the plan and the drive now, later
    installments through the amount outbox (billing/payments/outbox.py)."""
    old, new = session.get(Plan, sub.plan_id), session.get(Plan, charge.plan_id)
    assert old is not None and new is not None and new.id is not None
    sub.plan_id, sub.next_plan_id, sub.updated_at = new.id, None, utcnow()
    drive = drive_of(session, sub.device_id)
    drive.capacity_bytes = new.capacity_bytes
    session.add_all([sub, drive])
    queue_amount(session, sub, Decimal(new.price))  # pushed by the pass, isolated
    audit.subscription(
        session,
        sub.id,
        "upgraded",
        f"{old.code} -> {new.code}, paid {charge.amount}",
        actor=actor,
        payment_id=charge.mp_id,
    )
