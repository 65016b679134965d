"""Pay now: a past_due or blocked customer pays at a Checkout Pro link, or subscribes
again after Mercado Pago cancelled their recurring charge; through the official SDK
against the emulator, on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from decimal import Decimal
from urllib.parse import parse_qs, urlparse

import pytest
from sqlmodel import select

from billing.core.db import session_scope
from billing.core.errors import InvalidInput
from billing.core.models import Charge
from billing.subscriptions.paynow import pay_link
from cli.devstack.mp_emulator import MercadoPagoEmulator
from tests.support.billing import (
    START,
    TERMS,
    Clock,
    declined,
    pay_at_link,
    payer_email,
    paying,
    set_outcome,
    status,
    subscribe_at,
    subscription,
    upload,
)
from tests.support.stack import Stack


def _link(stack: Stack, clock: Clock, sub_id: int, days: int = 3) -> dict[str, object]:
    with session_scope(stack.engine) as s:
        terms = replace(TERMS, days=days, ladder=stack.settings)
        return pay_link(s, clock.mp, sub_id, clock.today, terms)


def test_paying_the_link_restores_a_blocked_customer_at_once(
    stack: Stack, mp_emulator: MercadoPagoEmulator
) -> None:
    clock, dev, sub = paying(stack, mp_emulator)
    with session_scope(stack.engine) as s, pytest.raises(InvalidInput, match="past_due or blocked"):
        pay_link(s, clock.mp, sub.id, clock.today, TERMS)  # active: nothing due
    set_outcome(mp_emulator, sub, "reject")
    clock.until(date(2026, 12, 15))
    assert status(stack, sub.id) == "blocked"
    assert "blocked" in upload(stack, dev, "late.jpg")
    link = _link(stack, clock, sub.id)
    assert (link["amount"], link["currency"]) == ("10.00", "MXN")
    assert link["paid_through_once_paid"] == "2027-01-05"  # the overdue period: Dec 5 - Jan 5
    assert link["recurring_charge"] == "authorized"  # Mercado Pago still retries the card
    assert "preapproval_plan_id=" in str(link["subscribe_again_url"])
    assert _link(stack, clock, sub.id)["pay_url"] == link["pay_url"]  # the same link again
    pref = mp_emulator.state.preferences[
        parse_qs(urlparse(str(link["pay_url"])).query)["pref_id"][0]
    ]
    assert pref["external_reference"] == f"charge-{link['charge']}"
    assert pref["expires"] is True and pref["expiration_date_to"].startswith("2026-12-18")
    pay_at_link(mp_emulator, str(link["pay_url"]), payer_email(stack, sub))
    report = clock.run()  # the same day: no waiting for Mercado Pago's next retry
    assert sub.id in report.activated and status(stack, sub.id) == "active"
    assert subscription(stack, sub.id).paid_through == date(2027, 1, 5)
    assert upload(stack, dev, "back.jpg").startswith("226")
    clock.until(date(2026, 12, 20))  # the day it would have been deleted
    assert status(stack, sub.id) == "active"
    with session_scope(stack.engine) as s:
        paid = s.exec(
            select(Charge).where(Charge.subscription_id == sub.id, Charge.kind == "paynow")
        ).all()
        assert [(c.status, c.amount, c.period_end) for c in paid] == [
            ("approved", Decimal("10.00"), date(2027, 1, 5))
        ]
        assert paid[0].payment_type_id == "credit_card"  # what the invoice's FormaPago reads


@pytest.fixture
def gives_up() -> Iterator[MercadoPagoEmulator]:
    """Mercado Pago cancelling the recurring charge after one installment failed
    every retry (how many is not documented: the emulator's setting)."""
    with MercadoPagoEmulator(timeout_seconds=1, today=START, max_rejected_installments=1) as emu:
        yield emu


def test_subscribing_again_replaces_the_cancelled_preapproval(
    stack: Stack, gives_up: MercadoPagoEmulator
) -> None:
    clock, _, sub = declined(stack, gives_up, date(2026, 12, 16))
    old = sub.mp_preapproval_id
    assert status(stack, sub.id) == "blocked"
    assert gives_up.state.preapprovals[old]["status"] == "cancelled"  # type: ignore[index]
    link = _link(stack, clock, sub.id, days=30)
    assert link["recurring_charge"] == "cancelled" and "subscribe again" in str(link["note"])
    # blocked Dec 15, deleted Dec 20: the link never outlives the drive
    assert str(link["expires_at"]).startswith("2026-12-19")
    # the payer subscribes again at the plan's checkout, with another card that works
    set_outcome(gives_up, sub, "approve")
    subscribe_at(gives_up, sub, str(link["subscribe_again_url"]), payer_email(stack, sub))
    report = clock.run()
    assert sub.id in report.activated and status(stack, sub.id) == "active"
    now = subscription(stack, sub.id)
    assert now.mp_preapproval_id not in (None, old)  # the new one replaced it
    assert now.paid_through == date(2027, 1, 5)  # its proportional first installment
    clock.until(date(2027, 1, 6))  # the unpaid link expired; the new card pays January
    assert status(stack, sub.id) == "active"
    assert subscription(stack, sub.id).paid_through == date(2027, 2, 5)
    with session_scope(stack.engine) as s:
        (left,) = s.exec(
            select(Charge).where(Charge.subscription_id == sub.id, Charge.kind == "paynow")
        ).all()
        assert left.status == "expired"
