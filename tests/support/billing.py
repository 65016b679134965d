"""Driving billing through time: the emulator's clock, outcomes, and a subscribed device."""

from __future__ import annotations

import ftplib
import io
import json
import urllib.request
from datetime import date, timedelta

from sqlmodel import select

from billing.core.db import session_scope
from billing.core.models import Subscription
from billing.cycle import billing_pass
from billing.payments.mercadopago import MercadoPago
from billing.payments.sync import day_start
from billing.subscriptions.lifecycle import create_paid
from cli.devstack.mp_emulator import MercadoPagoEmulator
from tests.support.stack import DeviceLogin, Stack

START = date(2026, 11, 22)  # the billing tests' first day


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
