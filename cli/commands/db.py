"""`cam2drive db`: the schema."""

from __future__ import annotations

import typer
from sqlalchemy.engine import make_url

from cli.context import app_state
from cli.output import out

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or update the schema to the newest migration."""
    from billing.core.schema import upgrade

    url = app_state().settings.database_url
    upgrade(url)
    out.print(f"database at {make_url(url).render_as_string(hide_password=True)} is up to date")
