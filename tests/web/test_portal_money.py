"""Mis suscripciones and Ver pedidos in chromium: subscribe through the emulator's
Mercado Pago checkout, then see the order and download its invoice's XML."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlmodel import select

from billing.core.db import session_scope
from billing.core.models import Invoice, Subscription
from billing.invoicing.invoices import issue_pending
from cli.devstack.mp_emulator import MercadoPagoEmulator
from tests.support.billing import Clock, authorize, plan_of
from tests.support.cfdi import give_fiscal
from tests.support.portal import chromium, customer_of, person, sign_in
from tests.support.stack import Stack, fiscal
from tests.support.web import WebServer


@pytest.fixture
def istack(db_url: str, seaweed, certs: Path) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    """A stack that issues invoices (the demo CSD and the local test PAC)."""
    s = Stack(
        db_url, seaweed, "c2d-pg" if "postgresql" in db_url else "c2d-sqlite", **fiscal(certs)
    )
    yield s
    s.close()


def test_subscribe_at_the_checkout_then_download_the_invoice(
    istack: Stack, mp_emulator: MercadoPagoEmulator
) -> None:
    clock = Clock(istack, mp_emulator)
    parts = SimpleNamespace(
        settings=istack.settings, engine=istack.engine, store=istack.store, mercadopago=clock.mp
    )
    web = WebServer(parts)
    try:
        dev = istack.device(capacity="1GB", grant=False)
        who = customer_of(istack, dev)
        code = plan_of(istack, dev)
        with chromium() as browser:
            page = person(browser)
            sign_in(page, web.url, who)
            page.goto(f"{web.url}/portal/subscriptions")
            assert "Hoy paga" in page.content()  # the prorated quote, before paying
            page.check(f"input[name=plan][value='{code}']")
            # off to Mercado Pago's checkout (the emulator's init_point names a host
            # that does not resolve here: the request is what matters)
            with page.expect_request(lambda r: "preapproval_plan_id" in r.url) as went:
                page.click("form.plans button[type=submit]")
            with session_scope(istack.engine) as s:
                sub = s.exec(
                    select(Subscription).where(Subscription.device_id == dev.device_id)
                ).one()
                assert sub.status == "pending" and sub.checkout_url == went.value.url
            # the payer subscribes at the checkout; the billing pass links and charges
            authorize(istack, mp_emulator, sub)
            clock.run()
            give_fiscal(istack, dev.customer_id)
            issue_pending(istack.engine, istack.store, istack.settings, pac=istack.pac)
            with session_scope(istack.engine) as s:
                inv = s.exec(select(Invoice).where(Invoice.customer_id == dev.customer_id)).one()
                assert inv.status == "issued" and inv.uuid
                invoice_id, uuid = inv.id, inv.uuid
            page.goto(f"{web.url}/portal/subscriptions")
            assert "activa" in page.content()
            page.goto(f"{web.url}/portal/orders")
            assert page.locator("tbody tr").count() == 1
            with page.expect_download() as got:
                page.click(f"a[href='/portal/orders/{invoice_id}.xml']")
            xml = Path(got.value.path()).read_bytes()
            assert xml.startswith(b"<?xml") and uuid.encode() in xml.upper()
            # another customer asking for it by URL gets nothing
            other = customer_of(istack, istack.device())
            stranger = person(browser)
            sign_in(stranger, web.url, other)
            assert stranger.request.get(f"{web.url}/portal/orders/{invoice_id}.xml").status == 404
    finally:
        web.close()
