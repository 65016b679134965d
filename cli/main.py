"""`cam2drive`: the operator's command line."""

from __future__ import annotations

import logging
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from billing import accounts
from billing.db import session_scope
from billing.errors import Cam2DriveError
from billing.models import Drive
from billing.settings import ConfigError
from cli.context import STATE, App, app_state
from cli.logs import setup_logging
from cli.output import emit, error_line, fail, out, record

app = typer.Typer(help="cam2drive: cloud drive for CCTV recorders (FTP/SFTP to S3).",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
distributor_app = typer.Typer(help="Distributors (resellers that manage customers).",
                              no_args_is_help=True)
customer_app = typer.Typer(help="End customers.", no_args_is_help=True)
plan_app = typer.Typer(help="Storage plans such as AC-ST-50.", no_args_is_help=True)
device_app = typer.Typer(help="Recorders (NVR/DVR) and their FTP logins.", no_args_is_help=True)
subscription_app = typer.Typer(help="Subscriptions of devices to plans.", no_args_is_help=True)
gateway_app = typer.Typer(help="Protocol gateways.", no_args_is_help=True)
billing_app = typer.Typer(help="Billing passes and the ledger.", no_args_is_help=True)
for sub, name in ((db_app, "db"), (distributor_app, "distributor"), (customer_app, "customer"),
                  (plan_app, "plan"), (device_app, "device"),
                  (subscription_app, "subscription"), (gateway_app, "gateway"),
                  (billing_app, "billing")):
    app.add_typer(sub, name=name)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ACTOR = "cli"


@app.callback()
def _root(
    config: Annotated[Path | None, typer.Option(
        "--config", help="TOML config file (default /etc/cam2drive/cam2drive.toml).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
) -> None:
    STATE["app"] = App(config)
    setup_logging(verbose)


# --- db -----------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or update the schema to the newest migration."""
    from billing.schema import upgrade

    url = app_state().settings.database_url
    upgrade(url)
    out.print(f"database at {_safe_url(url)} is up to date")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# --- accounts -------------------------------------------------------------------


@distributor_app.command("add")
def distributor_add(
    name: Annotated[str, typer.Option(help="Distributor name.")],
    email: Annotated[str, typer.Option(help="Contact email (unique).")],
    json_: JsonOpt = False,
) -> None:
    """Add a distributor."""
    with session_scope(app_state().engine) as s:
        dist = accounts.add_distributor(s, name=name, email=email, actor=ACTOR)
        emit(record(dist), json_)


@distributor_app.command("list")
def distributor_list(json_: JsonOpt = False) -> None:
    """List distributors."""
    from sqlmodel import select

    from billing.models import Distributor

    with session_scope(app_state().engine) as s:
        rows = [record(d) for d in s.exec(select(Distributor).order_by(Distributor.id))]
    emit(rows, json_, title="distributors")


@customer_app.command("add")
def customer_add(
    distributor: Annotated[int, typer.Option(help="Distributor id.")],
    email: Annotated[str, typer.Option(help="Customer email (unique; their Mercado Pago email).")],
    name: Annotated[str | None, typer.Option(help="Customer name.")] = None,
    phone: Annotated[str | None, typer.Option(help="Phone number.")] = None,
    tax_id: Annotated[str | None, typer.Option("--tax-id", help="Tax id (RFC, CPF...).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Add an end customer under a distributor."""
    with session_scope(app_state().engine) as s:
        cust = accounts.add_customer(s, distributor_id=distributor, email=email, name=name,
                                     phone=phone, tax_id=tax_id, actor=ACTOR)
        emit(record(cust), json_)


@customer_app.command("list")
def customer_list(
    distributor: Annotated[int | None, typer.Option(help="Only this distributor's.")] = None,
    json_: JsonOpt = False,
) -> None:
    """List customers."""
    from sqlmodel import select

    from billing.models import Customer

    with session_scope(app_state().engine) as s:
        q = select(Customer).order_by(Customer.id)
        if distributor is not None:
            q = q.where(Customer.distributor_id == distributor)
        rows = [record(c) for c in s.exec(q)]
    emit(rows, json_, title="customers")


@customer_app.command("set-fiscal")
def customer_set_fiscal(
    customer: Annotated[str, typer.Argument(help="Customer id or email.")],
    rfc: Annotated[str | None, typer.Option(help="RFC of the invoice receiver.")] = None,
    name: Annotated[str | None, typer.Option(help="Legal name, as registered with the SAT.")] = None,
    regime: Annotated[str | None, typer.Option(help="Régimen fiscal, e.g. 612.")] = None,
    use: Annotated[str | None, typer.Option("--use", help="Uso CFDI, e.g. G03.")] = None,
    postal_code: Annotated[str | None, typer.Option(help="Fiscal postal code.")] = None,
    locale: Annotated[str | None, typer.Option(help="Email language: es, pt or en.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Fiscal data for CFDI invoices (without it: "público en general") and email language."""
    with session_scope(app_state().engine) as s:
        cust = accounts.set_customer_fiscal(s, customer, actor=ACTOR, rfc=rfc, name=name,
                                            regime=regime, cfdi_use=use,
                                            postal_code=postal_code, locale=locale)
        emit(record(cust, ["id", "email", "name", "tax_id", "tax_regime", "cfdi_use",
                           "postal_code", "locale"]), json_)


@customer_app.command("set-password")
def customer_set_password(
    customer: Annotated[str, typer.Argument(help="Customer id or email.")],
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from standard input.")] = False,
) -> None:
    """Set the password a customer uses to view recordings (login: their email)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    with session_scope(app_state().engine) as s:
        cust = accounts.set_customer_password(s, customer, password, actor=ACTOR)
        email = cust.email
    out.print(f"password set; {email} can now log in over FTP and SFTP to view recordings")


@plan_app.command("add")
def plan_add(
    code: Annotated[str, typer.Argument(help="Plan code, e.g. AC-ST-50.")],
    capacity: Annotated[str, typer.Option(help="Drive capacity, e.g. 50GB or 1TiB.")],
    price: Annotated[str, typer.Option(help="Monthly price, e.g. 199.00.")],
    currency: Annotated[str, typer.Option(help="ISO currency, e.g. MXN.")],
    on_full: Annotated[str, typer.Option(
        "--on-full", help="When full: rotate (delete oldest) or reject (552).")] = "rotate",
    json_: JsonOpt = False,
) -> None:
    """Add a plan."""
    with session_scope(app_state().engine) as s:
        plan = accounts.add_plan(s, code=code, capacity=capacity, price=price,
                                 currency=currency, on_full=on_full, actor=ACTOR)
        emit(record(plan), json_)


@plan_app.command("list")
def plan_list(json_: JsonOpt = False) -> None:
    """List plans."""
    from sqlmodel import select

    from billing.models import Plan

    with session_scope(app_state().engine) as s:
        rows = [record(p) for p in s.exec(select(Plan).order_by(Plan.id))]
    emit(rows, json_, title="plans")


def _recorder_settings(username: str, password: str) -> dict[str, object]:
    st = app_state().settings
    host = st.public_host or st.ftp_masquerade_address or (
        "127.0.0.1" if st.ftp_host in ("0.0.0.0", "::") else st.ftp_host)
    return {"server": host, "port": st.ftp_port, "username": username, "password": password,
            "remote_directory": "/"}


@device_app.command("add")
def device_add(
    customer: Annotated[int, typer.Option(help="Customer id.")],
    name: Annotated[str, typer.Option(help="Device name, e.g. 'Tienda Centro NVR'.")],
    serial: Annotated[str | None, typer.Option(help="Recorder serial number.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Add a recorder; prints its FTP login once (it is not stored in clear)."""
    with session_scope(app_state().engine) as s:
        new = accounts.add_device(s, customer_id=customer, name=name, serial=serial, actor=ACTOR)
        data = record(new.device, password=new.password, drive_id=new.drive.id,
                      drive_prefix=new.drive.prefix,
                      recorder=_recorder_settings(new.device.username, new.password))
    if json_:
        emit(data, True)
        return
    rec = data["recorder"]
    out.print(f"device {data['id']} '{data['name']}' added; drive {data['drive_prefix']}")
    out.print("Recorder settings (Network > FTP); the password is shown only now:")
    for label, key in (("Server", "server"), ("Port", "port"), ("User name", "username"),
                       ("Password", "password"), ("Remote directory", "remote_directory")):
        out.print(f"  {label:<17} {rec[key]}")


@device_app.command("reset-password")
def device_reset_password(
    device: Annotated[str, typer.Argument(help="Device id or username.")],
    json_: JsonOpt = False,
) -> None:
    """Give a device a new random password (the old one stops working)."""
    with session_scope(app_state().engine) as s:
        dev, password = accounts.reset_device_password(s, device, actor=ACTOR)
        data = {"id": dev.id, "username": dev.username, "password": password}
    if json_:
        emit(data, True)
    else:
        out.print(f"new password for {data['username']}: {password}")


@device_app.command("add-key")
def device_add_key(
    device: Annotated[str, typer.Argument(help="Device id or username.")],
    keyfile: Annotated[Path, typer.Argument(help="OpenSSH public key file (id_ed25519.pub).",
                                            exists=True, dir_okay=False, readable=True)],
    json_: JsonOpt = False,
) -> None:
    """Let a device log in over SFTP with this public key."""
    with session_scope(app_state().engine) as s:
        key = accounts.add_device_key(s, device, keyfile.read_text(errors="replace"),
                                      actor=ACTOR)
        emit(record(key, ["id", "device_id", "algorithm", "fingerprint", "comment"]), json_)


@device_app.command("keys")
def device_keys(
    device: Annotated[str, typer.Argument(help="Device id or username.")],
    json_: JsonOpt = False,
) -> None:
    """List a device's SFTP public keys."""
    with session_scope(app_state().engine) as s:
        rows = [record(k, ["id", "algorithm", "fingerprint", "comment", "created_at"])
                for k in accounts.device_keys(s, device)]
    emit(rows, json_, title="keys")


@device_app.command("remove-key")
def device_remove_key(
    device: Annotated[str, typer.Argument(help="Device id or username.")],
    key: Annotated[str, typer.Argument(help="Key id or SHA256 fingerprint.")],
) -> None:
    """Remove one of a device's SFTP public keys."""
    with session_scope(app_state().engine) as s:
        removed = accounts.remove_device_key(s, device, key, actor=ACTOR)
        out.print(f"removed key {removed.fingerprint}")


@device_app.command("list")
def device_list(
    customer: Annotated[int | None, typer.Option(help="Only this customer's.")] = None,
    json_: JsonOpt = False,
) -> None:
    """List devices."""
    from sqlmodel import select

    from billing.models import Device

    with session_scope(app_state().engine) as s:
        q = select(Device).order_by(Device.id)
        if customer is not None:
            q = q.where(Device.customer_id == customer)
        rows = [record(d) for d in s.exec(q)]
    emit(rows, json_, title="devices")


@subscription_app.command("grant")
def subscription_grant(
    device: Annotated[str, typer.Option(help="Device id or username.")],
    plan: Annotated[str, typer.Option(help="Plan code.")],
    json_: JsonOpt = False,
) -> None:
    """Activate a courtesy subscription by hand (no payment)."""
    with session_scope(app_state().engine) as s:
        sub = accounts.grant_subscription(s, device_ref=device, plan_code=plan, actor=ACTOR)
        emit(record(sub, plan=plan.upper()), json_)


def _parse_date(on: str | None):  # type: ignore[no-untyped-def]
    from datetime import date

    from billing.errors import InvalidInput

    try:
        return date.fromisoformat(on) if on else date.today()
    except ValueError:
        raise InvalidInput(f"date {on!r} is not YYYY-MM-DD") from None


@subscription_app.command("create")
def subscription_create(
    device: Annotated[str, typer.Option(help="Device id or username.")],
    plan: Annotated[str, typer.Option(help="Plan code.")],
    on: Annotated[str | None, typer.Option(
        "--date", help="Purchase date YYYY-MM-DD (default: today).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Start a paid subscription: pending until the payer authorises it in Mercado Pago."""
    from billing.subscriptions import EMAIL_NOTE, create_paid, describe

    state = app_state()
    with session_scope(state.engine) as s:
        sub = create_paid(s, state.mercadopago, device_ref=device, plan_code=plan,
                          on=_parse_date(on), billing_day=state.settings.billing_day,
                          actor=ACTOR)
        data = describe(s, sub)
    if json_:
        emit(data, True)
        return
    emit(data, False)
    if data["checkout_url"]:
        out.print(f"\nSend the payer to the checkout URL above; note: {EMAIL_NOTE}.")


@subscription_app.command("upgrade")
def subscription_upgrade(
    subscription: Annotated[int, typer.Argument(help="Subscription id.")],
    plan: Annotated[str, typer.Option(help="The dearer plan's code.")],
    on: Annotated[str | None, typer.Option("--date", help="YYYY-MM-DD (default: today).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Move to a bigger plan now; charges the prorated difference once."""
    from billing.changes import upgrade
    from billing.subscriptions import describe, get_subscription

    state = app_state()
    with session_scope(state.engine) as s:
        charge = upgrade(s, state.mercadopago, subscription, plan, _parse_date(on),
                         state.settings.billing_day, actor=ACTOR)
        data = describe(s, get_subscription(s, subscription))
        data["charged"] = str(charge.amount)
    emit(data, json_)


@subscription_app.command("downgrade")
def subscription_downgrade(
    subscription: Annotated[int, typer.Argument(help="Subscription id.")],
    plan: Annotated[str, typer.Option(help="The cheaper plan's code.")],
    json_: JsonOpt = False,
) -> None:
    """Move to a smaller plan at the next cycle (refused if the recordings do not fit)."""
    from billing.changes import downgrade
    from billing.subscriptions import describe

    state = app_state()
    with session_scope(state.engine) as s:
        emit(describe(s, downgrade(s, state.mercadopago, subscription, plan, actor=ACTOR)),
             json_)


@subscription_app.command("cancel")
def subscription_cancel(
    subscription: Annotated[int, typer.Argument(help="Subscription id.")],
    json_: JsonOpt = False,
) -> None:
    """Stop renewing at the end of the paid period (no refund); then the dunning ladder."""
    from billing.changes import cancel
    from billing.subscriptions import describe

    state = app_state()
    with session_scope(state.engine) as s:
        emit(describe(s, cancel(s, state.mercadopago, subscription, actor=ACTOR)), json_)


@subscription_app.command("show")
def subscription_show(
    subscription: Annotated[int, typer.Argument(help="Subscription id.")],
    json_: JsonOpt = False,
) -> None:
    """One subscription: plan, status, first charge, checkout URL, paid-through date."""
    from billing.subscriptions import describe, get_subscription

    with session_scope(app_state().engine) as s:
        emit(describe(s, get_subscription(s, subscription)), json_)


@subscription_app.command("list")
def subscription_list(
    customer: Annotated[int | None, typer.Option(help="Only this customer's.")] = None,
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    json_: JsonOpt = False,
) -> None:
    """List subscriptions."""
    from sqlmodel import select

    from billing.models import Device, Subscription
    from billing.subscriptions import describe

    with session_scope(app_state().engine) as s:
        q = select(Subscription).order_by(Subscription.id)
        if customer is not None:
            q = q.join(Device, Device.id == Subscription.device_id).where(
                Device.customer_id == customer)
        if status is not None:
            q = q.where(Subscription.status == status)
        rows = [describe(s, sub) for sub in s.exec(q)]
    emit(rows, json_, title="subscriptions")


@subscription_app.command("quote")
def subscription_quote(
    plan: Annotated[str, typer.Option(help="Plan code.")],
    on: Annotated[str | None, typer.Option(
        "--date", help="Purchase date YYYY-MM-DD (default: today).")] = None,
    json_: JsonOpt = False,
) -> None:
    """What a subscription bought on a date pays first (prorated to the billing day)."""
    from billing.proration import prorate

    day = _parse_date(on)
    with session_scope(app_state().engine) as s:
        p = accounts.get_plan(s, plan)
        quote = prorate(p.price, p.currency, day, app_state().settings.billing_day)
    emit(quote.as_dict(), json_)


@billing_app.command("run")
def billing_run(
    on: Annotated[str | None, typer.Option(
        "--date", help="Run as of YYYY-MM-DD (default: today).")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Report what would change; change nothing.")] = False,
    json_: JsonOpt = False,
) -> None:
    """One billing pass: poll Mercado Pago, walk the dunning ladder, delete due drives,
    then issue the invoices of approved charges and queue notifications."""
    from billing.run import billing_cycle

    state = app_state()
    emit(billing_cycle(state.engine, state.mercadopago, state.store, state.settings,
                       _parse_date(on), dry_run=dry_run), json_)


@app.command("scheduler")
def scheduler() -> None:
    """Run billing passes, invoices, notifications and the janitor; one leader acts."""
    from datetime import date

    from billing.notify import collect, deliver
    from billing.run import billing_cycle

    from billing.scheduler import LeaderLock, run_scheduler
    from gateway.janitor import run_janitor

    state = app_state()
    st = state.settings
    jobs = [
        ("janitor", lambda: run_janitor(state.pipeline), st.janitor_every_seconds),
        ("notify", lambda: {"queued": collect(state.engine, st).queued,
                            **deliver(state.engine, st, state.store).as_dict()},
         st.notify_every_seconds),
    ]
    if st.mp_access_token:
        jobs.append(("billing", lambda: billing_cycle(
            state.engine, state.mercadopago, state.store, st, date.today()),
            st.billing_every_seconds))
    else:
        logging.getLogger("cam2drive").warning(
            "CAM2DRIVE_MP_ACCESS_TOKEN is not set: billing passes are off, the janitor runs")
    run_scheduler(LeaderLock(state.engine), jobs)


@billing_app.command("ledger")
def billing_ledger(
    customer: Annotated[int | None, typer.Option(help="Only this customer's.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Every charge Mercado Pago reported: amount, period, status."""
    from sqlmodel import select

    from billing.models import Charge, Device, Subscription

    with session_scope(app_state().engine) as s:
        q = select(Charge).order_by(Charge.id)
        if customer is not None:
            q = q.join(Subscription, Subscription.id == Charge.subscription_id).join(
                Device, Device.id == Subscription.device_id).where(
                Device.customer_id == customer)
        rows = [record(c, ["id", "subscription_id", "kind", "amount", "currency", "status",
                           "period_start", "period_end", "mp_id"]) for c in s.exec(q)]
    emit(rows, json_, title="ledger")


@app.command("usage")
def usage(
    device: Annotated[str | None, typer.Option(help="Device id or username.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Per drive: capacity, committed and reserved bytes, object count."""
    from sqlmodel import select

    with session_scope(app_state().engine) as s:
        q = select(Drive).order_by(Drive.id)
        if device is not None:
            q = q.where(Drive.device_id == accounts.get_device(s, device).id)
        rows = [record(d, ["id", "device_id", "prefix", "capacity_bytes", "committed_bytes",
                           "reserved_bytes"], objects=d.object_count,
                       last_upload_at=d.last_upload_at and d.last_upload_at.isoformat())
                for d in s.exec(q)]
    emit(rows, json_, title="drives")


@app.command("janitor")
def janitor(json_: JsonOpt = False) -> None:
    """Release expired reservations and abort orphan multipart uploads, once."""
    from dataclasses import asdict

    from gateway.janitor import run_janitor

    emit(asdict(run_janitor(app_state().pipeline)), json_)


# --- gateways -------------------------------------------------------------------


@gateway_app.command("ftp")
def gateway_ftp() -> None:
    """Serve FTP (and explicit FTPS when a certificate is configured) until stopped."""
    serve_node(app_state(), ("ftp",))


@gateway_app.command("sftp")
def gateway_sftp() -> None:
    """Serve SFTP until stopped (host keys are created on first start)."""
    serve_node(app_state(), ("sftp",))


@gateway_app.command("all")
def gateway_all() -> None:
    """Serve FTP and SFTP from one node until stopped.

    `gateway_workers` processes share the node's ports (default 1; 0: one
    per core on PostgreSQL); each serves both protocols with its share of
    the upload buffer budget, database pool and passive ports.
    """
    serve_node(app_state(), ("ftp", "sftp"))


def serve_node(state: App, protocols: tuple[str, ...]) -> None:
    """One gateway process, or a supervisor of `gateway_workers` forked
    workers on listening sockets bound here (gateway/workers.py)."""
    from gateway.workers import Supervisor, listen, preload, share, worker_count

    st = state.settings
    count = worker_count(st)
    if count == 1:
        serve_protocols(state, protocols)
        return
    shares = [share(st, i, count) for i in range(count)]  # a bad split fails before binding
    sockets = {}
    if "sftp" in protocols:  # made once here, not raced for by every worker
        from gateway.sftp.hostkeys import ensure_host_keys

        ensure_host_keys(st.sftp_host_key_dir)
        sockets["sftp"] = listen(st.sftp_host, st.sftp_port, count)
    if "ftp" in protocols:
        sockets["ftp"] = listen(st.ftp_host, st.ftp_port, count)

    def worker(index: int, ready: Callable[[], None]) -> int:
        from cli.logs import stop_logging

        mine = App(state.config_path)
        mine.settings = shares[index]  # type: ignore[misc]  # fills the cached property
        STATE["app"] = mine
        for group in sockets.values():
            for other in group[:index] + group[index + 1:]:
                other.close()
        try:
            serve_protocols(mine, protocols, {k: v[index] for k, v in sockets.items()}, ready)
            return 0
        except BaseException as exc:
            return exit_status(exc)
        finally:
            stop_logging()

    preload(st)
    if Supervisor(count, worker).run():
        fail("a gateway worker failed to start (its error is above); the node stopped")


def serve_protocols(state: App, protocols: tuple[str, ...],
                    sockets: dict[str, socket.socket] | None = None,
                    ready: Callable[[], None] = lambda: None) -> None:
    """Serve `protocols` in this process until stopped; SFTP beside FTP on its own
    thread. `ready` is called once every protocol serves."""
    from gateway.auth import Authenticator

    sockets = sockets or {}
    prepare_gateway(state)
    if protocols == ("sftp",):
        from gateway.sftp.server import serve

        serve(state.settings, state.pipeline, Authenticator(state.settings, state.engine),
              sock=sockets.get("sftp"), ready=ready)
        return
    if "sftp" in protocols:
        start_sftp_thread(state, sockets.get("sftp"))
    serve_ftp(state, sockets.get("ftp"), ready)


def start_sftp_thread(state: App, sock: socket.socket | None = None) -> None:
    """SFTP on its own asyncio loop beside the FTP server; returns once it listens.

    A port in use or an unreadable host key fails here, before FTP starts,
    rather than leaving a process that silently serves one protocol.
    """
    from gateway.auth import Authenticator
    from gateway.sftp.server import serve_in_thread

    serve_in_thread(state.settings, state.pipeline, Authenticator(state.settings, state.engine),
                    sock=sock)


def prepare_gateway(state: App) -> None:
    """What every gateway process does before serving: an allocator that
    gives buffers back, a heap trimmed every few seconds, the bucket, its
    start-up heap frozen out of the collector's sight (gateway/memory.py),
    and the GIL's switch interval (`gil_switch_interval_ms`)."""
    from gateway.memory import freeze_startup_heap, start_heap_trimmer, tune_allocator

    sys.setswitchinterval(state.settings.gil_switch_interval_ms / 1000)
    tune_allocator()
    start_heap_trimmer(state.settings.heap_trim_interval)
    state.store.ensure_bucket()
    freeze_startup_heap()


def serve_ftp(state: App, sock: socket.socket | None = None,
              ready: Callable[[], None] = lambda: None) -> None:
    """Serve FTP on this thread until SIGTERM (`prepare_gateway` done by the caller)."""
    from gateway.auth import Authenticator
    from gateway.ftp.server import build_server

    st = state.settings
    server = build_server(st, state.pipeline, Authenticator(st, state.engine), sock=sock)
    signal.signal(signal.SIGTERM, _exit_cleanly)
    server.handler.offload.calls.wake_on_signals()
    logging.getLogger("cam2drive").info(
        "FTP gateway on %s:%s (passive %s%s)", st.ftp_host, st.ftp_port, st.ftp_passive_ports,
        ", TLS" if st.ftp_tls_certfile else "")
    ready()
    server.serve_forever()  # returns, sessions closed, on SIGTERM or Ctrl-C


def _exit_cleanly(*_: object) -> None:
    # Raised in the main thread inside pyftpdlib's loop, which catches it and
    # closes every session. Closing the server from the handler instead
    # pulled the loop's descriptors from under its poll(): every stop ended
    # in "Bad file descriptor" and exit status 1.
    raise SystemExit(0)


def _register_more() -> None:
    from cli.dev import dev_app
    from cli.invoicing import invoice_app, notify_app, orders_app

    app.add_typer(dev_app, name="dev")
    app.add_typer(orders_app, name="orders")
    app.add_typer(invoice_app, name="invoice")
    app.add_typer(notify_app, name="notify")


_register_more()


def main() -> None:
    """Console entry point: every expected failure is one line and exit 1."""
    try:
        app()
    except SystemExit:
        raise
    except BaseException as exc:
        sys.exit(exit_status(exc))


def exit_status(exc: BaseException) -> int:
    """Report an expected failure as one line and give the exit status; re-raise the rest."""
    try:
        raise exc
    except SystemExit as stop:  # a forked gateway worker exits with os._exit, not this
        if isinstance(stop.code, str):
            return _say(stop.code)
        return 0 if stop.code is None else stop.code
    except Cam2DriveError as err:
        return _say(str(err))
    except ConfigError as err:
        return _say(str(err), 2)
    except IntegrityError as err:
        return _say(f"conflicts with an existing record: {err.orig}".splitlines()[0])
    except OperationalError as err:
        first = str(err.orig).strip().splitlines()[0] if err.orig else str(err)
        hint = " (run `cam2drive db upgrade`?)" if "no such table" in first or \
            "does not exist" in first else ""
        return _say(f"database error: {first}{hint}")
    except SQLAlchemyError as err:
        return _say(f"database error: {str(err).splitlines()[0]}")
    except OSError as err:  # a port in use, an unreadable key or certificate
        return _say(f"system error: {err}")
    except KeyboardInterrupt:
        return 130


def _say(message: str, code: int = 1) -> int:
    error_line(message)
    return code
