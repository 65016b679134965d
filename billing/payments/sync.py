"""Payment status from Mercado Pago into the ledger and the subscription's state.

Read by the billing pass, in bulk from the payment search (`feed`) when many
are due, else per subscription (`fetch`); `apply_preapproval` takes what
Mercado Pago says (from either, from a webhook later) and is idempotent: the
same data applied twice changes nothing. Mercado Pago being unreachable is
reported and changes nothing: never read as non-payment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlmodel import Session, col, select

from billing.catalog import drive_of
from billing.core import audit, staging
from billing.core.models import (
    Charge,
    Customer,
    Device,
    Drive,
    MercadoPagoPlan,
    Plan,
    Subscription,
    SubscriptionStatus,
    utcnow,
)
from billing.payments import checkout
from billing.payments.mercadopago import MercadoPago, MercadoPagoFailed, Preapproval
from billing.subscriptions.lifecycle import plan_of, restore_paid, transition
from billing.subscriptions.proration import next_billing_date

ACTOR = "billing"
CHARGES = Charge.__table__  # type: ignore[attr-defined]
S = SubscriptionStatus


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def lapse(
    session: Session, sub: Subscription, status: str, today: date, *, cause: str, **detail: object
) -> None:
    """Move `sub` into a state the dunning ladder counts from `today`: past_due
    (to its block) from `past_due_since`, blocked and cancelled (to the drive's
    deletion) from `blocked_at`."""
    if status == S.past_due.value:
        sub.past_due_since = day_start(today)
    else:
        sub.blocked_at = day_start(today)
    transition(session, sub, status, actor=ACTOR, cause=cause, **detail)


@dataclass
class Snapshot:
    """What Mercado Pago says about one subscription; `pre_status` None = not asked."""

    installments: list[dict[str, Any]]
    pre_status: str | None = None


def coverage(
    sub: Subscription, installments: list[dict[str, Any]], today: date, billing_day: int
) -> tuple[date | None, bool]:
    """(paid_through, the current period's installment is declined).

    Only the current period is judged: the latest installment whose debit
    date has come. An old rejection (a month that was later recovered, or
    paid another way) says nothing about today; an installment Mercado Pago
    has not tried yet (no `payment`) is not a decline either. Statuses of an
    authorized payment (`scheduled`, `processed`, `recycling`, `rejected`…):
    https://www.mercadopago.com.br/developers/es/reference/online-payments/subscriptions/get-authorized-payment/get.md
    """
    paid_through = sub.paid_through
    current: tuple[date, dict[str, Any]] | None = None
    for inst in installments:
        payment = inst.get("payment") or {}
        debit = date.fromisoformat(str(inst["debit_date"])[:10])
        if payment.get("status") == "approved":
            end = next_billing_date(debit, billing_day)
            paid_through = end if paid_through is None or end > paid_through else paid_through
        if debit <= today and (current is None or debit >= current[0]):
            current = (debit, inst)
    covered = paid_through is not None and paid_through > today
    declined_due = (
        not covered
        and current is not None
        and bool(current[1].get("payment"))
        and charge_status(current[1]) == "rejected"
    )
    return paid_through, declined_due


#: A payment's status as the ledger keeps it. `refunded` and `charged_back` stay
#: what they are (the invoicing side issues the credit note), never "pending":
#: https://www.mercadopago.com.mx/developers/en/docs/checkout-api-payments/response-handling/query-results.md
LEDGER_STATUS = {
    "approved": "approved",
    "rejected": "rejected",
    "cancelled": "rejected",
    "refunded": "refunded",
    "charged_back": "charged_back",
}


def charge_status(inst: dict[str, Any]) -> str:
    """The ledger status of an installment: its latest payment's, or the
    installment's own when Mercado Pago is still retrying (`recycling`)."""
    payment = inst.get("payment") or {}
    status = LEDGER_STATUS.get(str(payment.get("status")))
    if status is None and inst.get("status") in ("rejected", "recycling"):
        return "rejected"
    return status or "pending"


#: Preapproval statuses that charge nothing more: the period that ends unpaid
#: is unpaid (pending|authorized|paused|cancelled):
#: https://www.mercadopago.com/developers/en/reference/online-payments/subscriptions/get-preapproval/get
NOT_CHARGING = ("paused", "cancelled")


Feed = dict[str, list[dict[str, Any]]]  # preapproval id -> installments seen in payments

FEED_DAYS = 12  # Mercado Pago retries a declined installment for 10 days


def feed(mp: MercadoPago, today: date, days: int = FEED_DAYS) -> Feed:
    """The installments that moved in the last `days` days, from Mercado Pago's
    payment search: a page of up to a thousand subscriptions per call, where
    polling costs a call per subscription (and MP's rate limit is per token).

    Every attempt at an installment is a payment naming its preapproval and
    billing date; the latest attempt per billing date is the installment's
    state. Raises MercadoPagoFailed.
    """
    begin = f"{today - timedelta(days=days)}T00:00:00.000Z"
    end = f"{today + timedelta(days=1)}T23:59:59.999Z"
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for page in mp.payments_updated(begin, end):
        for pay in page:  # oldest first: a later attempt replaces an earlier one
            data = (pay.get("point_of_interaction") or {}).get("transaction_data") or {}
            pre, debit = data.get("subscription_id"), data.get("billing_date")
            if not pre or not debit:
                continue  # a one-off payment (an upgrade), not an installment
            status = str(pay.get("status"))
            latest[(str(pre), str(debit)[:10])] = {
                "debit_date": str(debit)[:10],
                "transaction_amount": pay["transaction_amount"],
                "status": {"approved": "processed", "rejected": "rejected"}.get(
                    status, "scheduled"
                ),
                "payment": {"id": pay["id"], "status": status},
            }
    found: Feed = {}
    for (pre, _debit), inst in latest.items():
        found.setdefault(pre, []).append(inst)
    return found


def fetch(
    mp: MercadoPago, sub: Subscription, today: date, billing_day: int, known: Feed | None = None
) -> Snapshot:
    """No call when the payments `known` from the feed settle the question (paid
    through a later date, or declined); else one call in the common case: the
    installments. The preapproval itself is read only when they cannot settle
    it either (a lapsed period with no declined installment: did the payer
    cancel?). Raises MercadoPagoFailed.
    Thread-safe: reads `sub`, writes nothing."""
    assert sub.mp_preapproval_id
    seen = (known or {}).get(sub.mp_preapproval_id)
    if seen:
        paid_through, declined = coverage(sub, seen, today, billing_day)
        if declined or (paid_through is not None and paid_through > today):
            return Snapshot(installments=seen)
    snap = Snapshot(installments=mp.installments(sub.mp_preapproval_id))
    paid_through, declined = coverage(sub, snap.installments, today, billing_day)
    covered = paid_through is not None and paid_through > today
    if not covered and not declined:
        snap.pre_status = mp.get_preapproval(sub.mp_preapproval_id).status
    return snap


def try_fetch(
    mp: MercadoPago, sub: Subscription, today: date, billing_day: int, known: Feed | None = None
) -> Snapshot | MercadoPagoFailed:
    """`fetch`, with Mercado Pago's failure as a value: what `sync` turns into
    "unreachable, nothing changes" (and what a thread pool can hand back)."""
    if not sub.mp_preapproval_id:  # Mercado Pago refused to create it: nothing to ask
        return Snapshot(installments=[])
    try:
        return fetch(mp, sub, today, billing_day, known)
    except MercadoPagoFailed as exc:
        return exc


def sync(
    session: Session,
    mp: MercadoPago,
    sub: Subscription,
    today: date,
    billing_day: int,
    snapshot: Snapshot | BaseException | None = None,
    known: dict[str, Charge] | None = None,
    upgrading: bool = True,
    drive: Drive | None = None,
    pending_expiry_days: int = 7,
) -> bool:
    """Apply Mercado Pago's view of `sub`; False if it could not be reached (nothing changed).

    A pending subscription is first linked to its preapproval (`link`), or
    expires after `pending_expiry_days` without one.

    `snapshot` may be fetched beforehand (billing/cycle.py fetches a chunk at
    once); `known` holds the subscription's ledger rows by idempotency key,
    `drive` its drive when the caller loaded it with others.
    """
    if sub.kind != "paid":
        return True
    if sub.status == S.pending.value and not sub.mp_preapproval_id:
        try:
            found = link(session, mp, sub)
        except MercadoPagoFailed as exc:
            snapshot = exc
        else:
            if not found:
                expire_pending(session, sub, today, pending_expiry_days)
                return True
            snapshot = None  # linked just now: read its installments
    elif sub.status in (S.past_due.value, S.blocked.value) and sub.mp_preapproval_id:
        try:  # subscribed again after Mercado Pago cancelled the old one?
            if relink(session, mp, sub):
                snapshot = None  # read the new preapproval's installments
        except MercadoPagoFailed as exc:
            snapshot = exc
    if not sub.mp_preapproval_id and not isinstance(snapshot, BaseException):
        return True
    if snapshot is None:
        snapshot = try_fetch(mp, sub, today, billing_day)
    if isinstance(snapshot, BaseException):
        # unreachable, or it does not know the preapproval: either way we do
        # not know whether the payer paid, so nothing may move on this pass
        return _poll_failed(session, sub, snapshot)
    apply_preapproval(
        session, sub, snapshot.pre_status, snapshot.installments, today, billing_day, known, drive
    )
    return _poll_one_off(session, mp, sub, today) if upgrading else True


def link(session: Session, mp: MercadoPago, sub: Subscription) -> bool:
    """Find the preapproval the payer made at the plan's checkout; True once linked.

    The payer subscribes at the plan's `init_point` with their Mercado Pago
    account; the preapproval that appears names the plan and the payer's
    email, which is why the customer's email must be their Mercado Pago
    email (seed 000). GET /preapproval/search?preapproval_plan_id=…&payer_email=…,
    every page (https://www.mercadopago.com.mx/developers/en/reference/subscriptions/_preapproval_search/get).
    A preapproval already linked to another subscription (the same payer with
    two devices on one plan) is left to it: the oldest free one is taken.
    Raises MercadoPagoFailed; changes nothing then.
    """
    free = _free_preapprovals(session, mp, sub)
    if not free:
        return False
    sub.mp_preapproval_id, sub.pending_reason = free[0].id, None
    session.add(sub)
    audit.subscription(
        session,
        sub.id,
        "linked",
        "the payer subscribed at Mercado Pago's checkout with the customer's email",
        actor=ACTOR,
        preapproval_id=free[0].id,
    )
    return True


def relink(session: Session, mp: MercadoPago, sub: Subscription) -> bool:
    """A customer whose preapproval Mercado Pago cancelled (after repeated
    declines, an expired card) subscribes again at the plan's `init_point`
    with another card: the new preapproval, found as `link` finds one, replaces
    the cancelled one. True once replaced. GET /preapproval/{id} says
    `cancelled`: https://www.mercadopago.com/developers/en/reference/online-payments/subscriptions/get-preapproval/get
    Raises MercadoPagoFailed; changes nothing then.
    """
    assert sub.mp_preapproval_id
    if mp.get_preapproval(sub.mp_preapproval_id).status != "cancelled":
        return False
    free = _free_preapprovals(session, mp, sub)
    if not free:
        return False
    before, sub.mp_preapproval_id = sub.mp_preapproval_id, free[0].id
    session.add(sub)
    audit.subscription(
        session,
        sub.id,
        "relinked",
        "Mercado Pago cancelled the recurring charge; the payer subscribed again",
        actor=ACTOR,
        preapproval_before=before,
        preapproval_id=free[0].id,
    )
    return True


def _free_preapprovals(session: Session, mp: MercadoPago, sub: Subscription) -> list[Preapproval]:
    """The live preapprovals on the subscription's plan with its customer's email
    that no subscription holds yet, oldest first."""
    device = session.get(Device, sub.device_id)
    customer = session.get(Customer, device.customer_id) if device else None
    assert customer is not None
    email = customer.email.strip().lower()
    plans = session.exec(
        select(MercadoPagoPlan.mp_plan_id).where(MercadoPagoPlan.plan_id == sub.plan_id)
    ).all()
    found = [
        pre
        for plan_id in plans
        for pre in mp.search_preapprovals(plan_id=plan_id, payer_email=customer.email)
        if pre.payer_email.strip().lower() == email and pre.status in ("authorized", "paused")
    ]
    if not found:
        return []
    taken = set(
        session.exec(
            select(Subscription.mp_preapproval_id).where(
                col(Subscription.mp_preapproval_id).in_([p.id for p in found])
            )
        ).all()
    )
    return sorted(
        (p for p in found if p.id not in taken), key=lambda p: str(p.raw.get("date_created"))
    )


def expire_pending(session: Session, sub: Subscription, today: date, days: int) -> None:
    """A pending subscription nobody paid for within `days` of the request ends."""
    started = sub.start_date or sub.created_at.date()
    if today < started + timedelta(days=days):
        return
    sub.pending_reason = (
        f"expired: no Mercado Pago subscription with the customer's email within {days} days; "
        "create it again to get a new checkout"
    )
    transition(
        session,
        sub,
        S.cancelled.value,
        actor=ACTOR,
        cause=f"pending for {days} days without a Mercado Pago subscription",
    )


def _poll_one_off(session: Session, mp: MercadoPago, sub: Subscription, today: date) -> bool:
    """Pay-now and upgrade links (billing/payments/checkout.py): settle the paid ones."""
    try:
        checkout.poll(session, mp, sub, today, actor=ACTOR)
    except MercadoPagoFailed as exc:
        return _poll_failed(session, sub, exc)
    return True


def _poll_failed(session: Session, sub: Subscription, exc: BaseException) -> bool:
    """Record that Mercado Pago could not be asked about `sub`; always False
    (the pass reports the subscription unreachable and changes nothing)."""
    audit.subscription(session, sub.id, "poll_failed", str(exc), actor=ACTOR)
    return False


def apply_preapproval(
    session: Session,
    sub: Subscription,
    pre_status: str | None,
    installments: list[dict[str, Any]],
    today: date,
    billing_day: int,
    known: dict[str, Charge] | None = None,
    drive: Drive | None = None,
) -> None:
    """Idempotent. `pre_status` None: not read (an approved installment implies
    the payer authorised; only a lapsed period needs the preapproval's status)."""
    plan = plan_of(session, sub)
    for inst in installments:
        payment = inst.get("payment") or {}
        if not payment:
            continue
        debit = date.fromisoformat(str(inst["debit_date"])[:10])
        status = charge_status(inst)
        _ledger(session, sub, inst, debit, status, plan.currency, billing_day, known)
    paid_through, declined_due = coverage(sub, installments, today, billing_day)
    if paid_through != sub.paid_through:
        new_cycle = sub.paid_through is not None and paid_through is not None
        sub.paid_through = paid_through
        session.add(sub)
        if new_cycle and sub.next_plan_id is not None:
            _apply_downgrade(session, sub)
    covered = paid_through is not None and paid_through > today
    if sub.status == S.pending.value and pre_status in (None, "authorized") and covered:
        drive = drive or drive_of(session, sub.device_id)
        drive.capacity_bytes = plan.capacity_bytes  # the plan's drive, from now on
        session.add(drive)
        transition(
            session,
            sub,
            S.active.value,
            actor=ACTOR,
            cause="first installment approved by Mercado Pago",
            paid_through=paid_through,
        )
    elif sub.status in (S.past_due.value, S.blocked.value) and covered:
        assert paid_through is not None  # covered
        restore_paid(session, sub, paid_through, actor=ACTOR, cause="payment received")
    elif sub.status == S.active.value and not covered and sub.cancel_at_period_end:
        # the customer chose to stop: not a failed payment, no dunning; the
        # drive is kept for the retention period and then deleted (dunning.py)
        lapse(
            session,
            sub,
            S.cancelled.value,
            today,
            cause="cancelled by the customer; the paid period ended",
            paid_through=paid_through,
        )
    elif (
        sub.status == S.active.value
        and not covered
        and (declined_due or pre_status in NOT_CHARGING)
    ):
        why = (
            "installment declined"
            if declined_due
            else f"the paid period ended and Mercado Pago's recurring charge is {pre_status}"
        )
        lapse(session, sub, S.past_due.value, today, cause=why, paid_through=paid_through)


def _ledger(
    session: Session,
    sub: Subscription,
    inst: dict[str, Any],
    debit: date,
    status: str,
    currency: str,
    billing_day: int,
    known: dict[str, Charge] | None = None,
) -> None:
    # one installment per preapproval and debit date, whichever way it was read
    # (the installments, or the payment feed); `mp_id` is its latest payment
    key = f"installment-{sub.mp_preapproval_id}-{debit.isoformat()}"
    payment_id = str(inst["payment"]["id"])
    charge = (
        known.get(key)
        if known is not None
        else session.exec(select(Charge).where(Charge.idempotency_key == key)).first()
    )
    if charge is None:
        now, amount = utcnow(), Decimal(str(inst["transaction_amount"]))
        row: dict[str, Any] = {
            "subscription_id": sub.id,
            "kind": "installment",
            "plan_id": None,
            "amount": amount,
            "currency": currency,
            "idempotency_key": key,
            "mp_id": payment_id,
            "status": status,
            "period_start": debit,
            "period_end": next_billing_date(debit, billing_day),
            "created_at": now,
            "updated_at": now,
        }
        if not staging.add(session, CHARGES, row):
            session.add(Charge(**row))
        _installment_audit(session, sub, key, status, amount=amount)
    elif charge.status != status:
        before, charge.status, charge.updated_at = charge.status, status, utcnow()
        charge.mp_id = payment_id
        session.add(charge)
        _installment_audit(session, sub, key, status, status_before=before)


def _installment_audit(
    session: Session, sub: Subscription, key: str, status: str, **detail: Any
) -> None:
    """An installment's ledger row as Mercado Pago reported it (new or changed)."""
    audit.record(
        session,
        actor=ACTOR,
        entity="charge",
        entity_id=key,
        action=f"installment:{status}",
        cause="reported by Mercado Pago",
        subscription_id=sub.id,
        **detail,
    )


def _apply_downgrade(session: Session, sub: Subscription) -> None:
    """A scheduled downgrade takes effect with the first installment of the new cycle."""
    old, new = session.get(Plan, sub.plan_id), session.get(Plan, sub.next_plan_id)
    assert old is not None and new is not None and new.id is not None
    drive = drive_of(session, sub.device_id)
    drive.capacity_bytes = new.capacity_bytes
    sub.plan_id, sub.next_plan_id = new.id, None
    session.add_all([sub, drive])
    audit.subscription(
        session, sub.id, "downgraded", f"{old.code} -> {new.code} at the new cycle", actor=ACTOR
    )
