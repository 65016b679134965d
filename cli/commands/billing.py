"""`cam2drive billing`, `scheduler`, `usage` and `janitor`: the recurring work."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict
from datetime import date
from typing import Annotated, Any

import typer
from sqlmodel import Session

from billing import catalog, queries
from cli.commands.common import JsonOpt, OfCustomer, list_rows, parse_date
from cli.context import app_state
from cli.output import emit, fail, record

billing_app = typer.Typer(help="Billing passes and the ledger.", no_args_is_help=True)


@billing_app.command("run")
def billing_run(
    on: Annotated[
        str | None, typer.Option("--date", help="Run as of YYYY-MM-DD (default: today).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would change; change nothing.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """One billing pass: poll Mercado Pago, walk the dunning ladder, delete due drives,
    then issue the invoices of approved charges and queue notifications.

    Exits 3 when Mercado Pago could not be reached for some subscription (they
    changed nothing and are retried next pass), after printing the report."""
    from billing.cycle import billing_cycle

    day = parse_date(on)
    if day > date.today() and not dry_run:
        # a real pass "in the future" would run the ladder early: deletions included
        fail(f"--date {day} is in the future: only a --dry-run may look ahead")
    state = app_state()
    report = billing_cycle(
        state.engine,
        state.billing_accounts(),
        state.purger,
        state.invoicing,
        state.settings,
        day,
        dry_run=dry_run,
    )
    emit(report, json_)
    left = len(report.get("unreachable") or []) + len(report.get("retrying") or [])
    if left:
        fail(
            f"Mercado Pago could not be reached for {left} subscription(s); "
            "nothing changed for them, the next pass retries",
            code=3,
        )


@billing_app.command("ledger")
def billing_ledger(customer: OfCustomer = None, json_: JsonOpt = False) -> None:
    """Every charge Mercado Pago reported: amount, period, status."""
    fields = "id subscription_id kind amount currency status period_start period_end mp_id"
    list_rows("ledger", json_, lambda s: queries.ledger(s, customer), fields)


def scheduler() -> None:
    """Run billing passes, invoices, notifications and the janitor; one leader acts."""
    from billing.cycle import billing_cycle
    from billing.notify.outbox import collect, deliver
    from billing.scheduler import LeaderLock, run_scheduler
    from gateway.janitor import run_janitor

    state = app_state()
    st = state.settings
    jobs: list[tuple[str, Any, float]] = [
        ("janitor", lambda: run_janitor(state.pipeline), st.janitor_every_seconds),
        (
            "notify",
            lambda: {
                "queued": collect(state.engine, st).queued,
                **deliver(state.engine, st, state.store).as_dict(),
            },
            st.notify_every_seconds,
        ),
    ]
    from cli.commands.erp import run_sweep

    # ERP contracts: downgrades due, cancelled drives past retention, callbacks
    jobs.append(("erp", lambda: run_sweep(state, date.today()), st.erp_every_seconds))
    if st.mp_access_token or st.mp_accounts:

        def billing_job() -> Any:
            from billing.metrics import observe_pass

            try:
                report = billing_cycle(
                    state.engine,
                    state.billing_accounts(),
                    state.purger,
                    state.invoicing,
                    st,
                    date.today(),
                )
            except BaseException:
                observe_pass(None)
                raise
            observe_pass(report)
            return report

        jobs.append(("billing", billing_job, st.billing_every_seconds))
    else:
        logging.getLogger("cam2drive").warning(
            "CAM2DRIVE_MP_ACCESS_TOKEN is not set: billing passes are off, the janitor runs"
        )
    if st.metrics_port:  # billing passes and outcomes (billing/metrics.py)
        from prometheus_client import start_http_server

        start_http_server(st.metrics_port, addr=st.metrics_host)
    run_scheduler(LeaderLock(state.engine), jobs)


def usage(
    device: Annotated[str | None, typer.Option(help="Device id or username.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Per drive: capacity, committed and reserved bytes, object count."""
    fields = "id device_id prefix capacity_bytes committed_bytes reserved_bytes".split()

    def drives(s: Session) -> Iterator[dict[str, Any]]:
        device_id = catalog.get_device(s, device).id if device is not None else None
        for d in queries.drives(s, device_id):
            yield record(d, fields, objects=d.object_count, last_upload_at=d.last_upload_at)

    list_rows("drives", json_, drives)


def janitor(json_: JsonOpt = False) -> None:
    """Release expired reservations and abort orphan multipart uploads, once."""
    from gateway.janitor import run_janitor

    emit(asdict(run_janitor(app_state().pipeline)), json_)
