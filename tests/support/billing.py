"""Driving billing through time: the emulator's clock, outcomes, and a subscribed device."""

from __future__ import annotations

import ftplib
import io
import json
import urllib.request
from datetime import date, timedelta
from urllib.parse import parse_qs, urlparse

from sqlmodel import select

from billing.core.db import session_scope
from billing.core.models import Subscription
from billing.cycle import billing_pass
from billing.payments.checkout import LinkTerms
from billing.payments.mercadopago import MercadoPago
from billing.payments.sync import day_start
from billing.subscriptions.lifecycle import create_paid
from cli.devstack.mp_emulator import MercadoPagoEmulator
from tests.support.stack import DeviceLogin, Stack

START = date(2026, 11, 22)  # the billing tests' first day
TERMS = LinkTerms(actor="test", billing_day=5)  # a payment link's, without the dunning ladder


def control(emu: MercadoPagoEmulator, path: str, body: dict) -> None:  # type: ignore[type-arg]
    req = urllib.request.Request(emu.url + path, data=json.dumps(body).encode(), method="POST")
    urllib.request.urlopen(req).read()


class Clock:
    """Moves the emulator and runs a billing pass each day, as the scheduler would."""

    def __init__(self, stack: Stack, emu: MercadoPagoEmulator) -> None:
        self.stack, self.emu, self.today = stack, emu, START
        self.mp = MercadoPago("TEST-token", emu.url, timeout=2)

    def run(self, dry_run: bool = False):  # type: ignore[no-untyped-def]
        # the pass judges "polled recently" by this clock's noon, not the wall clock
        return billing_pass(
            self.stack.engine,
            self.mp,
            self.stack.purger,
            self.stack.settings,
            self.today,
            dry_run=dry_run,
            now=day_start(self.today) + timedelta(hours=12),
        )

    def until(self, day: date) -> list[object]:
        reports = []
        while self.today < day:
            self.today += timedelta(days=1)
            control(self.emu, "/__emulator/clock", {"date": self.today.isoformat()})
            reports.append(self.run())
        return reports


def set_outcome(emu: MercadoPagoEmulator, sub: Subscription, outcome: str) -> None:
    """How Mercado Pago answers this subscription's installments from now on."""
    control(
        emu, "/__emulator/behaviour", {"external_reference": f"sub-{sub.id}", "outcome": outcome}
    )


def failing(emu: MercadoPagoEmulator, path: str, fails: bool = True) -> None:
    """Mercado Pago answers every request to `path` with a server error while `fails`."""
    control(
        emu, "/__emulator/behaviour", {"failing_path": path, "outcome": "error" if fails else ""}
    )


def subscribe(stack: Stack, clock: Clock, dev: DeviceLogin) -> Subscription:
    with session_scope(stack.engine) as s:
        return create_paid(
            s,
            clock.mp,
            device_ref=dev.device_id,
            plan_code=plan_of(stack, dev),
            on=clock.today,
            billing_day=5,
            actor="test",
        )


def plan_of(stack: Stack, dev: DeviceLogin) -> str:
    from billing.core.models import Plan

    with session_scope(stack.engine) as s:
        return s.exec(select(Plan).order_by(Plan.id.desc())).first().code  # type: ignore[union-attr]


def status(stack: Stack, sub_id: int) -> str:
    with session_scope(stack.engine) as s:
        return s.get(Subscription, sub_id).status  # type: ignore[union-attr]


def upload(stack: Stack, dev: DeviceLogin, name: str) -> str:
    try:
        with stack.ftp(dev) as ftp:
            return ftp.storbinary(f"STOR {name}", io.BytesIO(b"recording-" + name.encode()))
    except ftplib.error_perm as exc:
        return str(exc)


def payer_email(stack: Stack, sub: Subscription) -> str:
    from billing.core.models import Customer, Device

    with session_scope(stack.engine) as s:
        device = s.get(Device, sub.device_id)
        customer = s.get(Customer, device.customer_id)  # type: ignore[union-attr]
        return customer.email  # type: ignore[union-attr]


def authorize(
    stack: Stack, emu: MercadoPagoEmulator, sub: Subscription, email: str | None = None
) -> None:
    """The payer subscribes at the plan's checkout URL with their Mercado Pago account
    (the customer's email unless `email` says otherwise)."""
    assert sub.checkout_url
    subscribe_at(emu, sub, sub.checkout_url, email or payer_email(stack, sub))


def subscribe_at(emu: MercadoPagoEmulator, sub: Subscription, url: str, email: str) -> None:
    """The payer subscribes at a plan's checkout `url` with the Mercado Pago account `email`."""
    plan_id = parse_qs(urlparse(url).query)["preapproval_plan_id"][0]
    control(
        emu,
        "/__emulator/subscribe",
        {
            "preapproval_plan_id": plan_id,
            "payer_email": email,
            "external_reference": f"sub-{sub.id}",  # set_outcome's handle
        },
    )


def active(stack: Stack, clock: Clock, emu: MercadoPagoEmulator, dev: DeviceLogin) -> Subscription:
    """A paid subscription whose payer subscribed and paid the first installment."""
    sub = subscribe(stack, clock, dev)
    authorize(stack, emu, sub)
    clock.run()
    with session_scope(stack.engine) as s:
        linked = s.get(Subscription, sub.id)
        assert linked is not None and linked.status == "active"
        return linked


def paying(stack: Stack, emu: MercadoPagoEmulator) -> tuple[Clock, DeviceLogin, Subscription]:
    """A clock on `emu`, and a 1 GB device (10.00 MXN a month) whose paid subscription
    is active, paid through December 5th."""
    clock = Clock(stack, emu)
    dev = stack.device(capacity="1GB", grant=False)
    return clock, dev, active(stack, clock, emu, dev)


def declined(
    stack: Stack, emu: MercadoPagoEmulator, day: date
) -> tuple[Clock, DeviceLogin, Subscription]:
    """A paying customer (as `paying`) whose card Mercado Pago declines from December's
    installment on, walked one billing pass a day to `day`."""
    clock, dev, sub = paying(stack, emu)
    set_outcome(emu, sub, "reject")
    clock.until(day)
    return clock, dev, sub


def subscription(stack: Stack, sub_id: int) -> Subscription:
    """The subscription's row as the database has it now."""
    with session_scope(stack.engine) as s:
        found = s.get(Subscription, sub_id)
        assert found is not None
        return found


def writes(emu: MercadoPagoEmulator, since: int = 0) -> list[dict]:  # type: ignore[type-arg]
    """Every request since `since` that could change something at Mercado Pago."""
    return [
        c
        for c in emu.state.calls[since:]
        if c["method"] != "GET" and not c["path"].startswith("/__emulator")
    ]


def add_plan(stack: Stack, code: str, capacity: str, price: str, currency: str = "MXN") -> str:
    """A plan with a code no other test uses (the databases are shared): its code."""
    import os

    from billing import catalog

    code = f"{code}-{os.urandom(3).hex().upper()}"
    with session_scope(stack.engine) as s:
        terms = catalog.PlanTerms(code, capacity, price, currency, on_full="reject")
        catalog.add_plan(s, terms, actor="test")
    return code


def pay_at_link(
    emu: MercadoPagoEmulator, checkout_url: str | None, email: str, outcome: str = "approve"
) -> None:
    """The payer pays a Checkout Pro link (a pay-now or upgrade charge's) at Mercado Pago."""
    assert checkout_url
    pref_id = parse_qs(urlparse(checkout_url).query)["pref_id"][0]
    control(
        emu, f"/__emulator/preferences/{pref_id}/pay", {"payer_email": email, "outcome": outcome}
    )
