"""`cam2drive distributor|customer|plan|device`: the catalog."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from sqlmodel import Session

from billing import catalog, queries
from billing.core.db import session_scope
from billing.core.models import Plan
from cli.commands.common import (
    ACTOR,
    CustomerArg,
    DeviceArg,
    DistributorOpt,
    JsonOpt,
    OfCustomer,
    list_rows,
)
from cli.context import app_state
from cli.output import emit, out, record, report

distributor_app = typer.Typer(
    help="Distributors (resellers that manage customers).", no_args_is_help=True
)
customer_app = typer.Typer(help="End customers.", no_args_is_help=True)
plan_app = typer.Typer(help="Storage plans such as AC-ST-50.", no_args_is_help=True)
device_app = typer.Typer(help="Recorders (NVR/DVR) and their FTP logins.", no_args_is_help=True)


@distributor_app.command("add")
def distributor_add(
    name: Annotated[str, typer.Option(help="Distributor name.")],
    email: Annotated[str, typer.Option(help="Contact email (unique).")],
    json_: JsonOpt = False,
) -> None:
    """Add a distributor."""
    with session_scope(app_state().engine) as s:
        dist = catalog.add_distributor(s, name=name, email=email, actor=ACTOR)
        emit(record(dist), json_)


@distributor_app.command("list")
def distributor_list(json_: JsonOpt = False) -> None:
    """List distributors."""
    list_rows("distributors", json_, queries.distributors)


@customer_app.command("add")
def customer_add(
    distributor: DistributorOpt,
    email: Annotated[str, typer.Option(help="Customer email (unique; their Mercado Pago email).")],
    name: Annotated[str | None, typer.Option(help="Customer name.")] = None,
    phone: Annotated[str | None, typer.Option(help="Phone number.")] = None,
    tax_id: Annotated[str | None, typer.Option("--tax-id", help="Tax id (RFC, CPF...).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Add an end customer under a distributor."""
    details = {"name": name, "phone": phone, "tax_id": tax_id}
    with session_scope(app_state().engine) as s:
        cust = catalog.add_customer(
            s, distributor_id=distributor, email=email, actor=ACTOR, **details
        )
        emit(record(cust), json_)


@customer_app.command("list")
def customer_list(
    distributor: Annotated[int | None, typer.Option(help="Only this distributor's.")] = None,
    json_: JsonOpt = False,
) -> None:
    """List customers."""
    list_rows("customers", json_, lambda s: queries.customers(s, distributor))


@customer_app.command("set-fiscal")
def customer_set_fiscal(
    customer: CustomerArg,
    rfc: Annotated[str | None, typer.Option(help="RFC of the invoice receiver.")] = None,
    name: Annotated[
        str | None, typer.Option(help="Legal name, as registered with the SAT.")
    ] = None,
    regime: Annotated[str | None, typer.Option(help="Régimen fiscal, e.g. 612.")] = None,
    use: Annotated[str | None, typer.Option("--use", help="Uso CFDI, e.g. G03.")] = None,
    postal_code: Annotated[str | None, typer.Option(help="Fiscal postal code.")] = None,
    locale: Annotated[str | None, typer.Option(help="Email language: es, pt or en.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Fiscal data for CFDI invoices (without it: "público en general") and email language."""
    receiver = {
        "rfc": rfc,
        "name": name,
        "regime": regime,
        "cfdi_use": use,
        "postal_code": postal_code,
    }
    with session_scope(app_state().engine) as s:
        cust = catalog.set_customer_fiscal(s, customer, actor=ACTOR, locale=locale, **receiver)
        fields = "id email name tax_id tax_regime cfdi_use postal_code locale"
        emit(record(cust, fields.split()), json_)


@customer_app.command("set-password")
def customer_set_password(
    customer: CustomerArg,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Set the password a customer uses to view recordings (login: their email)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    with session_scope(app_state().engine) as s:
        cust = catalog.set_customer_password(s, customer, password, actor=ACTOR)
        email = cust.email
    out.print(f"password set; {email} can now log in over FTP and SFTP to view recordings")


@plan_app.command("add")
def plan_add(
    code: Annotated[str, typer.Argument(help="Plan code, e.g. AC-ST-50.")],
    capacity: Annotated[str, typer.Option(help="Drive capacity, e.g. 50GB or 1TiB.")],
    price: Annotated[str, typer.Option(help="Monthly price, e.g. 199.00.")],
    currency: Annotated[str, typer.Option(help="ISO currency, e.g. MXN.")],
    on_full: Annotated[
        str, typer.Option("--on-full", help="When full: rotate (delete oldest) or reject (552).")
    ] = "rotate",
    json_: JsonOpt = False,
) -> None:
    """Add a plan, and its Mercado Pago plan in the account of its currency."""
    state = app_state()
    state.accounts.check(currency)  # refused before anything is written
    terms = catalog.PlanTerms(code, capacity, price, currency, on_full)
    with session_scope(state.engine) as s:
        plan = catalog.add_plan(s, terms, actor=ACTOR)
        s.commit()  # the plan exists whatever Mercado Pago answers
        row = record(plan)
        if plan.currency in state.accounts.currencies():
            row["mp_plan_id"], error = _mp_plan(s, plan)
            if error:
                row["mp_error"] = f"{error}; run `cam2drive plan sync` later"
        emit(row, json_)


@plan_app.command("sync")
def plan_sync(json_: JsonOpt = False) -> None:
    """Create at Mercado Pago every plan's preapproval plan that is missing (in the
    account of its currency, on the configured billing day, proportional first month)."""
    rows: list[dict[str, object]] = []
    with session_scope(app_state().engine) as s:
        for plan in queries.plans(s):
            row: dict[str, object] = {"plan": plan.code, "currency": plan.currency}
            row["mp_plan_id"], error = _mp_plan(s, plan)
            if error:
                row["error"] = error
            rows.append(row)
    emit(rows, json_, title="Mercado Pago plans")
    if any(r.get("error") for r in rows):
        raise typer.Exit(3)


def _mp_plan(s: Session, plan: Plan) -> tuple[str | None, str | None]:
    """(its id, None): the plan's preapproval plan in the Mercado Pago account of its
    currency, made if missing and committed at once, so a later failure keeps it;
    (None, why) when there is no such account or Mercado Pago refused or was not reached."""
    from billing.payments.mercadopago import MercadoPagoRefused, MercadoPagoUnavailable
    from billing.subscriptions.lifecycle import ensure_mp_plan

    state = app_state()
    if plan.currency not in state.accounts.currencies():
        return None, "no Mercado Pago account for its currency"
    mp = state.accounts.for_currency(plan.currency)
    try:
        mp_plan_id = ensure_mp_plan(s, mp, plan, state.settings.billing_day)
    except (MercadoPagoUnavailable, MercadoPagoRefused) as exc:
        s.rollback()
        return None, str(exc)
    s.commit()
    return mp_plan_id, None


@plan_app.command("list")
def plan_list(json_: JsonOpt = False) -> None:
    """List plans."""
    list_rows("plans", json_, queries.plans)


ZoneArg = Annotated[str, typer.Argument(help="IANA zone of the recorder's clock, or 'default'.")]

#: the recorder's FTP page, field by field: (its label, the key in recorder_settings)
RECORDER_FIELDS = (
    ("Server", "server"),
    ("Port", "port"),
    ("User name", "username"),
    ("Password", "password"),
    ("Remote directory", "remote_directory"),
)


def recorder_settings(username: str, password: str) -> dict[str, object]:
    """What an installer types into the recorder's FTP page."""
    st = app_state().settings
    return {
        "server": st.recorder_host(),
        "port": st.ftp_port,
        "username": username,
        "password": password,
        "remote_directory": "/",
    }


@device_app.command("add")
def device_add(
    customer: Annotated[int, typer.Option(help="Customer id.")],
    name: Annotated[str, typer.Option(help="Device name, e.g. 'Tienda Centro NVR'.")],
    serial: Annotated[str | None, typer.Option(help="Recorder serial number.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Add a recorder; prints its FTP login once (it is not stored in clear)."""
    with session_scope(app_state().engine) as s:
        new = catalog.add_device(s, customer_id=customer, name=name, serial=serial, actor=ACTOR)
        data = record(
            new.device,
            password=new.password,
            drive_id=new.drive.id,
            drive_prefix=new.drive.prefix,
            recorder=recorder_settings(new.device.username, new.password),
        )
    rec = data["recorder"]
    report(
        data,
        json_,
        f"device {data['id']} '{data['name']}' added; drive {data['drive_prefix']}",
        "Recorder settings (Network > FTP); the password is shown only now:",
        *(f"  {label:<17} {rec[key]}" for label, key in RECORDER_FIELDS),
    )


@device_app.command("reset-password")
def device_reset_password(device: DeviceArg, json_: JsonOpt = False) -> None:
    """Give a device a new random password (the old one stops working)."""
    with session_scope(app_state().engine) as s:
        dev, password = catalog.reset_device_password(s, device, actor=ACTOR)
        data = {"id": dev.id, "username": dev.username, "password": password}
    report(data, json_, f"new password for {data['username']}: {password}")


@device_app.command("timezone")
def device_timezone(device: DeviceArg, zone: ZoneArg, json_: JsonOpt = False) -> None:
    """The zone a recorder's clock keeps: its file names carry none ('default':
    the device_timezone setting)."""
    with session_scope(app_state().engine) as s:
        dev = catalog.set_device_timezone(
            s, device, None if zone == "default" else zone, actor=ACTOR
        )
        data = {"id": dev.id, "timezone": dev.timezone}
    report(data, json_, f"device {data['id']}: time zone {data['timezone'] or 'default'}")


@device_app.command("add-key")
def device_add_key(
    device: DeviceArg,
    keyfile: Annotated[
        Path,
        typer.Argument(
            help="OpenSSH public key file (id_ed25519.pub).",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    json_: JsonOpt = False,
) -> None:
    """Let a device log in over SFTP with this public key."""
    with session_scope(app_state().engine) as s:
        key = catalog.add_device_key(s, device, keyfile.read_text(errors="replace"), actor=ACTOR)
        emit(record(key, ["id", "device_id", "algorithm", "fingerprint", "comment"]), json_)


@device_app.command("keys")
def device_keys(device: DeviceArg, json_: JsonOpt = False) -> None:
    """List a device's SFTP public keys."""
    fields = "id algorithm fingerprint comment created_at"
    list_rows("keys", json_, lambda s: catalog.device_keys(s, device), fields)


@device_app.command("remove-key")
def device_remove_key(
    device: DeviceArg,
    key: Annotated[str, typer.Argument(help="Key id or SHA256 fingerprint.")],
) -> None:
    """Remove one of a device's SFTP public keys."""
    with session_scope(app_state().engine) as s:
        removed = catalog.remove_device_key(s, device, key, actor=ACTOR)
        out.print(f"removed key {removed.fingerprint}")


@device_app.command("list")
def device_list(customer: OfCustomer = None, json_: JsonOpt = False) -> None:
    """List devices."""
    list_rows("devices", json_, lambda s: queries.devices(s, customer))
