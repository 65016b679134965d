"""Options and parsing every command module shares, and how a command lists records."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date
from typing import Annotated, Any

import typer
from sqlmodel import Session

from billing.core.db import session_scope
from billing.core.errors import InvalidInput
from cli.context import app_state
from cli.output import emit, record

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ACTOR = "cli"

DistributorArg = Annotated[int, typer.Argument(help="Distributor id.")]
DistributorOpt = Annotated[int, typer.Option(help="Distributor id.")]
CustomerArg = Annotated[str, typer.Argument(help="Customer id or email.")]
#: a listing's filter by customer id
OfCustomer = Annotated[int | None, typer.Option(help="Only this customer's.")]
DeviceArg = Annotated[str, typer.Argument(help="Device id or username.")]
DeviceOpt = Annotated[str, typer.Option(help="Device id or username.")]
PlanOpt = Annotated[str, typer.Option(help="Plan code.")]


def parse_date(on: str | None) -> date:
    """A --date option: YYYY-MM-DD, or today when absent."""
    try:
        return date.fromisoformat(on) if on else date.today()
    except ValueError:
        raise InvalidInput(f"date {on!r} is not YYYY-MM-DD") from None


def list_rows(
    title: str, json_: bool, query: Callable[[Session], Iterable[Any]], fields: str = ""
) -> None:
    """What `query` finds in one session, as a table titled `title` or as JSON;
    `fields` (space-separated) picks each row's columns, in order (default: all)."""
    with session_scope(app_state().engine) as s:
        rows = [record(found, fields.split()) for found in query(s)]
    emit(rows, json_, title=title)
