"""POST /webhooks/mercadopago on real uvicorn, fed by the emulator's signed deliveries.

The emulator's clock is today's date: the service judges "paid through" by
the wall-clock date, as in production.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from billing.core.db import session_scope
from billing.core.models import MercadoPagoNotification, Subscription
from billing.payments.mercadopago import MercadoPago
from billing.subscriptions.lifecycle import create_paid
from cli.devstack.mp_emulator import MercadoPagoEmulator
from tests.support.billing import TERMS, add_plan, authorize, status
from tests.support.stack import Stack
from tests.support.wait import wait_for
from tests.support.web import WebServer

SECRET = "webhook-secret-for-tests"


@pytest.fixture
def hooked(stack: Stack) -> Iterator[tuple[WebServer, MercadoPagoEmulator, MercadoPago]]:
    """The service with a webhook secret, and an emulator that notifies it."""
    emu = MercadoPagoEmulator(timeout_seconds=1, today=date.today()).start()
    web = served(stack, "TEST-token", emu)
    emu.notification_url, emu.webhook_secret = f"{web.url}/webhooks/mercadopago", SECRET
    yield web, emu, MercadoPago("TEST-token", emu.url, timeout=5)
    web.close()
    emu.stop()


def served(stack: Stack, token: str, emu: MercadoPagoEmulator, **settings: Any) -> WebServer:
    """The service with the webhook secret, its Mercado Pago account `token` at `emu`."""
    update = {
        "mp_webhook_secret": SECRET,
        "mp_access_token": token,
        "mp_api_base": emu.url,
        "mp_timeout": 5.0,
        **settings,
    }
    parts = SimpleNamespace(
        settings=stack.settings.model_copy(update=update), engine=stack.engine, store=stack.store
    )
    return WebServer(parts)


def signed(data_id: str, secret: str = SECRET, request_id: str | None = None) -> dict[str, str]:
    rid, ts = request_id or str(uuid.uuid4()), str(int(time.time()))
    digest = hmac.new(
        secret.encode(), f"id:{data_id};request-id:{rid};ts:{ts};".encode(), hashlib.sha256
    ).hexdigest()
    return {"x-request-id": rid, "x-signature": f"ts={ts},v1={digest}"}


def queued(stack: Stack) -> int:
    with session_scope(stack.engine) as s:
        return len(s.exec(select(MercadoPagoNotification)).all())


def pending(
    stack: Stack, mp: MercadoPago, price: str = "99.00", currency: str = "MXN"
) -> Subscription:
    """A device's paid subscription to a new 1 MB plan, waiting for its payer."""
    dev = stack.device(grant=False)
    code = add_plan(stack, "HOOK", "1MB", price, currency)
    with session_scope(stack.engine) as s:
        return create_paid(
            s,
            mp,
            device_ref=dev.device_id,
            plan_code=code,
            on=date.today(),
            billing_day=5,
            actor="test",
        )


def test_checkout_activates_through_the_signed_webhook(
    stack: Stack, hooked: tuple[WebServer, MercadoPagoEmulator, MercadoPago]
) -> None:
    web, emu, mp = hooked
    sub = pending(stack, mp)
    assert sub.id is not None and status(stack, sub.id) == "pending"
    authorize(stack, emu, sub)  # the payer subscribes at the plan's checkout
    # no billing pass runs: only the webhook can activate it
    wait_for(lambda: status(stack, sub.id) == "active", what="the webhook to activate", timeout=20)
    topics = {d["topic"] for d in emu.deliveries}
    assert {"subscription_preapproval", "subscription_authorized_payment", "payment"} <= topics
    wait_for(lambda: all(d["status"] == 200 for d in emu.deliveries), what="every delivery 200")
    with session_scope(stack.engine) as s:
        linked = s.get(Subscription, sub.id)
        assert linked is not None and linked.mp_preapproval_id
        pre_id = linked.mp_preapproval_id

    def applied() -> bool:  # a 200 is sent before its background drain has run
        with session_scope(stack.engine) as s:
            notes = s.exec(
                select(MercadoPagoNotification).where(MercadoPagoNotification.resource_id == pre_id)
            ).all()
            return bool(notes) and all(n.processed_at is not None for n in notes)

    wait_for(applied, what="every notification applied")


@pytest.mark.parametrize(
    ("headers", "body_id"),
    [
        ({}, "123456"),  # unsigned
        (signed("123456", secret="not-the-secret"), "123456"),  # forged
        (signed("999999"), "123456"),  # signed for another resource: altered
        ({"x-request-id": "r", "x-signature": "garbage"}, "123456"),
        (signed("123456"), "654321"),  # signed, but the body names another resource
    ],
    ids=["unsigned", "forged", "altered", "malformed", "body-names-another"],
)
def test_refused_notifications_queue_nothing(
    stack: Stack,
    hooked: tuple[WebServer, MercadoPagoEmulator, MercadoPago],
    headers: dict[str, str],
    body_id: str,
) -> None:
    web, _emu, _mp = hooked
    before = queued(stack)
    reply = httpx.post(
        f"{web.url}/webhooks/mercadopago?data.id=123456&type=payment",
        json={"type": "payment", "data": {"id": body_id}},
        headers=headers,
    )
    assert reply.status_code == 401, reply.text
    assert queued(stack) == before


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1, 2]", b'{"type": "payment", "data": {"id": "../../etc"}}', b"{}"],
)
def test_garbage_is_4xx_never_5xx(
    stack: Stack, hooked: tuple[WebServer, MercadoPagoEmulator, MercadoPago], body: bytes
) -> None:
    web, _emu, _mp = hooked
    before = queued(stack)
    reply = httpx.post(
        f"{web.url}/webhooks/mercadopago",
        content=body,
        headers={"content-type": "application/json", **signed("x")},
    )
    assert reply.status_code == 400, reply.text
    assert "detail" in reply.json()
    assert queued(stack) == before


def test_answered_at_once_while_mercado_pago_is_down(
    stack: Stack, hooked: tuple[WebServer, MercadoPagoEmulator, MercadoPago]
) -> None:
    """The delivery is queued and 200; the failed read leaves it queued for the billing pass."""
    web, emu, mp = hooked
    emu.notification_url = None  # this payment's own delivery would race the one below
    pref = mp.create_preference(
        key=str(uuid.uuid4()),
        title="one-off",
        amount=Decimal("10.00"),
        currency="MXN",
        external_reference="nobody",
        payer_email="someone@example.com",
        expires_at=datetime(2100, 1, 1, tzinfo=UTC),
    )
    _status, pay = emu.dispatch(
        "POST",
        f"/__emulator/preferences/{pref['id']}/pay",
        {},
        {"payer_email": "someone@example.com"},
        None,
    )
    pay_id = str(pay["id"])
    emu.notification_url = f"{web.url}/webhooks/mercadopago"
    emu.dispatch(
        "POST",
        "/__emulator/behaviour",
        {},
        {"failing_path": f"/v1/payments/{pay_id}", "outcome": "error"},
        None,
    )
    reply = httpx.post(
        f"{web.url}/webhooks/mercadopago?data.id={pay_id}&type=payment",
        content=json.dumps({"type": "payment", "data": {"id": pay_id}}),
        headers=signed(pay_id),
    )
    assert reply.status_code == 200 and reply.json() == {"status": "queued"}

    def note() -> MercadoPagoNotification | None:
        with session_scope(stack.engine) as s:
            return s.exec(
                select(MercadoPagoNotification).where(MercadoPagoNotification.resource_id == pay_id)
            ).first()

    wait_for(lambda: (n := note()) is not None and n.attempts >= 1, what="a drain attempt")
    row = note()
    assert row is not None and row.processed_at is None and row.last_error


def applied(stack: Stack, emu: MercadoPagoEmulator) -> bool:
    """Every notification `emu` sent has been answered, and the queue has applied it."""
    if any(d["status"] is None for d in emu.deliveries):
        return False
    ids = {str(d["id"]) for d in emu.deliveries}
    with session_scope(stack.engine) as s:
        rows = s.exec(
            select(MercadoPagoNotification.processed_at).where(
                col(MercadoPagoNotification.resource_id).in_(ids)
            )
        ).all()
    return all(done is not None for done in rows)


def test_pay_now_restores_through_the_webhook(
    stack: Stack, hooked: tuple[WebServer, MercadoPagoEmulator, MercadoPago]
) -> None:
    """A past_due customer pays the link; the payment's notification (sent to the
    preference's own notification_url) restores the subscription with no billing pass."""
    from billing.subscriptions.paynow import pay_link
    from tests.support.billing import pay_at_link, payer_email

    web, emu, mp = hooked
    sub = pending(stack, mp)
    assert sub.id is not None
    authorize(stack, emu, sub)
    wait_for(lambda: status(stack, sub.id) == "active", what="the webhook to activate", timeout=20)
    # every notification of the signup answered and applied, so none lands after the
    # decline below and re-reads the subscription as paid
    wait_for(lambda: applied(stack, emu), what="the signup's notifications", timeout=20)
    emu.notification_url = None  # from here only the link's own notification_url notifies
    today = date.today()
    with session_scope(stack.engine) as s:  # its card was declined: past_due since today
        row = s.get(Subscription, sub.id)
        assert row is not None
        row.status, row.paid_through = "past_due", today
        s.add(row)
    with session_scope(stack.engine) as s:
        terms = replace(TERMS, notification_url=f"{web.url}/webhooks/mercadopago")
        link = pay_link(s, mp, sub.id, today, terms)
    pay_at_link(emu, str(link["pay_url"]), payer_email(stack, sub))
    wait_for(lambda: status(stack, sub.id) == "active", what="the payment's webhook", timeout=20)
    with session_scope(stack.engine) as s:
        row = s.get(Subscription, sub.id)
        assert row is not None and str(row.paid_through) == link["paid_through_once_paid"]


def test_another_accounts_notification_is_signed_with_its_secret(stack: Stack) -> None:
    """A BRL account's delivery is checked with that account's secret; its resource is
    read from the account that knows it and synced through the plan's currency's account."""
    from billing.core.settings import MercadoPagoAccount
    from billing.payments.notifications import drain

    mxn = MercadoPagoEmulator(timeout_seconds=1, today=date.today()).start()
    brl = MercadoPagoEmulator(timeout_seconds=1, today=date.today()).start()
    account = MercadoPagoAccount(
        access_token="TEST-br", webhook_secret="br-secret", api_base=brl.url
    )
    web = served(stack, "TEST-mx", mxn, mp_accounts={"BRL": account})
    try:
        brl.notification_url, brl.webhook_secret = f"{web.url}/webhooks/mercadopago", "br-secret"
        a, b = (
            MercadoPago("TEST-mx", mxn.url, timeout=5),
            MercadoPago("TEST-br", brl.url, timeout=5),
        )
        sub = pending(stack, b, "29.90", "BRL")
        assert sub.id is not None
        authorize(stack, brl, sub)
        wait_for(
            lambda: brl.deliveries and all(d["status"] == 200 for d in brl.deliveries),
            what="BRL deliveries accepted",
        )
        forged = httpx.post(
            f"{web.url}/webhooks/mercadopago?data.id=123&type=payment",
            content=json.dumps({"type": "payment", "data": {"id": "123"}}),
            headers=signed("123", secret="no-account-has-this"),
        )
        assert forged.status_code == 401
        assert status(stack, sub.id) == "pending"  # the default account does not know it
        report = drain(stack.engine, {"MXN": a, "BRL": b}, date.today(), 5)
        assert report.applied and status(stack, sub.id) == "active"
    finally:
        web.close()
        mxn.stop()
        brl.stop()
