"""Paid subscriptions: creation through a Mercado Pago preapproval, and their states.

A paid subscription starts `pending`: cam2drive has asked Mercado Pago for a
preapproval on the plan's Mercado Pago plan (billing day, proportional first
month) and shows the payer's checkout URL. cam2drive never sees card data.
It becomes `active` when the first installment is approved (billing/payments/sync.py).

The subscription row is committed before Mercado Pago is called, so the
idempotency key (derived from its id) exists first: a crash or a timeout
followed by a re-run asks for the same preapproval again, never a second one.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlmodel import Session, select

from billing.catalog import current_subscription, drive_of, get_device, get_plan
from billing.core import audit
from billing.core.errors import AlreadyExists, NotFound
from billing.core.models import (
    Customer,
    MercadoPagoPlan,
    Plan,
    Subscription,
    SubscriptionStatus,
    utcnow,
)
from billing.core.vocab import HOLDS_DRIVE_STATUSES
from billing.payments.mercadopago import (
    MercadoPago,
    MercadoPagoFailed,
    MercadoPagoUnavailable,
    idempotency_key,
)
from billing.subscriptions.proration import prorate

EMAIL_NOTE = (
    "the customer's email must be the email of their Mercado Pago account, "
    "or Mercado Pago refuses the subscription"
)


def transition(
    session: Session, sub: Subscription, status: str, *, cause: str, actor: str, **detail: object
) -> None:
    """Change a subscription's status, audited with its cause (no-op if unchanged)."""
    before = sub.status
    if before == status:
        return
    sub.status = status
    sub.updated_at = utcnow()
    session.add(sub)
    audit.subscription(
        session, sub.id, f"status:{status}", cause, actor=actor, status_before=before, **detail
    )


def restore_paid(
    session: Session, sub: Subscription, paid_through: date, *, actor: str, cause: str
) -> None:
    """Paid through `paid_through`: a past_due or blocked subscription is active
    again at once (an installment Mercado Pago recovered, a pay-now link)."""
    if sub.paid_through is None or paid_through > sub.paid_through:
        sub.paid_through = paid_through
        session.add(sub)
    if sub.status in (SubscriptionStatus.past_due.value, SubscriptionStatus.blocked.value):
        sub.past_due_since = sub.blocked_at = None
        transition(
            session,
            sub,
            SubscriptionStatus.active.value,
            actor=actor,
            cause=cause,
            paid_through=sub.paid_through,
        )


def ensure_mp_plan(session: Session, mp: MercadoPago, plan: Plan, billing_day: int) -> str:
    """The Mercado Pago plan for (plan, price, billing day), created once."""
    assert plan.id is not None  # read from the database
    row = session.exec(
        select(MercadoPagoPlan).where(
            MercadoPagoPlan.plan_id == plan.id,
            MercadoPagoPlan.billing_day == billing_day,
            MercadoPagoPlan.price == plan.price,
        )
    ).first()
    if row is not None:
        return row.mp_plan_id
    created = mp.create_plan(
        key=idempotency_key("plan", plan.id, billing_day, plan.price),
        reason=f"cam2drive {plan.code}",
        amount=plan.price,
        currency=plan.currency,
        billing_day=billing_day,
    )
    row = MercadoPagoPlan(
        plan_id=plan.id,
        billing_day=billing_day,
        price=plan.price,
        mp_plan_id=str(created["id"]),
    )
    session.add(row)
    session.flush()
    return row.mp_plan_id


def create_paid(
    session: Session,
    mp: MercadoPago,
    *,
    device_ref: str | int,
    plan_code: str,
    on: date,
    billing_day: int,
    actor: str,
) -> Subscription:
    """A pending paid subscription with its plan's checkout URL and the email to pay with.

    Mercado Pago requires a card token to create a plan-linked preapproval
    (https://www.mercadopago.com.mx/developers/en/docs/subscriptions/integration-configuration/subscription-associated-plan),
    and card data never reaches cam2drive: the payer subscribes at the plan's
    `init_point` with their own Mercado Pago account, and the billing pass
    links the preapproval that appears for this plan and the customer's email
    (billing/payments/sync.py `link`). So nothing is created at Mercado Pago
    here but the plan, once. Running it again for the device returns the same
    pending subscription (moved to `plan_code` if that changed): never a
    second subscription, never a preapproval.
    """
    device = get_device(session, device_ref)
    plan = get_plan(session, plan_code)
    assert device.id is not None and plan.id is not None  # rows read from the database
    drive_of(session, device.id)
    current = current_subscription(session, device.id)
    if current is not None and current.status in HOLDS_DRIVE_STATUSES:
        raise AlreadyExists(
            "device %(device)s already has subscription %(subscription)s "
            "(%(status)s); change its plan instead",
            device=device.id,
            subscription=current.id,
            status=current.status,
        )
    quote = prorate(plan.price, plan.currency, on, billing_day)
    if (
        current is not None
        and current.kind == "paid"
        and current.status == SubscriptionStatus.pending.value
        and current.mp_preapproval_id is None
    ):
        sub = current
        if sub.plan_id != plan.id:  # nothing paid yet: the same request, another plan
            sub.plan_id, sub.first_charge = plan.id, quote.amount
            session.add(sub)
    else:
        sub = Subscription(
            device_id=device.id,
            plan_id=plan.id,
            status=SubscriptionStatus.pending.value,
            kind="paid",
            start_date=on,
            first_charge=quote.amount,
        )
        session.add(sub)
        session.flush()
        audit.subscription(
            session,
            sub.id,
            "created",
            "paid subscription requested",
            actor=actor,
            plan=plan.code,
            device_id=device.id,
            first_charge=quote.amount,
        )
    session.commit()  # the subscription exists whatever Mercado Pago answers
    customer = session.get(Customer, device.customer_id)
    assert customer is not None
    try:
        ensure_mp_plan(session, mp, plan, billing_day)
        checkout = plan_checkout(session, mp, plan)
    except MercadoPagoFailed as exc:
        unavailable = isinstance(exc, MercadoPagoUnavailable)
        retry = " Run the command again later." if unavailable else ""
        sub.pending_reason = f"{exc}.{retry}"
        session.add(sub)
        action = "mercadopago_unavailable" if unavailable else "mercadopago_refused"
        audit.subscription(session, sub.id, action, str(exc), actor=actor)
        return sub
    sub.checkout_url = checkout
    sub.pending_reason = waiting_reason(customer.email)
    session.add(sub)
    audit.subscription(
        session,
        sub.id,
        "checkout_created",
        "the plan's Mercado Pago checkout; linked when the payer subscribes",
        actor=actor,
        payer_email=customer.email,
    )
    return sub


def waiting_reason(email: str) -> str:
    return (
        f"waiting for the payer to subscribe at the checkout URL with the Mercado Pago "
        f"account {email}"
    )


def plan_checkout(session: Session, mp: MercadoPago, plan: Plan) -> str:
    """The plan's `init_point`: where a payer subscribes with their own Mercado Pago
    account (card data never reaches us). GET /preapproval_plan/{id}:
    https://www.mercadopago.com/developers/en/reference/online-payments/subscriptions/get-preapproval-plan/get
    """
    row = session.exec(
        select(MercadoPagoPlan)
        .where(MercadoPagoPlan.plan_id == plan.id)
        .order_by(MercadoPagoPlan.id.desc())  # type: ignore[union-attr]
    ).first()
    assert row is not None  # ensure_mp_plan made it
    return str(mp.get_plan(row.mp_plan_id)["init_point"])


def get_subscription(session: Session, sub_id: int) -> Subscription:
    sub = session.get(Subscription, sub_id)
    if sub is None:
        raise NotFound("subscription %(subscription)s does not exist", subscription=sub_id)
    return sub


def plan_of(session: Session, sub: Subscription) -> Plan:
    """The plan `sub` is on (a foreign key: always there)."""
    plan = session.get(Plan, sub.plan_id)
    assert plan is not None
    return plan


def describe(session: Session, sub: Subscription) -> dict[str, object]:
    """The fields an operator needs, plain types only (for tables and --json)."""
    plan = plan_of(session, sub)
    return {
        "id": sub.id,
        "device_id": sub.device_id,
        "plan": plan.code,
        "kind": sub.kind,
        "status": sub.status,
        "price": str(plan.price),
        "currency": plan.currency,
        "first_charge": None if sub.first_charge is None else str(Decimal(sub.first_charge)),
        "checkout_url": sub.checkout_url,
        "pending_reason": sub.pending_reason,
        "paid_through": sub.paid_through.isoformat() if sub.paid_through else None,
        "mp_preapproval_id": sub.mp_preapproval_id,
        "next_plan": (
            session.get(Plan, sub.next_plan_id).code  # type: ignore[union-attr]
            if sub.next_plan_id
            else None
        ),
        "cancel_at_period_end": sub.cancel_at_period_end,
    }
