"""How commands print: a table or `--json`, and errors as one line on stderr."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NoReturn

from rich.console import Console
from rich.table import Table

# Piped output (scripts, `| grep`) must not be cut to 80 columns.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 250)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def record(obj: Any, fields: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    data = obj.model_dump() if hasattr(obj, "model_dump") else dict(obj)
    data = {k: v for k, v in data.items() if k not in ("secret_hash", "password_hash")}
    if fields:
        data = {k: data.get(k) for k in fields}
    data.update(extra)
    return {k: _plain(v) for k, v in data.items()}


def emit(
    data: dict[str, Any] | list[dict[str, Any]], as_json: bool, *, title: str | None = None
) -> None:
    if as_json:
        print(json.dumps(data, indent=2, default=str))
        return
    rows = data if isinstance(data, list) else [data]
    if not rows:
        out.print("(none)")
        return
    if isinstance(data, dict):
        for key, value in data.items():
            out.print(f"[bold]{key}[/bold]: {'' if value is None else value}")
        return
    table = Table(title=title)
    for col in rows[0]:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row.values()))
    out.print(table)


def report(data: dict[str, Any], as_json: bool, *lines: str) -> None:
    """`data` as JSON with --json; otherwise the lines a person reads."""
    if as_json:
        emit(data, True)
        return
    for line in lines:
        out.print(line)


def error_line(message: str) -> None:
    """A command's last line (fail, and cli.main's error mapping). Log records
    still queued for the writer thread (cli/logs.py) are written first: a
    supervisor's "worker failed" record came out after this line once."""
    from cli.logs import stop_logging

    stop_logging()
    err.print(f"error: {message}", markup=False)


def fail(message: str, code: int = 1) -> NoReturn:
    error_line(message)
    sys.exit(code)
