"""`cam2drive subscription`: devices' subscriptions to plans."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from sqlmodel import Session

from billing import catalog, queries
from billing.core.db import session_scope
from cli.commands.common import (
    ACTOR,
    DeviceOpt,
    JsonOpt,
    OfCustomer,
    PlanOpt,
    list_rows,
    parse_date,
)
from cli.context import app_state
from cli.output import emit, out, record

if TYPE_CHECKING:
    from billing.payments.mercadopago import MercadoPago

subscription_app = typer.Typer(help="Subscriptions of devices to plans.", no_args_is_help=True)

SubscriptionArg = Annotated[int, typer.Argument(help="Subscription id.")]
DateOpt = Annotated[str | None, typer.Option("--date", help="YYYY-MM-DD (default: today).")]
PurchaseDateOpt = Annotated[
    str | None, typer.Option("--date", help="Purchase date YYYY-MM-DD (default: today).")
]
T = TypeVar("T")


def _linked(subscription: int, on: str | None, make: Callable[..., T], *args: Any) -> T:
    """`make` (upgrade, pay_link) for a subscription as of --date, in its plan's
    Mercado Pago account, on the terms the settings give every payment link."""
    from billing.payments.checkout import LinkTerms

    state = app_state()
    with session_scope(state.engine) as s:
        mp = _mp(s, subscription=subscription)
        terms = LinkTerms.of(state.settings, ACTOR)
        return make(s, mp, subscription, *args, parse_date(on), terms)


def _mp(s: Session, *, plan: str | None = None, subscription: int | None = None) -> MercadoPago:
    """The Mercado Pago account of the plan's currency (or the subscription's plan's)."""
    from billing.core.models import Plan
    from billing.subscriptions.lifecycle import get_subscription

    if subscription is not None:
        found = s.get(Plan, get_subscription(s, subscription).plan_id)
        assert found is not None
        return app_state().mercadopago_for(found.currency)
    assert plan is not None
    return app_state().mercadopago_for(catalog.get_plan(s, plan).currency)


@subscription_app.command("grant")
def subscription_grant(device: DeviceOpt, plan: PlanOpt, json_: JsonOpt = False) -> None:
    """Activate a courtesy subscription by hand (no payment)."""
    with session_scope(app_state().engine) as s:
        sub = catalog.grant_subscription(s, device_ref=device, plan_code=plan, actor=ACTOR)
        emit(record(sub, plan=plan.upper()), json_)


@subscription_app.command("create")
def subscription_create(
    device: DeviceOpt, plan: PlanOpt, on: PurchaseDateOpt = None, json_: JsonOpt = False
) -> None:
    """Start a paid subscription: pending until the payer authorises it in Mercado Pago."""
    from billing.subscriptions.lifecycle import EMAIL_NOTE, create_paid, describe

    state = app_state()
    with session_scope(state.engine) as s:
        sub = create_paid(
            s,
            _mp(s, plan=plan),
            device_ref=device,
            plan_code=plan,
            on=parse_date(on),
            billing_day=state.settings.billing_day,
            actor=ACTOR,
        )
        data = describe(s, sub)
    emit(data, json_)
    if not json_ and data["checkout_url"]:
        out.print(f"\nSend the payer to the checkout URL above; note: {EMAIL_NOTE}.")


@subscription_app.command("upgrade")
def subscription_upgrade(
    subscription: SubscriptionArg,
    plan: Annotated[str, typer.Option(help="The dearer plan's code.")],
    on: DateOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Move to a bigger plan: prints the payment link; the plan changes once it is paid."""
    from billing.subscriptions.changes import upgrade

    charge = _linked(subscription, on, upgrade, plan)
    data = {
        "subscription": subscription,
        "plan": plan.upper(),
        "charge": charge.id,
        "status": charge.status,
        "amount": str(charge.amount),
        "currency": charge.currency,
        "period_end": charge.period_end.isoformat() if charge.period_end else None,
        "pay_url": charge.checkout_url,
        "expires_at": charge.expires_at.isoformat() if charge.expires_at else None,
    }
    emit(data, json_)
    if not json_ and charge.status == "pending":
        out.print("\nSend the payer to pay_url; the plan changes once Mercado Pago approves it.")


@subscription_app.command("pay-link")
def subscription_pay_link(
    subscription: SubscriptionArg,
    on: DateOpt = None,
    json_: JsonOpt = False,
) -> None:
    """A past_due or blocked subscription's pay-now link, and the checkout to subscribe again."""
    from billing.subscriptions.paynow import pay_link

    emit(_linked(subscription, on, pay_link), json_)


@subscription_app.command("downgrade")
def subscription_downgrade(
    subscription: SubscriptionArg,
    plan: Annotated[str, typer.Option(help="The cheaper plan's code.")],
    json_: JsonOpt = False,
) -> None:
    """Move to a smaller plan at the next cycle (refused if the recordings do not fit)."""
    from billing.subscriptions.changes import downgrade
    from billing.subscriptions.lifecycle import describe

    state = app_state()
    with session_scope(state.engine) as s:
        mp = _mp(s, subscription=subscription)
        emit(describe(s, downgrade(s, mp, subscription, plan, actor=ACTOR)), json_)


@subscription_app.command("cancel")
def subscription_cancel(
    subscription: SubscriptionArg,
    json_: JsonOpt = False,
) -> None:
    """Stop renewing at the end of the paid period (no refund); then the dunning ladder."""
    from billing.subscriptions.changes import cancel
    from billing.subscriptions.lifecycle import describe

    state = app_state()
    with session_scope(state.engine) as s:
        mp = _mp(s, subscription=subscription)
        emit(describe(s, cancel(s, mp, subscription, actor=ACTOR)), json_)


@subscription_app.command("show")
def subscription_show(
    subscription: SubscriptionArg,
    json_: JsonOpt = False,
) -> None:
    """One subscription: plan, status, first charge, checkout URL, paid-through date."""
    from billing.subscriptions.lifecycle import describe, get_subscription

    with session_scope(app_state().engine) as s:
        emit(describe(s, get_subscription(s, subscription)), json_)


@subscription_app.command("list")
def subscription_list(
    customer: OfCustomer = None,
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    json_: JsonOpt = False,
) -> None:
    """List subscriptions."""
    from billing.subscriptions.lifecycle import describe

    def described(s: Session) -> list[dict[str, object]]:
        return [describe(s, sub) for sub in queries.subscriptions(s, customer, status)]

    list_rows("subscriptions", json_, described)


@subscription_app.command("quote")
def subscription_quote(plan: PlanOpt, on: PurchaseDateOpt = None, json_: JsonOpt = False) -> None:
    """What a subscription bought on a date pays first (prorated to the billing day)."""
    from billing.subscriptions.proration import prorate

    day = parse_date(on)
    with session_scope(app_state().engine) as s:
        p = catalog.get_plan(s, plan)
        quote = prorate(p.price, p.currency, day, app_state().settings.billing_day)
    emit(quote.as_dict(), json_)
