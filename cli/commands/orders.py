"""`cam2drive orders|invoice|notify`: orders, invoices and the email outbox."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlmodel import Session

from billing.core.db import session_scope
from billing.core.errors import InvalidInput
from cli.commands.common import JsonOpt, list_rows
from cli.context import app_state
from cli.output import emit, out

CustomerOpt = Annotated[str | None, typer.Option(help="Only this customer's (id or email).")]

orders_app = typer.Typer(
    help='Orders: every charge and its invoice ("Ver Pedidos").', no_args_is_help=True
)
invoice_app = typer.Typer(
    help="CFDI invoices (XML + PDF) of approved charges.", no_args_is_help=True
)
notify_app = typer.Typer(
    help="Email notifications to customers and distributors.", no_args_is_help=True
)


@orders_app.command("list")
def orders_list(customer: CustomerOpt = None, json_: JsonOpt = False) -> None:
    """Date, concept, amount, status and invoice of every charge."""
    from billing.invoicing.invoices import orders

    list_rows("orders", json_, lambda s: orders(s, _customer_id(s, customer)))


@invoice_app.command("get")
def invoice_get(
    invoice_id: Annotated[int, typer.Argument(help="Invoice id (see `orders list`).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="File to write.")],
    xml: Annotated[bool, typer.Option("--xml", help="The stamped CFDI XML.")] = False,
    pdf: Annotated[bool, typer.Option("--pdf", help="The PDF rendering.")] = False,
) -> None:
    """Download an invoice's XML or PDF."""
    from billing.invoicing.invoices import invoice_files

    if xml == pdf:
        raise InvalidInput("choose exactly one of --xml and --pdf")
    state = app_state()
    with session_scope(state.engine) as s:
        xml_bytes, pdf_bytes = invoice_files(s, state.store, invoice_id)
    data = xml_bytes if xml else pdf_bytes
    try:
        output.write_bytes(data)
    except OSError as exc:
        raise InvalidInput(f"cannot write {output}: {exc.strerror}") from exc
    out.print(f"wrote {output} ({len(data)} bytes)")


@invoice_app.command("list")
def invoice_list(customer: CustomerOpt = None, json_: JsonOpt = False) -> None:
    """Invoices with their fiscal folio (UUID), status and last error."""
    from billing import queries

    fields = (
        "id charge_id customer_id serie folio uuid status total currency receiver_rfc last_error"
    )
    list_rows("invoices", json_, lambda s: queries.invoices(s, _customer_id(s, customer)), fields)


@invoice_app.command("issue")
def invoice_issue(json_: JsonOpt = False) -> None:
    """Issue the invoices of approved charges that have none (the billing run does this too)."""
    from billing.invoicing.invoices import issue_pending

    emit(issue_pending(app_state().invoicing).as_dict(), json_)


@invoice_app.command("request")
def invoice_request(
    charge_id: Annotated[int, typer.Argument(help="The charge (order) to invoice.")],
    json_: JsonOpt = False,
) -> None:
    """A customer's own invoice for a charge that would go into the global one.

    The customer's fiscal data must be set (`customer set-fiscal`); the charge
    leaves its period's global invoice if that is not stamped yet.
    """
    from billing.invoicing.invoices import request_own

    invoice_id = request_own(app_state().invoicing, charge_id)
    emit({"charge": charge_id, "invoice": invoice_id}, json_)


@invoice_app.command("cancel")
def invoice_cancel(
    invoice_id: Annotated[int, typer.Argument(help="Invoice id (see `invoice list`).")],
    reason: Annotated[
        str,
        typer.Option(
            "--reason",
            help="SAT c_Motivo: 01 errors, replaced (needs --substitute); 02 errors; "
            "03 the operation did not take place; 04 nominative operation in a global.",
        ),
    ],
    substitute: Annotated[
        str | None, typer.Option("--substitute", help="UUID of the replacing CFDI (01).")
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Cancel an issued invoice at the SAT through the PAC."""
    from billing.invoicing.credits import cancel

    state = app_state()
    if state.pac is None:
        raise InvalidInput("invoices are off: no CSD configured (cfdi_csd_certificate)")
    code = cancel(state.invoicing, invoice_id, reason, substitute)
    emit({"invoice": invoice_id, "status": "cancelled", "reason": reason, "pac": code}, json_)


@notify_app.command("run")
def notify_run(json_: JsonOpt = False) -> None:
    """Queue due notifications (transitions, invoices, silent recorders) and send them."""
    from billing.notify.outbox import collect, deliver

    state = app_state()
    queued = collect(state.engine, state.settings)
    report = deliver(state.engine, state.settings, state.store)
    report.queued = queued.queued
    emit(report.as_dict(), json_)


@notify_app.command("list")
def notify_list(
    pending: Annotated[bool, typer.Option("--pending", help="Only those not sent yet.")] = False,
    json_: JsonOpt = False,
) -> None:
    """The outbox: each notification, its recipient customer, status and last error."""
    from billing import queries

    fields = "id kind customer_id status attempts created_at sent_at last_error"
    list_rows("notifications", json_, lambda s: queries.notifications(s, pending), fields)


def _customer_id(s: Session, customer: str | None) -> int | None:
    """A --customer option (id or email) as the customer's id; None: everyone's."""
    from billing.catalog import get_customer

    return get_customer(s, customer).id if customer is not None else None
