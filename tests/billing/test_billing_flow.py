"""Paid subscriptions through the real SDK and the Mercado Pago emulator, walked in time."""

from __future__ import annotations

import io
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlmodel import select

from billing.core.db import session_scope
from billing.core.models import AuditEvent, Charge, Subscription
from billing.payments.mercadopago import MercadoPago
from cli.devstack.mp_emulator import MercadoPagoEmulator
from gateway.purge import DrivePurge
from tests.support.billing import (
    START,
    TERMS,
    Clock,
    add_plan,
    authorize,
    control,
    declined,
    failing,
    pay_at_link,
    payer_email,
    paying,
    set_outcome,
    status,
    subscribe,
    upload,
)
from tests.support.stack import Stack


def test_paid_subscription_lifecycle_to_deletion(
    stack: Stack, mp_emulator: MercadoPagoEmulator
) -> None:
    clock = Clock(stack, mp_emulator)
    dev = stack.device(capacity="1GB", grant=False)
    sub = subscribe(stack, clock, dev)
    assert sub.status == "pending" and sub.checkout_url
    assert "preapproval_plan_id=" in sub.checkout_url  # the plan's own checkout
    assert sub.mp_preapproval_id is None and payer_email(stack, sub) in (sub.pending_reason or "")
    assert sub.first_charge == Decimal("4.33")  # 10.00 x 13/30: 13 days to the 5th
    assert upload(stack, dev, "early.jpg").startswith("532")
    authorize(stack, mp_emulator, sub)
    report = clock.run()
    assert sub.id in report.activated and status(stack, sub.id) == "active"
    assert upload(stack, dev, "a.jpg").startswith("226")
    assert upload(stack, dev, "b.jpg").startswith("226")
    again = clock.run()  # a second pass the same day changes nothing
    assert sub.id not in again.activated and status(stack, sub.id) == "active"

    set_outcome(mp_emulator, sub, "reject")
    clock.until(date(2026, 12, 5))
    assert status(stack, sub.id) == "past_due"
    assert upload(stack, dev, "grace.jpg").startswith("226")  # uploads continue
    clock.until(date(2026, 12, 14))
    assert status(stack, sub.id) == "past_due"
    dry = clock.run(dry_run=True)
    assert sub.id not in dry.blocked and status(stack, sub.id) == "past_due"
    clock.until(date(2026, 12, 15))  # 10 days of grace
    assert status(stack, sub.id) == "blocked"
    assert "blocked for non-payment" in upload(stack, dev, "late.jpg")
    with stack.ftp(dev) as ftp:  # recordings stay readable
        assert sorted(ftp.nlst()) == ["a.jpg", "b.jpg", "grace.jpg"]
    clock.today = date(2026, 12, 19)
    control(mp_emulator, "/__emulator/clock", {"date": "2026-12-19"})
    dry = clock.run(dry_run=True)
    assert sub.id not in [d["subscription"] for d in dry.deleted]
    clock.until(date(2026, 12, 20))  # 5 more days: the drive goes
    assert status(stack, sub.id) == "deleted"
    assert stack.s3_keys(dev) == {} and not any(not e.is_dir for e in stack.entries(dev).values())
    with session_scope(stack.engine) as s:
        deletion = s.exec(
            select(AuditEvent).where(AuditEvent.entity == "drive", AuditEvent.action == "deleted")
        ).all()
        mine = [d for d in deletion if f'"prefix": "{dev.prefix}"' in (d.detail or "")]
        assert len(mine) == 1 and '"objects": 3' in mine[0].detail  # type: ignore[operator]
        charges = s.exec(select(Charge).where(Charge.subscription_id == sub.id)).all()
        assert [(c.amount, c.status) for c in charges] == [
            (Decimal("4.33"), "approved"),
            (Decimal("10.00"), "rejected"),
        ]
    assert sub.id not in [d["subscription"] for d in clock.run().deleted]  # not twice


def test_payment_on_retry_reactivates(stack: Stack, mp_emulator: MercadoPagoEmulator) -> None:
    clock, _, sub = declined(stack, mp_emulator, date(2026, 12, 5))
    assert status(stack, sub.id) == "past_due"
    set_outcome(mp_emulator, sub, "approve")
    clock.until(date(2026, 12, 7))  # Mercado Pago's retry on day 2 goes through
    assert status(stack, sub.id) == "active"
    with session_scope(stack.engine) as s:
        assert s.get(Subscription, sub.id).paid_through == date(2027, 1, 5)  # type: ignore[union-attr]


def test_billing_day_is_read_from_the_payment_feed(
    stack: Stack, mp_emulator: MercadoPagoEmulator
) -> None:
    """Many due at once: Mercado Pago's payment search settles them without a call
    per subscription; what it leaves open (or all of it, when the search fails)
    is polled one by one, with the same outcome and the same ledger."""
    clock = Clock(stack, mp_emulator)
    stack.settings.billing_feed_min = 1
    subs = [subscribe(stack, clock, stack.device(capacity="1GB", grant=False)) for _ in range(8)]

    def installment_calls(since: int) -> int:
        return sum(
            1
            for c in mp_emulator.state.calls[since:]
            if c["path"] == "/authorized_payments/search"
            and c["query"].get("preapproval_id") in pres
        )

    for sub in subs:
        authorize(stack, mp_emulator, sub)
    report = clock.run()  # links each to its preapproval and activates it
    assert {s.id for s in subs} <= set(report.activated)
    with session_scope(stack.engine) as s:
        subs = [s.get(Subscription, sub.id) for sub in subs]  # type: ignore[misc]
    pres = {sub.mp_preapproval_id for sub in subs}
    assert "subscriptions" in report.feed
    late = subs[:3]
    for sub in late:
        set_outcome(mp_emulator, sub, "reject")
    mark = len(mp_emulator.state.calls)
    clock.until(date(2026, 12, 5))
    assert [status(stack, s.id) for s in subs] == ["past_due"] * 3 + ["active"] * 5
    assert installment_calls(mark) == 0  # paid and declined alike: read from the feed
    with session_scope(stack.engine) as s:
        for sub in subs:
            assert s.get(Subscription, sub.id).paid_through == (  # type: ignore[union-attr]
                date(2026, 12, 5) if sub in late else date(2027, 1, 5)
            )
            charges = s.exec(
                select(Charge).where(Charge.subscription_id == sub.id).order_by(Charge.period_start)
            ).all()
            assert [(c.amount, c.status) for c in charges] == [
                (Decimal("4.33"), "approved"),
                (Decimal("10.00"), "rejected" if sub in late else "approved"),
            ]
    # the search fails: every one of them is polled instead, and still settles
    failing(mp_emulator, "/v1/payments/search")
    for sub in late:
        set_outcome(mp_emulator, sub, "approve")
    mark = len(mp_emulator.state.calls)
    reports = clock.until(date(2026, 12, 7))  # Mercado Pago's second try goes through
    assert "error" in reports[-1].feed  # type: ignore[attr-defined]
    assert [status(stack, s.id) for s in subs] == ["active"] * 8
    assert installment_calls(mark) >= 3
    with session_scope(stack.engine) as s:
        for sub in late:
            charges = s.exec(select(Charge).where(Charge.subscription_id == sub.id)).all()
            assert sorted((c.amount, c.status) for c in charges) == [
                (Decimal("4.33"), "approved"),
                (Decimal("10.00"), "approved"),
            ]


def test_unreachable_mercadopago_is_never_non_payment(
    stack: Stack, mp_emulator: MercadoPagoEmulator
) -> None:
    clock, dev, sub = declined(stack, mp_emulator, date(2026, 12, 5))
    assert status(stack, sub.id) == "past_due"
    mp_emulator.stop()  # Mercado Pago is gone for a month
    clock.mp = MercadoPago("TEST-token", mp_emulator.url, timeout=1)
    clock.today = date(2027, 1, 10)
    report = clock.run()
    assert sub.id in report.unreachable
    assert sub.id not in report.blocked and sub.id not in [
        d["subscription"] for d in report.deleted
    ]
    assert status(stack, sub.id) == "past_due"
    assert upload(stack, dev, "still.jpg").startswith("226")


def test_email_mismatch_leaves_it_pending_with_the_reason(
    stack: Stack, mp_emulator: MercadoPagoEmulator
) -> None:
    """The payer subscribed at the plan's checkout with another Mercado Pago account:
    nothing links, the subscription stays pending and says which email to use;
    subscribing with the right one links and activates it. Asking again never
    makes a second subscription, nor any preapproval of ours."""
    clock = Clock(stack, mp_emulator)
    dev = stack.device(capacity="1GB", grant=False)
    sub = subscribe(stack, clock, dev)
    email = payer_email(stack, sub)
    authorize(stack, mp_emulator, sub, email=f"other-{email}")
    clock.run()
    assert status(stack, sub.id) == "pending"
    again = subscribe(stack, clock, dev)  # asked again: the same one
    assert again.id == sub.id and again.mp_preapproval_id is None
    assert email in (again.pending_reason or "") and "Mercado Pago account" in again.pending_reason  # type: ignore[operator]
    authorize(stack, mp_emulator, sub)
    report = clock.run()
    assert sub.id in report.activated
    assert not [
        c for c in mp_emulator.state.calls if c["path"] == "/preapproval" and c["method"] == "POST"
    ]


def test_pending_expires_after_its_days(stack: Stack, mp_emulator: MercadoPagoEmulator) -> None:
    clock = Clock(stack, mp_emulator)
    dev = stack.device(capacity="1GB", grant=False)
    sub = subscribe(stack, clock, dev)
    clock.until(START + timedelta(days=6))
    assert status(stack, sub.id) == "pending"
    clock.until(START + timedelta(days=7))  # pending_expiry_days
    assert status(stack, sub.id) == "cancelled"
    with session_scope(stack.engine) as s:
        assert "expired" in (s.get(Subscription, sub.id).pending_reason or "")  # type: ignore[union-attr]
    fresh = subscribe(stack, clock, dev)  # a new request gets a new subscription
    assert fresh.id != sub.id and fresh.status == "pending"


def test_upgrade_charges_once_even_after_a_crash(
    stack: Stack, mp_emulator: MercadoPagoEmulator
) -> None:
    """The ledger row was committed and Mercado Pago made the link, then the process
    died before the ledger knew the link: the re-run gets the same link (the key is
    the charge's id), the payer pays once, and the plan changes only then."""
    from billing.catalog import get_plan
    from billing.payments import checkout
    from billing.subscriptions.changes import upgrade

    clock, dev, sub = paying(stack, mp_emulator)  # plan price 10.00, paid through Dec 5
    big = add_plan(stack, "BIG", "5GB", "40.00")
    with session_scope(stack.engine) as s:
        row = s.get(Subscription, sub.id)
        assert row is not None
        charge = checkout.new_charge(
            s,
            row,
            kind="upgrade",
            amount=Decimal("13.00"),
            currency="MXN",
            period_start=START,
            period_end=date(2026, 12, 5),
            expires_at=checkout.expiry(START, 3),
            plan_id=get_plan(s, big).id,
            actor="test",
            cause="the first attempt",
        )
        first = clock.mp.create_preference(
            key=charge.idempotency_key,
            title="cam2drive upgrade",
            amount=Decimal("13.00"),
            currency="MXN",
            external_reference=charge.idempotency_key,
            payer_email=payer_email(stack, sub),
            expires_at=checkout.expiry(START, 3),
        )  # ... and the process died here
    assert charge.idempotency_key == f"charge-{charge.id}"  # never a date
    links = len(mp_emulator.state.preferences)
    with session_scope(stack.engine) as s:
        again = upgrade(s, clock.mp, sub.id, big, START, TERMS)
        assert (again.id, again.mp_preference_id, again.status) == (
            charge.id,
            first["id"],
            "pending",
        )
        assert again.amount == Decimal("13.00")  # (40 - 10) x 13/30, to Dec 5
        url = again.checkout_url
    assert len(mp_emulator.state.preferences) == links  # the same link, not another
    keys = {c["key"] for c in mp_emulator.state.calls if c["path"] == "/checkout/preferences"}
    assert keys == {f"charge-{charge.id}"}
    assert not any(c["path"] == "/v1/payments" for c in mp_emulator.state.calls)
    assert stack.drive(dev).capacity_bytes == 1_000_000_000  # nothing changes before payment
    with session_scope(stack.engine) as s:  # asked again: the same charge and link
        assert upgrade(s, clock.mp, sub.id, big, START, TERMS).id == charge.id
    pay_at_link(mp_emulator, url, payer_email(stack, sub))
    assert sub.id in clock.run().polled  # the pass finds the payment by our reference
    assert stack.drive(dev).capacity_bytes == 5_000_000_000
    pre = mp_emulator.state.preapprovals[sub.mp_preapproval_id]  # type: ignore[index]
    assert pre["auto_recurring"]["transaction_amount"] == 40.0  # later cycles: new price
    clock.run()
    with session_scope(stack.engine) as s:
        ups = s.exec(
            select(Charge).where(Charge.subscription_id == sub.id, Charge.kind == "upgrade")
        ).all()
        assert [(c.id, c.status, c.amount) for c in ups] == [
            (charge.id, "approved", Decimal("13.00"))
        ]


def test_downgrade_waits_for_the_cycle_and_must_fit(
    stack: Stack, mp_emulator: MercadoPagoEmulator
) -> None:
    from billing.core.errors import InvalidInput
    from billing.subscriptions.changes import downgrade

    clock, dev, sub = paying(stack, mp_emulator)
    tiny = add_plan(stack, "TINY", "10B", "5.00")
    small = add_plan(stack, "SMALL", "500MB", "5.00")
    assert upload(stack, dev, "rec.jpg").startswith("226")
    with session_scope(stack.engine) as s, pytest.raises(InvalidInput, match="delete recordings"):
        downgrade(s, clock.mp, sub.id, tiny, actor="test")
    with session_scope(stack.engine) as s:
        downgrade(s, clock.mp, sub.id, small, actor="test")
    assert stack.drive(dev).capacity_bytes == 1_000_000_000  # not yet
    clock.until(date(2026, 12, 5))  # the new cycle's installment
    assert stack.drive(dev).capacity_bytes == 500_000_000
    with session_scope(stack.engine) as s:
        charges = s.exec(select(Charge).where(Charge.subscription_id == sub.id)).all()
        assert charges[-1].amount == Decimal("5.00")


class FlakyStore:
    """The real S3 store, failing once after its first page of deletions."""

    def __init__(self, store) -> None:  # type: ignore[no-untyped-def]
        self.store, self.failed = store, False

    def delete_prefix(self, prefix: str) -> tuple[int, int]:
        if self.failed:
            return self.store.delete_prefix(prefix)
        self.failed = True
        page = [key for key, _ in zip(self.store.list_keys(prefix), range(1000), strict=False)]
        self.store.delete([k for k, _ in page])
        from billing.core.errors import StorageUnavailable

        raise StorageUnavailable("storage went away in the middle of the deletion")


def test_deleting_thousands_of_objects_resumes_after_an_interruption(
    stack: Stack, mp_emulator: MercadoPagoEmulator
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from billing.entitlement import upload_entitlement

    clock, dev, sub = paying(stack, mp_emulator)
    ent = upload_entitlement(stack.engine, dev.device_id)

    def store_one(i: int) -> None:
        up = stack.pipeline.start(ent, f"2026-12-01/001/jpg/{i:05d}[M][0@0][0].jpg")
        up.write(b"j" * 100)
        up.commit()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(store_one, range(1500)))
    assert len(stack.s3_keys(dev)) == 1500
    set_outcome(mp_emulator, sub, "reject")
    clock.until(date(2026, 12, 19))
    assert status(stack, sub.id) == "blocked"
    real, purger = stack.store, stack.purger
    stack.purger = DrivePurge(FlakyStore(real))  # type: ignore[arg-type]
    try:
        clock.until(date(2026, 12, 20))
        assert status(stack, sub.id) == "blocked"  # interrupted: not deleted yet
        remaining = len(dict(real.list_keys(dev.prefix)))
        assert remaining == 500
        report = clock.run()  # the next pass finishes
    finally:
        stack.purger = purger
    assert [d for d in report.deleted if d["subscription"] == sub.id] == [
        {"subscription": sub.id, "objects": 500, "bytes": 50_000}
    ]
    assert status(stack, sub.id) == "deleted"
    assert stack.s3_keys(dev) == {}
    assert not any(not e.is_dir for e in stack.entries(dev).values())


@pytest.mark.parametrize("reading", ["polling", "feed"])
def test_a_year_of_cycles(stack: Stack, mp_emulator: MercadoPagoEmulator, reading: str) -> None:
    """Failures, recoveries (a retry, a pay-now link), an upgrade on the 5th and one
    on the 20th, a downgrade that does not fit, a cancellation, the deletion and
    twelve quiet months, walked one day (one billing pass) at a time; the same story
    whether Mercado Pago is polled per subscription or read from its payment feed."""
    stack.settings.billing_feed_min = 1 if reading == "feed" else 10**9
    from billing.core.errors import InvalidInput
    from billing.subscriptions.changes import cancel, downgrade, upgrade
    from billing.subscriptions.paynow import pay_link

    clock, dev, sub = paying(stack, mp_emulator)  # 10.00 MXN
    mid = add_plan(stack, "Y-MID", "1.5GB", "15.00")
    big = add_plan(stack, "Y-BIG", "2GB", "20.00")
    tiny = add_plan(stack, "Y-TINY", "100B", "5.00")
    clock.until(date(2027, 1, 4))
    assert status(stack, sub.id) == "active"
    set_outcome(mp_emulator, sub, "reject")
    clock.until(date(2027, 1, 5))
    assert status(stack, sub.id) == "past_due"
    set_outcome(mp_emulator, sub, "approve")
    clock.until(date(2027, 1, 7))  # Mercado Pago's second try goes through
    assert status(stack, sub.id) == "active"
    email = payer_email(stack, sub)
    clock.until(date(2027, 2, 5))  # February's installment is paid: through Mar 5
    with session_scope(stack.engine) as s:
        charge = upgrade(s, clock.mp, sub.id, mid, clock.today, TERMS)
    assert charge.amount == Decimal("5.00")  # the billing day: the whole difference, once
    assert stack.drive(dev).capacity_bytes == 1_000_000_000  # not before it is paid
    pay_at_link(mp_emulator, charge.checkout_url, email)
    clock.run()
    assert stack.drive(dev).capacity_bytes == 1_500_000_000
    clock.until(date(2027, 2, 20))
    with session_scope(stack.engine) as s:
        charge = upgrade(s, clock.mp, sub.id, big, clock.today, TERMS)
    assert charge.amount == Decimal("2.17")  # (20 - 15) x 13/30, to Mar 5
    pay_at_link(mp_emulator, charge.checkout_url, email)
    clock.run()
    assert stack.drive(dev).capacity_bytes == 2_000_000_000
    with stack.ftp(dev) as ftp:  # recordings that a 100-byte plan cannot hold
        assert ftp.storbinary("STOR march.dav", io.BytesIO(b"v" * 1000)).startswith("226")
    clock.until(date(2027, 3, 10))
    with session_scope(stack.engine) as s, pytest.raises(InvalidInput, match="do not fit|delete"):
        downgrade(s, clock.mp, sub.id, tiny, actor="test")
    set_outcome(mp_emulator, sub, "reject")
    clock.until(date(2027, 4, 5))
    assert status(stack, sub.id) == "past_due"
    clock.until(date(2027, 4, 8))
    with session_scope(stack.engine) as s:
        link = pay_link(s, clock.mp, sub.id, clock.today, TERMS)
    assert link["amount"] == "20.00"
    pay_at_link(mp_emulator, str(link["pay_url"]), email)
    clock.run()  # paid now: active at once, through May 5
    assert status(stack, sub.id) == "active"
    clock.until(date(2027, 4, 15))  # Mercado Pago's retries of April still fail
    assert status(stack, sub.id) == "active"
    set_outcome(mp_emulator, sub, "approve")
    clock.until(date(2027, 9, 1))
    assert status(stack, sub.id) == "active"
    with session_scope(stack.engine) as s:
        cancel(s, clock.mp, sub.id, actor="test")
    clock.until(date(2027, 9, 4))  # paid through Sep 5: kept, no refund
    assert status(stack, sub.id) == "active" and upload(stack, dev, "sep.jpg").startswith("226")
    clock.until(date(2027, 9, 5))
    assert status(stack, sub.id) == "cancelled"
    clock.until(date(2027, 9, 20))
    assert status(stack, sub.id) == "deleted"
    assert stack.s3_keys(dev) == {}
    with session_scope(stack.engine) as s:
        charges = s.exec(select(Charge).where(Charge.subscription_id == sub.id)).all()
        approved = [c for c in charges if c.status == "approved"]
        # the prorated first month, 8 installments (Dec..Mar, May..Aug), two upgrades
        # and April paid now
        assert len(approved) == 12
        assert sorted(c.kind for c in approved if c.kind != "installment") == [
            "paynow",
            "upgrade",
            "upgrade",
        ]
        assert sum(c.amount for c in approved) == (
            Decimal("4.33")
            + Decimal("10.00") * 3
            + Decimal("5.00")
            + Decimal("2.17")
            + Decimal("20.00") * 6
        )
        # in the order they happened: without ORDER BY, PostgreSQL may return any
        trail = s.exec(
            select(AuditEvent)
            .where(AuditEvent.entity == "subscription", AuditEvent.entity_id == str(sub.id))
            .order_by(AuditEvent.id)
        ).all()  # type: ignore[arg-type]
        actions = [a.action for a in trail]
        assert actions.count("status:past_due") == 2 and actions.count("upgraded") == 2
        assert "status:cancelled" in actions
        assert actions[-1] == "status:deleted"
    # twelve quiet months after the deletion: Mercado Pago charges nothing more
    payments = len(mp_emulator.state.payments)
    for month in range(12):
        day = date(2027 + (9 + month) // 12, (9 + month) % 12 + 1, 5)
        clock.today = day
        control(mp_emulator, "/__emulator/clock", {"date": day.isoformat()})
        clock.run()
    assert len(mp_emulator.state.payments) == payments
    assert status(stack, sub.id) == "deleted"
    pre = mp_emulator.state.preapprovals[sub.mp_preapproval_id]  # type: ignore[index]
    assert pre["status"] == "cancelled"


def test_upgrade_waits_for_its_payment_and_only_while_active(
    stack: Stack, mp_emulator: MercadoPagoEmulator
) -> None:
    from billing.core.errors import InvalidInput
    from billing.subscriptions.changes import cancel, upgrade

    clock, dev, sub = paying(stack, mp_emulator)
    big = add_plan(stack, "P-BIG", "3GB", "30.00")
    with session_scope(stack.engine) as s:
        charge = upgrade(s, clock.mp, sub.id, big, clock.today, TERMS)
    assert charge.status == "pending" and charge.checkout_url
    pay_at_link(mp_emulator, charge.checkout_url, payer_email(stack, sub), "reject")
    clock.run()
    assert stack.drive(dev).capacity_bytes == 1_000_000_000  # declined: nothing changes
    pay_at_link(mp_emulator, charge.checkout_url, payer_email(stack, sub))  # another card
    clock.run()  # the billing pass finds the approved payment and applies the upgrade
    assert stack.drive(dev).capacity_bytes == 3_000_000_000
    with session_scope(stack.engine) as s:
        assert s.get(Charge, charge.id).status == "approved"  # type: ignore[union-attr]
    huge = add_plan(stack, "P-HUGE", "9GB", "90.00")
    with session_scope(stack.engine) as s:
        cancel(s, clock.mp, sub.id, actor="test")
    with session_scope(stack.engine) as s, pytest.raises(InvalidInput, match="cancelling"):
        upgrade(s, clock.mp, sub.id, huge, clock.today, TERMS)
