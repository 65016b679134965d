"""The official SDK against the Mercado Pago emulator, over real HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from billing.payments.mercadopago import (
    MercadoPago,
    MercadoPagoRefused,
    MercadoPagoUnavailable,
    Preapproval,
    idempotency_key,
)
from cli.devstack.mp_emulator import MercadoPagoEmulator


@pytest.fixture
def emulator() -> Iterator[MercadoPagoEmulator]:
    with MercadoPagoEmulator(timeout_seconds=2, today=date(2026, 11, 1)) as mp:
        yield mp


def control(mp: MercadoPagoEmulator, path: str, body: dict) -> dict:  # type: ignore[type-arg]
    req = urllib.request.Request(
        mp.url + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req) as resp:
        return json.loads(resp.read())


def client(mp: MercadoPagoEmulator, timeout: float = 5) -> MercadoPago:
    return MercadoPago("TEST-token", mp.url, timeout=timeout)


def preapproval(mp: MercadoPago, key: str, ref: str, email: str, **kw: object) -> Preapproval:
    """A subscription asked of Mercado Pago with the AC-ST-50 plan's defaults."""
    args: dict[str, Any] = {
        "key": key,
        "payer_email": email,
        "reason": "AC-ST-50",
        "amount": Decimal("199.00"),
        "currency": "MXN",
        "start_date": "2026-12-05",
        "external_reference": ref,
        **kw,
    }
    return mp.create_preapproval(**args)


def test_preapproval_lifecycle_and_installments(emulator: MercadoPagoEmulator) -> None:
    mp = client(emulator)
    control(emulator, "/__emulator/clock", {"date": "2026-11-22"})
    pre = preapproval(mp, idempotency_key("preapproval", 1), "sub-1", "ana@x.mx")
    assert pre.status == "pending" and pre.init_point and "preapproval_id=" in pre.init_point
    assert pre.amount == Decimal("199.00")
    control(emulator, f"/__emulator/authorize/{pre.id}", {})
    assert mp.get_preapproval(pre.id).status == "authorized"
    assert mp.installments(pre.id)[0]["status"] == "scheduled"
    control(emulator, "/__emulator/clock", {"date": "2026-12-05"})
    first = mp.installments(pre.id)[0]
    assert first["status"] == "processed" and first["payment"]["status"] == "approved"
    assert mp.cancel_preapproval(pre.id).status == "cancelled"


def test_declined_installment_retries_then_cancels(emulator: MercadoPagoEmulator) -> None:
    mp = client(emulator)
    control(emulator, "/__emulator/clock", {"date": "2026-12-01"})
    pre = preapproval(mp, "k-decline", "sub-2", "bob@x.mx")
    control(emulator, f"/__emulator/authorize/{pre.id}", {})
    control(emulator, "/__emulator/behaviour", {"payer_email": "bob@x.mx", "outcome": "reject"})
    control(emulator, "/__emulator/clock", {"date": "2026-12-10"})
    inst = mp.installments(pre.id)[0]
    assert inst["status"] == "recycling" and inst["retry_attempt"] == 3  # Dec 5, 7, 9
    control(emulator, "/__emulator/clock", {"date": "2026-12-15"})  # Dec 12, 15: the 4 retries
    assert mp.installments(pre.id)[0]["status"] == "rejected"
    control(emulator, "/__emulator/clock", {"date": "2027-03-01"})
    statuses = [i["status"] for i in mp.installments(pre.id)]
    assert statuses == ["rejected", "rejected", "rejected"]
    assert mp.get_preapproval(pre.id).status == "cancelled"  # after 3 rejected installments


def test_payment_feed_pages_through_every_attempt_once(emulator: MercadoPagoEmulator) -> None:
    """Mercado Pago's payment search, paged: every installment attempt of the window
    exactly once, oldest first, naming its preapproval and billing date."""
    from billing.payments.sync import feed

    mp = client(emulator)
    control(emulator, "/__emulator/clock", {"date": "2026-12-01"})
    pres = [
        preapproval(
            mp, f"k-feed-{i}", f"feed-{i}", f"p{i}@x.mx", reason="r", amount=Decimal("50.00")
        )
        for i in range(7)
    ]
    for pre in pres:
        control(emulator, f"/__emulator/authorize/{pre.id}", {})
    control(emulator, "/__emulator/behaviour", {"payer_email": "p0@x.mx", "outcome": "reject"})
    control(emulator, "/__emulator/clock", {"date": "2026-12-07"})  # p0: tried Dec 5 and 7
    pages = list(
        mp.payments_updated("2026-12-01T00:00:00.000Z", "2026-12-31T00:00:00.000Z", page=3)
    )
    assert [len(p) for p in pages] == [3, 3, 2]  # 6 approved + 2 attempts for p0
    ids = [p["id"] for page in pages for p in page]
    assert len(set(ids)) == 8
    stamps = [p["date_last_updated"] for page in pages for p in page]
    assert stamps == sorted(stamps)
    outside = list(mp.payments_updated("2026-11-01T00:00:00.000Z", "2026-12-04T00:00:00.000Z"))
    assert outside == []
    seen = feed(mp, date(2026, 12, 7))
    assert set(seen) == {pre.id for pre in pres}
    assert [i["status"] for i in seen[pres[0].id]] == ["rejected"]  # one per billing date
    assert seen[pres[1].id] == [
        {
            "debit_date": "2026-12-05",
            "transaction_amount": 50.0,
            "status": "processed",
            "payment": {"id": seen[pres[1].id][0]["payment"]["id"], "status": "approved"},
        }
    ]
    with pytest.raises(MercadoPagoRefused):  # bad filters: one clear refusal
        list(mp.payments_updated("yesterday", "2026-12-31T00:00:00.000Z"))


def test_payer_email_mismatch_is_a_clear_refusal(emulator: MercadoPagoEmulator) -> None:
    control(
        emulator, "/__emulator/behaviour", {"payer_email": "x@x.mx", "outcome": "email_mismatch"}
    )
    with pytest.raises(MercadoPagoRefused, match="Mercado Pago account"):
        preapproval(client(emulator), "k", "sub-3", "x@x.mx", amount=Decimal("199"))


def link(mp: MercadoPago, key: str, ref: str, **kw: object) -> dict:  # type: ignore[type-arg]
    args: dict = {  # type: ignore[type-arg]
        "key": key,
        "title": "cam2drive upgrade",
        "amount": Decimal("75.00"),
        "currency": "MXN",
        "external_reference": ref,
        "payer_email": "ana@x.mx",
        "expires_at": datetime(2026, 11, 4, 23, 59, 59, tzinfo=UTC),
        **kw,
    }
    return mp.create_preference(**args)


def test_one_off_link_is_idempotent_and_found_by_reference(emulator: MercadoPagoEmulator) -> None:
    """A Checkout Pro preference, asked twice with one key, is one link; the payer
    pays at it and the payment carries our reference back."""
    mp = client(emulator)
    first = link(mp, "charge-7", "charge-7")
    again = link(mp, "charge-7", "charge-7")
    assert first["id"] == again["id"] and len(emulator.state.preferences) == 1
    assert first["init_point"].startswith("https://")
    assert mp.payments_for("charge-7") == []
    control(emulator, f"/__emulator/preferences/{first['id']}/pay", {"payer_email": "ana@x.mx"})
    (pay,) = mp.payments_for("charge-7")
    assert pay["status"] == "approved" and pay["transaction_amount"] == 75.0
    assert not any(c["path"] == "/v1/payments" for c in emulator.state.calls)  # no token-less post
    control(emulator, "/__emulator/clock", {"date": "2026-11-05"})
    with pytest.raises(urllib.error.HTTPError):  # past expiration_date_to: not payable
        control(emulator, f"/__emulator/preferences/{first['id']}/pay", {"payer_email": "a@x.mx"})


def test_timeout_and_outage_are_unavailable_never_refusals(emulator: MercadoPagoEmulator) -> None:
    control(emulator, "/__emulator/behaviour", {"external_reference": "slow", "outcome": "timeout"})
    with pytest.raises(MercadoPagoUnavailable):
        link(client(emulator, timeout=0.5), "t", "slow")
    dead = MercadoPago("TEST-token", "http://127.0.0.1:9", timeout=1)
    with pytest.raises(MercadoPagoUnavailable):
        dead.get_preapproval("nope")
    with pytest.raises(MercadoPagoRefused, match="not found"):
        client(emulator).get_preapproval("does-not-exist")


@pytest.mark.parametrize(
    "today,first",
    [
        ("2026-11-22", "86.23"),  # 13 days to Dec 5: 199 * 13/30, as `subscription quote` says
        ("2026-11-05", "199.00"),  # on the billing day: full price
        ("2026-11-04", "6.63"),  # the day before: one day
    ],
)
def test_plan_with_proportional_first_charge_matches_the_quote(
    emulator: MercadoPagoEmulator, today: str, first: str
) -> None:
    from billing.subscriptions.proration import prorate

    mp = client(emulator)
    control(emulator, "/__emulator/clock", {"date": today})
    plan = mp.create_plan(
        key="plan-AC-ST-50",
        reason="AC-ST-50",
        amount=Decimal("199.00"),
        currency="MXN",
        billing_day=5,
    )
    assert plan["auto_recurring"]["billing_day_proportional"] is True
    with pytest.raises(MercadoPagoRefused, match="card_token_id"):  # a plan needs a card
        preapproval(
            mp, f"pre-{today}", f"sub-{today}", "ana@x.mx", start_date=today, plan_id=plan["id"]
        )
    # the payer subscribes at the plan's checkout instead; we find it by plan and email
    control(
        emulator,
        "/__emulator/subscribe",
        {"preapproval_plan_id": plan["id"], "payer_email": "ana@x.mx"},
    )
    (pre,) = mp.search_preapprovals(plan_id=plan["id"], payer_email="ana@x.mx")
    assert pre.status == "authorized"
    installments = mp.installments(pre.id)
    charged = Decimal(str(installments[0]["transaction_amount"]))
    assert installments[0]["payment"]["status"] == "approved"
    assert charged == Decimal(first)
    assert charged == prorate(Decimal("199.00"), "MXN", date.fromisoformat(today), 5).amount
    assert (
        installments[1]["debit_date"]
        == prorate(Decimal("199.00"), "MXN", date.fromisoformat(today), 5).period_end.isoformat()
    )
    assert Decimal(str(installments[1]["transaction_amount"])) == Decimal("199.00")
