"""What protects a paying customer: every page read, only the current period judged,
a paused or cancelled charge unpaid at period end, a deleted subscription never
charged again, one subscription's outage isolated, a dry run that writes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlmodel import Session, select

from billing.core.db import session_scope
from billing.core.models import AuditEvent, Charge, Subscription
from billing.payments.sync import sync
from cli.devstack.mp_emulator import MercadoPagoEmulator
from tests.support.billing import (
    START,
    Clock,
    active,
    add_plan,
    control,
    declined,
    failing,
    paying,
    set_outcome,
    status,
    subscription,
    upload,
    writes,
)
from tests.support.stack import Stack


@pytest.fixture
def small_pages() -> Iterator[MercadoPagoEmulator]:
    """Mercado Pago answering two results per page of every subscription search."""
    with MercadoPagoEmulator(timeout_seconds=1, today=START, page_limit=2) as emu:
        yield emu


def test_every_page_of_installments_is_read(stack: Stack, small_pages: MercadoPagoEmulator) -> None:
    """Five months paid, two installments a page: the first page alone said "unpaid
    since January"; read whole, the customer stays active and paid through May."""
    stack.settings.billing_feed_min = 10**9  # polled one by one: the installments search
    clock, _, sub = paying(stack, small_pages)
    for report in clock.until(date(2027, 4, 5)):
        assert sub.id not in report.past_due  # type: ignore[attr-defined]
    assert status(stack, sub.id) == "active"
    assert subscription(stack, sub.id).paid_through == date(2027, 5, 5)
    assert len(clock.mp.installments(sub.mp_preapproval_id)) == 7  # type: ignore[arg-type]
    pages = [
        c
        for c in small_pages.state.calls
        if c["path"] == "/authorized_payments/search"
        and c["query"].get("preapproval_id") == sub.mp_preapproval_id
        and c["query"].get("offset") not in (None, "0")
    ]
    assert pages  # later pages were asked for


def test_an_old_rejection_is_not_a_decline_today(
    stack: Stack, mp_emulator: MercadoPagoEmulator
) -> None:
    """December was declined for good and January paid: on February 5th, before
    Mercado Pago has tried February's installment, the customer is not past due."""
    stack.settings.billing_feed_min = 10**9
    stack.settings.grace_days = 40  # still past due, not blocked, when January pays
    clock, _, sub = declined(stack, mp_emulator, date(2026, 12, 15))  # December, every retry
    set_outcome(mp_emulator, sub, "approve")
    clock.until(date(2027, 1, 5))  # January's installment paid
    assert status(stack, sub.id) == "active"
    clock.until(date(2027, 2, 4))
    clock.today = date(2027, 2, 5)  # our pass runs before Mercado Pago charges the 5th
    report = clock.run()
    assert sub.id not in report.past_due and status(stack, sub.id) == "active"
    control(mp_emulator, "/__emulator/clock", {"date": "2027-02-05"})
    stack.settings.billing_recheck_minutes = 0  # asked again the same day, after the charge
    clock.run()
    assert subscription(stack, sub.id).paid_through == date(2027, 3, 5)


def test_paused_at_mercadopago_is_unpaid_at_period_end(
    stack: Stack, mp_emulator: MercadoPagoEmulator
) -> None:
    clock, _, sub = paying(stack, mp_emulator)
    clock.mp.sdk.preapproval().update(sub.mp_preapproval_id, {"status": "paused"})
    clock.until(date(2026, 12, 4))
    assert status(stack, sub.id) == "active"  # paid through the 5th
    clock.until(date(2026, 12, 5))
    assert status(stack, sub.id) == "past_due"
    clock.until(date(2026, 12, 15))
    assert status(stack, sub.id) == "blocked"


def test_voluntary_cancellation_is_not_a_failed_payment(
    stack: Stack, mp_emulator: MercadoPagoEmulator
) -> None:
    from billing.subscriptions.changes import cancel

    clock, dev, sub = paying(stack, mp_emulator)
    with session_scope(stack.engine) as s:
        cancel(s, clock.mp, sub.id, actor="test")
    assert mp_emulator.state.preapprovals[sub.mp_preapproval_id]["status"] == "cancelled"  # type: ignore[index]
    clock.until(date(2026, 12, 4))
    assert status(stack, sub.id) == "active"  # the paid period is kept
    assert upload(stack, dev, "still-paid.jpg").startswith("226")
    reports = clock.until(date(2026, 12, 5))
    assert status(stack, sub.id) == "cancelled"
    assert sub.id not in reports[-1].past_due  # type: ignore[attr-defined]
    assert "cancelled" in upload(stack, dev, "after.jpg")  # uploads stop, no grace
    clock.until(date(2026, 12, 19))
    assert status(stack, sub.id) == "cancelled"  # kept for the retention period
    clock.until(date(2026, 12, 20))  # 15 days after the paid period
    assert status(stack, sub.id) == "deleted"
    with session_scope(stack.engine) as s:
        actions = [
            a.action
            for a in s.exec(
                select(AuditEvent).where(
                    AuditEvent.entity == "subscription", AuditEvent.entity_id == str(sub.id)
                )
            )
        ]
    assert "status:past_due" not in actions and "status:blocked" not in actions


def test_a_deleted_subscription_is_never_charged_again(
    stack: Stack, mp_emulator: MercadoPagoEmulator
) -> None:
    """The drive goes only once Mercado Pago confirms the preapproval cancelled; twelve
    months later, with a card that would now pay, nothing was charged."""
    clock, _, sub = declined(stack, mp_emulator, date(2026, 12, 19))
    pre = sub.mp_preapproval_id
    assert status(stack, sub.id) == "blocked"
    assert mp_emulator.state.preapprovals[pre]["status"] == "authorized"  # type: ignore[index]
    failing(mp_emulator, f"/preapproval/{pre}")
    clock.until(date(2026, 12, 20))
    assert status(stack, sub.id) == "blocked"  # not confirmed: not deleted
    failing(mp_emulator, f"/preapproval/{pre}", fails=False)
    clock.run()
    assert status(stack, sub.id) == "deleted"
    assert mp_emulator.state.preapprovals[pre]["status"] == "cancelled"  # type: ignore[index]
    set_outcome(mp_emulator, sub, "approve")
    paid_before = [
        p
        for p in mp_emulator.state.payments.values()
        if p.get("external_reference") == f"sub-{sub.id}"
    ]
    with session_scope(stack.engine) as s:
        ledger_before = len(s.exec(select(Charge).where(Charge.subscription_id == sub.id)).all())
    day = clock.today
    for _ in range(12):  # a pass on every billing day of the following year
        day = (day.replace(day=1) + timedelta(days=32)).replace(day=5)
        clock.today = day
        control(mp_emulator, "/__emulator/clock", {"date": day.isoformat()})
        report = clock.run()
        assert sub.id not in report.polled
    paid_after = [
        p
        for p in mp_emulator.state.payments.values()
        if p.get("external_reference") == f"sub-{sub.id}"
    ]
    assert paid_after == paid_before
    with session_scope(stack.engine) as s:
        assert (
            len(s.exec(select(Charge).where(Charge.subscription_id == sub.id)).all())
            == ledger_before
        )
    assert status(stack, sub.id) == "deleted"


def test_one_subscription_unreachable_never_stops_the_others(
    stack: Stack, mp_emulator: MercadoPagoEmulator
) -> None:
    stack.settings.billing_feed_min = 10**9
    clock, _, down = paying(stack, mp_emulator)
    fine = active(stack, clock, mp_emulator, stack.device(capacity="1GB", grant=False))
    search = f"/authorized_payments/search?preapproval_id={down.mp_preapproval_id}"
    failing(mp_emulator, search)
    set_outcome(mp_emulator, down, "reject")  # it would be past due, were it readable
    report = clock.until(date(2026, 12, 5))[-1]
    assert down.id in report.unreachable and fine.id not in report.unreachable  # type: ignore[attr-defined]
    assert status(stack, down.id) == "active"  # unknown is not unpaid
    assert subscription(stack, fine.id).paid_through == date(2027, 1, 5)
    failing(mp_emulator, search, fails=False)
    report = clock.run()
    assert down.id not in report.unreachable and status(stack, down.id) == "past_due"


def downgrade_failing(
    stack: Stack, clock: Clock, emu: MercadoPagoEmulator, sub: Subscription
) -> str:
    """`sub` downgraded to a new 500 MB plan at 5.00 while Mercado Pago fails every
    request to its preapproval: that path, to heal with `failing(..., fails=False)`."""
    from billing.subscriptions.changes import downgrade

    small = add_plan(stack, "SMALL", "500MB", "5.00")
    put = f"/preapproval/{sub.mp_preapproval_id}"
    failing(emu, put)
    with session_scope(stack.engine) as s:
        downgrade(s, clock.mp, sub.id, small, actor="test")
    return put


def test_a_failed_amount_update_is_retried_and_isolated(
    stack: Stack, mp_emulator: MercadoPagoEmulator
) -> None:
    """A downgrade Mercado Pago could not take yet stays queued, is reported, and is
    pushed by a later pass; the other subscriptions' pass goes on."""
    clock, _, sub = paying(stack, mp_emulator)
    other = active(stack, clock, mp_emulator, stack.device(capacity="1GB", grant=False))
    put = downgrade_failing(stack, clock, mp_emulator, sub)
    assert subscription(stack, sub.id).mp_amount_pending == Decimal("5.00")
    report = clock.until(date(2026, 12, 5))[-1]
    assert [r["subscription"] for r in report.retrying] == [sub.id]  # type: ignore[attr-defined]
    assert subscription(stack, other.id).paid_through == date(2027, 1, 5)
    failing(mp_emulator, put, fails=False)
    report = clock.run()
    assert report.retrying == [] and subscription(stack, sub.id).mp_amount_pending is None
    pre = mp_emulator.state.preapprovals[sub.mp_preapproval_id]  # type: ignore[index]
    assert Decimal(str(pre["auto_recurring"]["transaction_amount"])) == Decimal("5.00")


def test_dry_run_writes_nothing_at_mercadopago(
    stack: Stack, mp_emulator: MercadoPagoEmulator
) -> None:
    """A dry run on the day a drive is due for deletion, with an amount queued:
    the emulator's request log shows reads only."""
    clock, _, doomed = paying(stack, mp_emulator)
    changing = active(stack, clock, mp_emulator, stack.device(capacity="1GB", grant=False))
    put = downgrade_failing(stack, clock, mp_emulator, changing)
    set_outcome(mp_emulator, doomed, "reject")
    clock.until(date(2026, 12, 19))
    failing(mp_emulator, put, fails=False)
    clock.today = date(2026, 12, 20)
    control(mp_emulator, "/__emulator/clock", {"date": "2026-12-20"})
    mark = len(mp_emulator.state.calls)
    dry = clock.run(dry_run=True)
    assert doomed.id in [d["subscription"] for d in dry.deleted]
    assert writes(mp_emulator, mark) == [] and len(mp_emulator.state.calls) > mark
    assert status(stack, doomed.id) == "blocked"
    assert subscription(stack, changing.id).mp_amount_pending == Decimal("5.00")
    clock.run()  # the real pass writes: the cancellation, then the amount
    assert {c["path"] for c in writes(mp_emulator, mark)} == {
        f"/preapproval/{doomed.mp_preapproval_id}",
        put,
    }


def test_refunds_and_chargebacks_mark_the_charge(
    stack: Stack, mp_emulator: MercadoPagoEmulator
) -> None:
    clock = Clock(stack, mp_emulator)
    sub = active(stack, clock, mp_emulator, stack.device(capacity="1GB", grant=False))
    clock.until(date(2026, 12, 5))
    first, second = clock.mp.installments(sub.mp_preapproval_id)[:2]  # type: ignore[arg-type]
    control(mp_emulator, f"/__emulator/payments/{first['payment']['id']}", {"status": "refunded"})
    control(
        mp_emulator,
        f"/__emulator/payments/{second['payment']['id']}",
        {"status": "charged_back"},
    )
    with Session(stack.engine) as s:
        row = s.get(Subscription, sub.id)
        assert row is not None
        assert sync(s, clock.mp, row, clock.today, 5)
        s.commit()
        charges = s.exec(
            select(Charge).where(Charge.subscription_id == sub.id).order_by(Charge.period_start)  # type: ignore[arg-type]
        ).all()
        assert [(c.amount, c.status) for c in charges] == [
            (Decimal("4.33"), "refunded"),
            (Decimal("10.00"), "charged_back"),
        ]
