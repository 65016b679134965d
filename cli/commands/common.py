"""Options and parsing every command module shares."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer

from billing.core.errors import InvalidInput

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ACTOR = "cli"


def parse_date(on: str | None) -> date:
    """A --date option: YYYY-MM-DD, or today when absent."""
    try:
        return date.fromisoformat(on) if on else date.today()
    except ValueError:
        raise InvalidInput(f"date {on!r} is not YYYY-MM-DD") from None
