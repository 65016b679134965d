"""Pay now: a past_due or blocked customer pays the overdue period at once.

Mercado Pago retries a declined installment on its own schedule and, after
repeated declines, cancels the preapproval; a customer whose card expired
cannot fix that from our side. So they get two things:

* a Checkout Pro link for the overdue amount (billing/payments/checkout.py):
  paying it marks the charge approved, moves the paid-through date to the
  end of the overdue period and restores the subscription at once;
* the plan's `init_point`, to subscribe again with another card: the new
  preapproval for the same plan and email replaces the cancelled one
  (billing/payments/sync.py `relink`).

Mercado Pago documents no way to stop the retries of one installment, so a
payer who pays the link while their old card is still being retried can pay
twice; the second payment shows in the ledger's audit and is refunded by hand.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlmodel import Session

from billing.core.errors import InvalidInput
from billing.core.models import Charge, Subscription, SubscriptionStatus
from billing.dunning import ladder
from billing.payments import checkout
from billing.payments.checkout import LinkTerms
from billing.payments.mercadopago import MercadoPago, MercadoPagoFailed
from billing.subscriptions.lifecycle import (
    ensure_mp_plan,
    get_subscription,
    plan_checkout,
    plan_of,
)
from billing.subscriptions.proration import next_billing_date

S = SubscriptionStatus
OVERDUE = (S.past_due.value, S.blocked.value)


def overdue(
    paid_through: date | None, today: date, price: Decimal, billing_day: int
) -> tuple[date, date, Decimal]:
    """(period start, period end, amount): every unpaid period up to one that ends after today."""
    start = paid_through or today
    end, amount = next_billing_date(start, billing_day), price
    while end <= today:
        end, amount = next_billing_date(end, billing_day), amount + price
    return start, end, amount


def _expiry(sub: Subscription, today: date, terms: LinkTerms) -> datetime:
    end, settings = checkout.expiry(today, terms.days), terms.ladder
    since = sub.blocked_at or sub.past_due_since
    if settings is None or since is None:
        return end
    if sub.blocked_at is not None:
        rungs = ladder(settings, blocked_on=sub.blocked_at.date())
    else:
        rungs = ladder(settings, past_due_since=since.date())
    last = max(today, rungs.delete_on - timedelta(days=1))
    return min(end, checkout.expiry(last, 0))


def pay_link(
    session: Session, mp: MercadoPago, sub_id: int, today: date, terms: LinkTerms
) -> dict[str, object]:
    """The pay-now link of a past_due or blocked subscription (the same one while
    it can be paid), and the plan's checkout to subscribe again.

    With the terms' `ladder` the link cannot outlive the drive: it expires the
    day before the drive would be deleted, so nobody pays for a drive that is
    already gone."""
    sub = get_subscription(session, sub_id)
    assert sub.id is not None
    if sub.kind != "paid" or sub.status not in OVERDUE:
        raise InvalidInput(
            "subscription %(subscription)s is %(status)s: only a past_due or blocked paid "
            "subscription has something to pay now",
            subscription=sub.id,
            status=sub.status,
        )
    plan = plan_of(session, sub)
    live = [
        c for c in checkout.waiting(session, sub.id, "paynow") if not checkout.expired(c, today)
    ]
    if live:
        charge: Charge = live[0]
    else:
        start, end, amount = overdue(
            sub.paid_through, today, Decimal(plan.price), terms.billing_day
        )
        charge = checkout.new_charge(
            session,
            sub,
            kind="paynow",
            amount=amount,
            currency=plan.currency,
            period_start=start,
            period_end=end,
            expires_at=_expiry(sub, today, terms),
            plan_id=None,
            actor=terms.actor,
            cause=f"pay now: {plan.code} from {start} to {end}",
        )
    charge = checkout.open_link(
        session,
        mp,
        sub,
        charge,
        title=f"cam2drive {plan.code}, {charge.period_start} to {charge.period_end}",
        notification_url=terms.notification_url,
        actor=terms.actor,
    )
    recurring: str | None = None
    try:
        if sub.mp_preapproval_id:
            recurring = mp.get_preapproval(sub.mp_preapproval_id).status
        ensure_mp_plan(session, mp, plan, terms.billing_day)  # an upgraded plan may have none yet
        again = plan_checkout(session, mp, plan)
    except MercadoPagoFailed:
        again = None  # the pay-now link stands on its own
    return {
        "subscription": sub.id,
        "status": sub.status,
        "charge": charge.id,
        "amount": str(charge.amount),
        "currency": charge.currency,
        "period_start": charge.period_start.isoformat() if charge.period_start else None,
        "paid_through_once_paid": charge.period_end.isoformat() if charge.period_end else None,
        "pay_url": charge.checkout_url,
        "expires_at": charge.expires_at.isoformat() if charge.expires_at else None,
        "recurring_charge": recurring,
        "subscribe_again_url": again,
        "note": (
            "Mercado Pago cancelled the recurring charge: after paying, subscribe again at "
            "subscribe_again_url with the same Mercado Pago account (another card)"
            if recurring == "cancelled"
            else "if the card itself must change, subscribe again at subscribe_again_url"
        ),
    }
