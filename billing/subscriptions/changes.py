"""Plan changes and cancellation of paid subscriptions.

* Upgrade: only while active and not cancelling. The difference for the days
  already paid at the old price, (new - old) x min(d, 30) / 30 with d counted
  to the paid-through date, becomes a Checkout Pro link the payer pays; once
  that payment is approved the plan changes at once and later installments
  charge the new price (billing/payments/checkout.py).
* Downgrade: takes effect at the next cycle, and only if the drive's current
  usage fits the smaller plan.
* Cancellation: stops renewal at the end of the paid period (no refunds);
  the drive then follows the dunning ladder.

The upgrade's ledger row (status `pending`, keyed by its own id) is
committed before Mercado Pago is called: if the process dies between the
call and the ledger update, the next attempt finds the row and repeats the
call with the same key, which Mercado Pago answers with the first link
instead of making another.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlmodel import Session

from billing.catalog import drive_of, get_plan
from billing.core import audit
from billing.core.errors import InvalidInput
from billing.core.models import (
    Charge,
    Plan,
    Subscription,
    SubscriptionStatus,
    utcnow,
)
from billing.payments import checkout
from billing.payments.checkout import LinkTerms
from billing.payments.mercadopago import MercadoPago
from billing.payments.outbox import push_amount, queue_amount
from billing.subscriptions.lifecycle import get_subscription, plan_of
from billing.subscriptions.proration import upgrade_difference

S = SubscriptionStatus
CHANGEABLE = {S.active.value, S.past_due.value}


def _paid(session: Session, sub_id: int) -> tuple[Subscription, Plan]:
    sub = get_subscription(session, sub_id)
    if sub.kind != "paid":
        raise InvalidInput(
            "subscription %(subscription)s is a courtesy subscription: use grant",
            subscription=sub.id,
        )
    if sub.status not in CHANGEABLE:
        raise InvalidInput(
            "subscription %(subscription)s is %(status)s: only active or past_due "
            "subscriptions can change",
            subscription=sub.id,
            status=sub.status,
        )
    return sub, plan_of(session, sub)


def upgrade(
    session: Session, mp: MercadoPago, sub_id: int, plan_code: str, on: date, terms: LinkTerms
) -> Charge:
    """The upgrade's pending charge with the Checkout Pro link the payer pays.

    Nothing changes until that payment is approved (billing/payments/checkout.py
    `settle`, from a webhook or the billing pass): then the plan and the drive
    change at once and the preapproval's new amount goes through the outbox.
    Asked again, it returns the same charge and link (a crash after Mercado
    Pago made the link and before the ledger knew it gets the same link back:
    the idempotency key is the charge's id). Only an active subscription that
    is not cancelling may upgrade; one link waits at a time.
    """
    sub = get_subscription(session, sub_id)
    assert sub.id is not None  # read from the database
    if sub.kind != "paid":
        raise InvalidInput(
            "subscription %(subscription)s is a courtesy subscription: use grant",
            subscription=sub.id,
        )
    if sub.status != S.active.value or sub.cancel_at_period_end:
        why = "cancelling at period end" if sub.cancel_at_period_end else sub.status
        raise InvalidInput(
            "subscription %(subscription)s is %(status)s: only an active subscription that "
            "is not cancelling can upgrade",
            subscription=sub.id,
            status=why,
        )
    old, new = session.get(Plan, sub.plan_id), get_plan(session, plan_code)
    assert old is not None
    if new.currency != old.currency:
        raise InvalidInput(
            "plan %(plan)s is in %(currency)s, the subscription in %(current)s",
            plan=new.code,
            currency=new.currency,
            current=old.currency,
        )
    # an expired link is marked so by the billing pass; a new one replaces it
    live = [c for c in checkout.waiting(session, sub.id, "upgrade") if not checkout.expired(c, on)]
    if live and live[0].plan_id != new.id:
        raise InvalidInput(
            "subscription %(subscription)s has an upgrade waiting for payment "
            "(charge %(charge)s, %(link)s); pay it or let it expire first",
            subscription=sub.id,
            charge=live[0].id,
            link=live[0].checkout_url or "link not created yet",
        )
    if live:  # asked again: the same charge, the same link
        charge = live[0]
    else:
        quote = upgrade_difference(
            Decimal(old.price),
            Decimal(new.price),
            new.currency,
            on,
            sub.paid_through or on,
            terms.billing_day,
        )
        charge = checkout.new_charge(
            session,
            sub,
            kind="upgrade",
            amount=quote.amount,
            currency=new.currency,
            period_start=on,
            period_end=quote.period_end,
            expires_at=checkout.expiry(on, terms.days),
            plan_id=new.id,
            actor=terms.actor,
            cause=f"upgrade {old.code} -> {new.code}: the difference for {quote.days} paid days",
        )
    return checkout.open_link(
        session,
        mp,
        sub,
        charge,
        title=f"cam2drive upgrade to {new.code}",
        notification_url=terms.notification_url,
        actor=terms.actor,
    )


def downgrade(
    session: Session, mp: MercadoPago, sub_id: int, plan_code: str, *, actor: str
) -> Subscription:
    sub, old = _paid(session, sub_id)
    new = get_plan(session, plan_code)
    if new.price >= old.price:
        raise InvalidInput(
            "plan %(plan)s does not cost less than %(current)s: use upgrade",
            plan=new.code,
            current=old.code,
        )
    drive = drive_of(session, sub.device_id)
    used = drive.committed_bytes + drive.reserved_bytes
    if used > new.capacity_bytes:
        raise InvalidInput(
            "the drive holds %(used)s bytes, more than plan %(plan)s's "
            "%(capacity)s: delete recordings first",
            used=used,
            plan=new.code,
            capacity=new.capacity_bytes,
        )
    sub.next_plan_id, sub.updated_at = new.id, utcnow()
    queue_amount(session, sub, Decimal(new.price))  # the next installment's price
    session.add(sub)
    audit.subscription(
        session,
        sub.id,
        "downgrade_scheduled",
        f"{old.code} -> {new.code} at next cycle",
        actor=actor,
    )
    session.commit()  # the change is recorded whether or not Mercado Pago answers now
    push_amount(session, mp, sub, actor=actor)  # else the next billing pass retries it
    return sub


def cancel(session: Session, mp: MercadoPago, sub_id: int, *, actor: str) -> Subscription:
    sub = get_subscription(session, sub_id)
    if sub.kind != "paid":
        raise InvalidInput(
            "subscription %(subscription)s is a courtesy subscription", subscription=sub.id
        )
    if sub.status in (S.deleted.value, S.cancelled.value) or sub.cancel_at_period_end:
        already = (
            "subscription %(subscription)s is already %(status)s (cancelled at period end)"
            if sub.cancel_at_period_end
            else "subscription %(subscription)s is already %(status)s"
        )
        raise InvalidInput(already, subscription=sub.id, status=sub.status)
    if sub.mp_preapproval_id:
        mp.cancel_preapproval(sub.mp_preapproval_id)
    if sub.status == S.pending.value:
        sub.status = S.cancelled.value
    else:
        sub.cancel_at_period_end = True
    sub.updated_at = utcnow()
    session.add(sub)
    audit.subscription(
        session,
        sub.id,
        "cancelled",
        "customer request; no refund, paid period kept",
        actor=actor,
        paid_through=sub.paid_through,
    )
    return sub
