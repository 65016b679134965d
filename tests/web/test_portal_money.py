"""Mis suscripciones and Ver pedidos in chromium: subscribe through the emulator's
Mercado Pago checkout, then see the order and download its invoice's XML."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlmodel import select

from billing.core.db import session_scope
from billing.core.models import Charge, Invoice, Subscription
from billing.dunning import ladder
from billing.invoicing.invoices import issue_pending
from cli.devstack.mp_emulator import MercadoPagoEmulator
from tests.support.billing import Clock, active, authorize, plan_of
from tests.support.cfdi import give_fiscal
from tests.support.portal import Account, chromium, customer_of, person, sign_in
from tests.support.stack import Stack
from tests.support.web import WebServer
from web.i18n import Formatter


@pytest.fixture
def clock(istack: Stack, mp_emulator: MercadoPagoEmulator) -> Clock:
    return Clock(istack, mp_emulator)


@pytest.fixture
def portal(istack: Stack, clock: Clock) -> Iterator[WebServer]:
    """The portal over `istack`, its Mercado Pago the emulator on `clock`."""
    parts = SimpleNamespace(
        settings=istack.settings, engine=istack.engine, store=istack.store, mercadopago=clock.mp
    )
    with WebServer(parts) as web:
        yield web


@contextmanager
def subscriptions_page(web: WebServer, who: Account, locale: str = "es-MX") -> Iterator[Any]:
    """A browser page signed in as `who`, on Mis suscripciones."""
    with chromium() as browser:
        page = person(browser, locale)
        sign_in(page, web.url, who)
        page.goto(f"{web.url}/portal/subscriptions")
        yield page


def test_subscribe_at_the_checkout_then_download_the_invoice(
    istack: Stack, mp_emulator: MercadoPagoEmulator, clock: Clock, portal: WebServer
) -> None:
    dev = istack.device(capacity="1GB", grant=False)
    who = customer_of(istack, dev)
    code = plan_of(istack, dev)
    with subscriptions_page(portal, who) as page:
        assert "Hoy paga" in page.content()  # the prorated quote, before paying
        page.check(f"input[name=plan][value='{code}']")
        # off to Mercado Pago's checkout (the emulator's init_point names a host
        # that does not resolve here: the request is what matters)
        with page.expect_request(lambda r: "preapproval_plan_id" in r.url) as went:
            page.click("form.plans button[type=submit]")
        with session_scope(istack.engine) as s:
            sub = s.exec(select(Subscription).where(Subscription.device_id == dev.device_id)).one()
            assert sub.status == "pending" and sub.checkout_url == went.value.url
        # the payer subscribes at the checkout; the billing pass links and charges
        authorize(istack, mp_emulator, sub)
        clock.run()
        give_fiscal(istack, dev.customer_id)
        issue_pending(istack.invoicing())
        with session_scope(istack.engine) as s:
            inv = s.exec(select(Invoice).where(Invoice.customer_id == dev.customer_id)).one()
            assert inv.status == "issued" and inv.uuid
            invoice_id, uuid = inv.id, inv.uuid
        page.goto(f"{portal.url}/portal/subscriptions")
        assert "activa" in page.content()
        page.goto(f"{portal.url}/portal/orders")
        assert page.locator("tbody tr").count() == 1
        with page.expect_download() as got:
            page.click(f"a[href='/portal/orders/{invoice_id}.xml']")
        xml = Path(got.value.path()).read_bytes()
        assert xml.startswith(b"<?xml") and uuid.encode() in xml.upper()
        # another customer asking for it by URL gets nothing
        other = customer_of(istack, istack.device())
        stranger = person(page.context.browser)
        sign_in(stranger, portal.url, other)
        assert stranger.request.get(f"{portal.url}/portal/orders/{invoice_id}.xml").status == 404


def active_customer(
    istack: Stack, mp_emulator: MercadoPagoEmulator, clock: Clock
) -> tuple[Account, Subscription]:
    """A customer whose device's paid subscription is active (subscribed at the checkout)."""
    dev = istack.device(capacity="1GB", grant=False)
    who = customer_of(istack, dev)
    sub = active(istack, clock, mp_emulator, dev)
    return who, sub


def test_cancel_states_the_consequences_first(
    istack: Stack, mp_emulator: MercadoPagoEmulator, clock: Clock, portal: WebServer
) -> None:
    who, sub = active_customer(istack, mp_emulator, clock)
    with subscriptions_page(portal, who) as page:
        page.click(f"a[href='/portal/subscriptions/{sub.id}/cancel']")
        text = page.inner_text("main")
        assert "No se puede deshacer" in text and "No hay reembolso" in text
        with session_scope(istack.engine) as s:  # nothing changed by reading it
            still = s.get(Subscription, sub.id)
            assert still is not None and not still.cancel_at_period_end
        page.click("form[action$='/cancel'] button[type=submit]")
        assert "Cancelada" in page.inner_text("main")
        with session_scope(istack.engine) as s:
            done = s.get(Subscription, sub.id)
            assert done is not None and done.cancel_at_period_end


def test_past_due_shows_the_dates_and_pays_now(
    istack: Stack, mp_emulator: MercadoPagoEmulator, clock: Clock, portal: WebServer
) -> None:
    who, sub = active_customer(istack, mp_emulator, clock)
    since = datetime(2026, 12, 6, 12, tzinfo=UTC)
    with session_scope(istack.engine) as s:  # what a declined installment leaves
        row = s.get(Subscription, sub.id)
        assert row is not None
        row.status, row.past_due_since = "past_due", since
        s.add(row)
    steps = ladder(istack.settings, past_due_since=since.date())
    with subscriptions_page(portal, who, "en") as page:
        alert = page.inner_text("[role=alert]")
        assert Formatter("en").day(steps.block_on) in alert
        assert Formatter("en").day(steps.delete_on) in alert
        with page.expect_request(lambda r: "pref" in r.url or "checkout" in r.url) as went:
            page.click(f"form[action='/portal/subscriptions/{sub.id}/pay'] button")
        with session_scope(istack.engine) as s:
            charge = s.exec(
                select(Charge).where(Charge.subscription_id == sub.id, Charge.kind == "paynow")
            ).one()
            assert charge.checkout_url == went.value.url
