"""`cam2drive subscription`: devices' subscriptions to plans."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from sqlmodel import Session

from billing import catalog, queries
from billing.core.db import session_scope
from cli.commands.common import ACTOR, JsonOpt, parse_date
from cli.context import app_state
from cli.output import emit, out, record

if TYPE_CHECKING:
    from billing.core.settings import Settings
    from billing.payments.mercadopago import MercadoPago

subscription_app = typer.Typer(help="Subscriptions of devices to plans.", no_args_is_help=True)

SubscriptionArg = Annotated[int, typer.Argument(help="Subscription id.")]
DateOpt = Annotated[str | None, typer.Option("--date", help="YYYY-MM-DD (default: today).")]


def _link_terms(st: Settings) -> dict[str, Any]:
    """How long a payment link stays payable and where Mercado Pago reports its
    payments: the same for every link the CLI makes."""
    return {
        "actor": ACTOR,
        "link_days": st.pay_link_days,
        "notification_url": st.mp_notification_url,
    }


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
def subscription_grant(
    device: Annotated[str, typer.Option(help="Device id or username.")],
    plan: Annotated[str, typer.Option(help="Plan code.")],
    json_: JsonOpt = False,
) -> None:
    """Activate a courtesy subscription by hand (no payment)."""
    with session_scope(app_state().engine) as s:
        sub = catalog.grant_subscription(s, device_ref=device, plan_code=plan, actor=ACTOR)
        emit(record(sub, plan=plan.upper()), json_)


@subscription_app.command("create")
def subscription_create(
    device: Annotated[str, typer.Option(help="Device id or username.")],
    plan: Annotated[str, typer.Option(help="Plan code.")],
    on: Annotated[
        str | None, typer.Option("--date", help="Purchase date YYYY-MM-DD (default: today).")
    ] = None,
    json_: JsonOpt = False,
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
    if json_:
        emit(data, True)
        return
    emit(data, False)
    if data["checkout_url"]:
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

    state = app_state()
    st = state.settings
    with session_scope(state.engine) as s:
        charge = upgrade(
            s,
            _mp(s, subscription=subscription),
            subscription,
            plan,
            parse_date(on),
            st.billing_day,
            **_link_terms(st),
        )
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

    state = app_state()
    st = state.settings
    with session_scope(state.engine) as s:
        data = pay_link(
            s,
            _mp(s, subscription=subscription),
            subscription,
            parse_date(on),
            st.billing_day,
            **_link_terms(st),
            settings=st,
        )
    emit(data, json_)


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
    customer: Annotated[int | None, typer.Option(help="Only this customer's.")] = None,
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    json_: JsonOpt = False,
) -> None:
    """List subscriptions."""
    from billing.subscriptions.lifecycle import describe

    with session_scope(app_state().engine) as s:
        rows = [describe(s, sub) for sub in queries.subscriptions(s, customer, status)]
    emit(rows, json_, title="subscriptions")


@subscription_app.command("quote")
def subscription_quote(
    plan: Annotated[str, typer.Option(help="Plan code.")],
    on: Annotated[
        str | None, typer.Option("--date", help="Purchase date YYYY-MM-DD (default: today).")
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """What a subscription bought on a date pays first (prorated to the billing day)."""
    from billing.subscriptions.proration import prorate

    day = parse_date(on)
    with session_scope(app_state().engine) as s:
        p = catalog.get_plan(s, plan)
        quote = prorate(p.price, p.currency, day, app_state().settings.billing_day)
    emit(quote.as_dict(), json_)
