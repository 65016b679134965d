"""ERP integration from the shell: API keys, products and wholesale prices, statements,
callbacks, and the contract sweep (`cam2drive distributor ...`, `cam2drive contract ...`)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import date
from typing import Annotated, Any

import typer
from sqlmodel import Session

from billing import apikeys, callbacks, contracts
from billing.core.db import session_scope
from billing.core.models import utcnow
from billing.statement import statement
from cli.commands.common import ACTOR, DistributorArg, JsonOpt, list_rows, parse_date
from cli.context import App, app_state
from cli.output import emit, out, record, report

api_key_app = typer.Typer(help="A distributor's ERP credentials (HTTP Basic key_id:secret).")
contract_app = typer.Typer(help="ERP contracts: the sweep and their callbacks.")


@api_key_app.command("create")
def api_key_create(distributor: DistributorArg, json_: JsonOpt = False) -> None:
    """Make a key; its secret is printed now and never again (only its hash is kept)."""
    with session_scope(app_state().engine) as s:
        new = apikeys.create(s, distributor, actor=ACTOR)
        data = {"distributor_id": distributor, "key_id": new.key.key_id, "secret": new.secret}
    report(
        data,
        json_,
        f"key_id: {data['key_id']}",
        f"secret: {data['secret']}",
        "the secret is shown only now: in HubSoft, ApiKey = key_id and ApiSecret = secret",
    )


@api_key_app.command("list")
def api_key_list(distributor: DistributorArg, json_: JsonOpt = False) -> None:
    """A distributor's keys (never their secrets)."""
    fields = "key_id created_at revoked_at"
    list_rows("API keys", json_, lambda s: apikeys.listing(s, distributor), fields)


@api_key_app.command("revoke")
def api_key_revoke(key_id: Annotated[str, typer.Argument(help="The key_id.")]) -> None:
    """Stop a key from working at once."""
    with session_scope(app_state().engine) as s:
        key = apikeys.revoke(s, key_id, actor=ACTOR)
    out.print(f"revoked {key.key_id}")


def distributor_price(
    distributor: DistributorArg,
    plan: Annotated[str, typer.Argument(help="Plan code: the product label, e.g. AC-ST-50.")],
    price: Annotated[str, typer.Argument(help="Monthly wholesale price, e.g. 49.90.")],
    json_: JsonOpt = False,
) -> None:
    """Sell a plan through this distributor's ERP at a monthly wholesale price."""
    with session_scope(app_state().engine) as s:
        row = contracts.set_wholesale_price(s, distributor, plan, price, actor=ACTOR)
        emit(record(row, ["distributor_id", "plan_id", "wholesale_price", "currency"]), json_)


def distributor_products(distributor: DistributorArg, json_: JsonOpt = False) -> None:
    """The products a distributor's ERP syncs, with their wholesale prices."""

    def products(s: Session) -> Iterator[dict[str, Any]]:
        for plan, p in contracts.products(s, distributor):
            yield {
                "label": plan.code,
                "capacity_bytes": plan.capacity_bytes,
                "wholesale_price": p.wholesale_price,
                "currency": p.currency,
            }

    list_rows("products", json_, products)


def distributor_statement(
    distributor: DistributorArg,
    month: Annotated[str, typer.Option(help="YYYY-MM.")],
    json_: JsonOpt = False,
) -> None:
    """Active days x wholesale price per contract and plan for a month, exact to the cent."""
    with session_scope(app_state().engine) as s:
        st = statement(s, distributor, month)
    rows: list[dict[str, Any]] = [
        {
            "contract_id": ln.contract_id,
            "label": ln.label,
            "start": ln.start.isoformat(),
            "end": ln.end.isoformat(),
            "days": ln.days,
            "monthly_price": str(ln.monthly_price),
            "amount": str(ln.amount),
            "currency": ln.currency,
        }
        for ln in st.lines
    ]
    totals = {k: str(v) for k, v in st.totals.items()}
    if json_:
        emit(
            {"month": st.month, "days_in_month": st.days_in_month, "lines": rows, "totals": totals},
            True,
        )  # type: ignore[dict-item]
        return
    emit(rows, False, title=f"statement {st.month} ({st.days_in_month} days)")
    for currency, total in totals.items():
        out.print(f"total {currency}: {total}")


def distributor_callback(
    distributor: DistributorArg,
    url: Annotated[str, typer.Option(help="Where the ERP receives events (https://...).")],
    secret_stdin: Annotated[
        bool,
        typer.Option("--secret-stdin", help="Read the signing secret from stdin (else made)."),
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Register the ERP's callback URL; events are signed with the secret (printed if made)."""
    given = sys.stdin.readline().strip() if secret_stdin else None
    with session_scope(app_state().engine) as s:
        row, secret = callbacks.set_endpoint(s, distributor, url, given, actor=ACTOR)
        data = {"distributor_id": distributor, "url": row.url}
    if given is None:
        data["secret"] = secret
    emit(data, json_)


def run_sweep(state: App, today: date) -> dict[str, Any]:
    """What the scheduler's `erp` job does: sweep contracts, forget old idempotent
    answers, then deliver due callbacks."""
    from web.idempotency import forget_old

    with Session(state.engine, expire_on_commit=False) as s:
        report = contracts.sweep(s, state.purger, today)
        forgotten = forget_old(s, state.settings.idempotency_hours)
        events = callbacks.collect(s)
        s.commit()
    sent = callbacks.deliver(state.engine, state.settings)
    return {
        "downgraded": report.downgraded,
        "deleted": report.deleted,
        "downgrades_dropped": report.kept,
        "idempotent_answers_forgotten": forgotten,
        "events_queued": events,
        "callbacks": sent.as_dict(),
    }


@contract_app.command("sweep")
def contract_sweep(
    on: Annotated[str | None, typer.Option("--date", help="As of YYYY-MM-DD.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Apply due downgrades, delete cancelled contracts' drives past retention, send callbacks."""
    emit(run_sweep(app_state(), parse_date(on)), json_)


@contract_app.command("deliver")
def contract_deliver(json_: JsonOpt = False) -> None:
    """Send the ERP callbacks that are due (retries back off; never inside a request)."""
    state = app_state()
    emit(callbacks.deliver(state.engine, state.settings, utcnow()).as_dict(), json_)
