"""The preapproval amount outbox: plan changes on their way to Mercado Pago.

An approved upgrade (or a scheduled downgrade) changes what later
installments charge: PUT /preapproval/{id} with `auto_recurring.transaction_amount`
(https://www.mercadopago.com/developers/en/reference/online-payments/subscriptions/update-preapproval/put).
That call is not made inside the transaction that records the change: the
amount is written to `Subscription.mp_amount_pending` with it, and pushed
afterwards. A failed push (5xx, timeout) leaves it queued for the next billing
pass, touches no other subscription, and is reported; a billing pass never
stops for it.
"""

from __future__ import annotations

from decimal import Decimal

from sqlmodel import Session

from billing.core import audit
from billing.core.models import Subscription
from billing.payments.mercadopago import MercadoPago, MercadoPagoFailed


def queue_amount(session: Session, sub: Subscription, amount: Decimal) -> None:
    """Later installments must charge `amount`: queued with the caller's transaction."""
    if not sub.mp_preapproval_id:
        return
    sub.mp_amount_pending = amount
    session.add(sub)


def push_amount(session: Session, mp: MercadoPago, sub: Subscription, *, actor: str) -> str | None:
    """Send the queued amount; None when done (or nothing was queued), else why not.

    Idempotent: PUT sets an absolute amount, so a push repeated after a crash
    between the call and the commit changes nothing at Mercado Pago.
    """
    amount = sub.mp_amount_pending
    if amount is None or not sub.mp_preapproval_id:
        return None
    try:
        mp.update_preapproval_amount(sub.mp_preapproval_id, Decimal(amount))
    except MercadoPagoFailed as exc:
        audit.subscription(
            session, sub.id, "amount_push_failed", str(exc), actor=actor, amount=amount
        )
        return str(exc)
    sub.mp_amount_pending = None
    session.add(sub)
    audit.subscription(
        session,
        sub.id,
        "amount_pushed",
        "Mercado Pago charges the new amount from the next installment",
        actor=actor,
        amount=amount,
    )
    return None
