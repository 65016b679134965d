"""Plan changes and cancellation of paid subscriptions.

* Upgrade: takes effect at once and charges (new - old) x min(d, 30) / 30
  as a one-off payment; later installments charge the new price.
* Downgrade: takes effect at the next cycle, and only if the drive's current
  usage fits the smaller plan.
* Cancellation: stops renewal at the end of the paid period (no refunds);
  the drive then follows the dunning ladder.

The upgrade's ledger row (status `pending`, with its idempotency key) is
committed before Mercado Pago is called: if the process dies between the
charge and the ledger update, the next attempt finds the row and repeats the
call with the same key, which Mercado Pago answers with the first payment
instead of charging again.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlmodel import Session, select

from billing.catalog import drive_of, get_plan
from billing.core import audit
from billing.core.errors import InvalidInput
from billing.core.models import (
    Charge,
    Customer,
    Device,
    Plan,
    Subscription,
    SubscriptionStatus,
    utcnow,
)
from billing.payments.mercadopago import MercadoPago, idempotency_key
from billing.payments.outbox import push_amount, queue_amount
from billing.subscriptions.lifecycle import get_subscription
from billing.subscriptions.proration import upgrade_charge

S = SubscriptionStatus
CHANGEABLE = {S.active.value, S.past_due.value}


def _paid(session: Session, sub_id: int) -> tuple[Subscription, Plan]:
    sub = get_subscription(session, sub_id)
    if sub.kind != "paid":
        raise InvalidInput(f"subscription {sub.id} is a courtesy subscription: use grant")
    if sub.status not in CHANGEABLE:
        raise InvalidInput(
            f"subscription {sub.id} is {sub.status}: only active or past_due "
            "subscriptions can change"
        )
    plan = session.get(Plan, sub.plan_id)
    assert plan is not None
    return sub, plan


def _payer(session: Session, sub: Subscription) -> str:
    device = session.get(Device, sub.device_id)
    customer = session.get(Customer, device.customer_id) if device else None
    assert customer is not None
    return customer.email


def upgrade(
    session: Session,
    mp: MercadoPago,
    sub_id: int,
    plan_code: str,
    on: date,
    billing_day: int,
    *,
    actor: str,
) -> Charge:
    sub, old = _paid(session, sub_id)
    assert sub.id is not None  # read from the database
    new = get_plan(session, plan_code)
    key = idempotency_key("upgrade", sub.id, new.code, on.isoformat())
    done = session.exec(select(Charge).where(Charge.idempotency_key == key)).first()
    if done is not None and done.status == "approved":
        return done  # asked again: already paid and applied
    if new.currency != old.currency:
        raise InvalidInput(
            f"plan {new.code} is in {new.currency}, the subscription in {old.currency}"
        )
    quote = upgrade_charge(Decimal(old.price), Decimal(new.price), new.currency, on, billing_day)
    charge = done
    if charge is None:
        charge = Charge(
            subscription_id=sub.id,
            kind="upgrade",
            amount=quote.amount,
            currency=new.currency,
            idempotency_key=key,
            status="pending",
            period_start=on,
            period_end=quote.period_end,
            plan_id=new.id,
        )
        session.add(charge)
        audit.record(
            session,
            actor=actor,
            entity="charge",
            entity_id=key,
            action="upgrade:requested",
            cause=f"upgrade {old.code} -> {new.code}",
            subscription_id=sub.id,
            amount=quote.amount,
        )
    session.commit()  # the ledger knows the charge before Mercado Pago does
    payment = mp.create_payment(
        key=key,
        payer_email=_payer(session, sub),
        amount=charge.amount,
        currency=charge.currency,
        description=f"cam2drive upgrade to {new.code}",
        external_reference=f"sub-{sub.id}-upgrade-{new.code}",
    )
    charge.mp_id, charge.updated_at = str(payment["id"]), utcnow()
    settle_upgrade(
        session,
        mp,
        sub,
        charge,
        str(payment["status"]),
        str(payment.get("status_detail")),
        actor=actor,
    )
    if charge.status == "rejected":
        session.commit()
        raise InvalidInput(
            f"Mercado Pago declined the upgrade payment "
            f"({payment.get('status_detail')}); the plan is unchanged"
        )
    return charge


def settle_upgrade(
    session: Session,
    mp: MercadoPago,
    sub: Subscription,
    charge: Charge,
    mp_status: str,
    detail: str,
    *,
    actor: str,
) -> None:
    """Record an upgrade payment's outcome; apply the plan when it is approved.

    Called when the payment is made and again by the billing pass for
    payments Mercado Pago left in process; applying twice changes nothing.
    """
    status = {"approved": "approved", "rejected": "rejected", "cancelled": "rejected"}.get(
        mp_status, "pending"
    )
    if status == charge.status:
        return
    charge.status, charge.updated_at = status, utcnow()
    session.add(charge)
    audit.record(
        session,
        actor=actor,
        entity="charge",
        entity_id=charge.idempotency_key,
        action=f"upgrade:{status}",
        cause=detail,
        subscription_id=sub.id,
    )
    if status != "approved":
        return
    old, new = session.get(Plan, sub.plan_id), session.get(Plan, charge.plan_id)
    assert old is not None and new is not None
    sub.plan_id, sub.next_plan_id, sub.updated_at = new.id, None, utcnow()  # type: ignore[assignment]
    drive = drive_of(session, sub.device_id)
    drive.capacity_bytes = new.capacity_bytes
    session.add_all([sub, drive])
    queue_amount(session, sub, Decimal(new.price))  # pushed by the pass, isolated
    audit.record(
        session,
        actor=actor,
        entity="subscription",
        entity_id=sub.id,
        action="upgraded",
        cause=f"{old.code} -> {new.code}, paid {charge.amount}",
        payment_id=charge.mp_id,
    )


def downgrade(
    session: Session, mp: MercadoPago, sub_id: int, plan_code: str, *, actor: str
) -> Subscription:
    sub, old = _paid(session, sub_id)
    new = get_plan(session, plan_code)
    if new.price >= old.price:
        raise InvalidInput(f"plan {new.code} does not cost less than {old.code}: use upgrade")
    drive = drive_of(session, sub.device_id)
    used = drive.committed_bytes + drive.reserved_bytes
    if used > new.capacity_bytes:
        raise InvalidInput(
            f"the drive holds {used} bytes, more than plan {new.code}'s "
            f"{new.capacity_bytes}: delete recordings first"
        )
    sub.next_plan_id, sub.updated_at = new.id, utcnow()
    queue_amount(session, sub, Decimal(new.price))  # the next installment's price
    session.add(sub)
    audit.record(
        session,
        actor=actor,
        entity="subscription",
        entity_id=sub.id,
        action="downgrade_scheduled",
        cause=f"{old.code} -> {new.code} at next cycle",
    )
    session.commit()  # the change is recorded whether or not Mercado Pago answers now
    push_amount(session, mp, sub, actor=actor)  # else the next billing pass retries it
    return sub


def cancel(session: Session, mp: MercadoPago, sub_id: int, *, actor: str) -> Subscription:
    sub = get_subscription(session, sub_id)
    if sub.kind != "paid":
        raise InvalidInput(f"subscription {sub.id} is a courtesy subscription")
    if sub.status in (S.deleted.value, S.cancelled.value) or sub.cancel_at_period_end:
        raise InvalidInput(
            f"subscription {sub.id} is already {sub.status}"
            + (" (cancelled at period end)" if sub.cancel_at_period_end else "")
        )
    if sub.mp_preapproval_id:
        mp.cancel_preapproval(sub.mp_preapproval_id)
    if sub.status == S.pending.value:
        sub.status = S.cancelled.value
    else:
        sub.cancel_at_period_end = True
    sub.updated_at = utcnow()
    session.add(sub)
    audit.record(
        session,
        actor=actor,
        entity="subscription",
        entity_id=sub.id,
        action="cancelled",
        cause="customer request; no refund, paid period kept",
        paid_through=sub.paid_through,
    )
    return sub
