"""`cam2drive`: the operator's command line. Commands live in cli/commands/, one module a noun."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cli.commands.accounts import customer_app, device_app, distributor_app, plan_app
from cli.commands.billing import billing_app, janitor, scheduler, usage
from cli.commands.db import db_app
from cli.commands.dev import dev_app
from cli.commands.drive import drive_app
from cli.commands.erp import (
    api_key_app,
    contract_app,
    distributor_callback,
    distributor_price,
    distributor_products,
    distributor_statement,
)
from cli.commands.gateway import gateway_app
from cli.commands.http import http_app
from cli.commands.orders import invoice_app, notify_app, orders_app
from cli.commands.portal import distributor_add_user, distributor_user_link, distributor_users
from cli.commands.subscription import subscription_app
from cli.context import STATE, App
from cli.errors import exit_status
from cli.logs import setup_logging

app = typer.Typer(
    help="cam2drive: cloud drive for CCTV recorders (FTP/SFTP to S3).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
for sub, name in (
    (db_app, "db"),
    (distributor_app, "distributor"),
    (customer_app, "customer"),
    (plan_app, "plan"),
    (device_app, "device"),
    (drive_app, "drive"),
    (subscription_app, "subscription"),
    (gateway_app, "gateway"),
    (billing_app, "billing"),
    (dev_app, "dev"),
    (orders_app, "orders"),
    (invoice_app, "invoice"),
    (notify_app, "notify"),
    (http_app, "http"),
    (contract_app, "contract"),
):
    app.add_typer(sub, name=name)
distributor_app.add_typer(api_key_app, name="api-key")
distributor_app.command("price")(distributor_price)
distributor_app.command("products")(distributor_products)
distributor_app.command("statement")(distributor_statement)
distributor_app.command("callback")(distributor_callback)
distributor_app.command("add-user")(distributor_add_user)
distributor_app.command("users")(distributor_users)
distributor_app.command("user-link")(distributor_user_link)
app.command("scheduler")(scheduler)
app.command("usage")(usage)
app.command("janitor")(janitor)


@app.callback()
def _root(
    config: Annotated[
        Path | None,
        typer.Option("--config", help="TOML config file (default /etc/cam2drive/cam2drive.toml)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
) -> None:
    STATE["app"] = App(config)
    setup_logging(verbose)


def main() -> None:
    """Console entry point: every expected failure is one line and exit 1."""
    try:
        app()
    except SystemExit:
        raise
    except BaseException as exc:
        sys.exit(exit_status(exc))
