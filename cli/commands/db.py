"""`cam2drive db`: the schema, and Litestream's copy of an SQLite database."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import make_url

from cli.context import app_state
from cli.output import out

db_app = typer.Typer(help="Database schema, backup and restore.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or update the schema to the newest migration."""
    from billing.core.schema import upgrade

    url = app_state().settings.database_url
    upgrade(url)
    out.print(f"database at {make_url(url).render_as_string(hide_password=True)} is up to date")


@db_app.command("replicate")
def db_replicate() -> None:
    """Stream the SQLite database to the bucket with Litestream until stopped (systemd unit)."""
    from cli import litestream

    settings = app_state().settings
    cmd = litestream.replicate_command(settings)
    out.print(
        f"replicating {litestream.sqlite_file(settings)} to "
        f"s3://{settings.s3_bucket}/{litestream.replica_path(settings)}"
    )
    sys.stdout.flush()
    os.execve(cmd[0], cmd, litestream.environment(settings))  # systemd sees Litestream itself


@db_app.command("restore")
def db_restore(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here (default: the database).")
    ] = None,
    timestamp: Annotated[
        str | None, typer.Option(help="Point in time, RFC 3339 (default: the latest).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing database file.")] = False,
) -> None:
    """Bring the SQLite database back from Litestream's copy in the bucket.

    Stop every cam2drive service first; afterwards run `cam2drive drive fsck
    --repair` to index what arrived after the copy's last second.
    """
    from billing.core.db import make_engine
    from cli import litestream
    from gateway.fsck import release_reservations

    written = litestream.restore(app_state().settings, output, timestamp, force)
    # the copy's reservations belong to gateways that no longer run (gateway/fsck.py)
    engine = make_engine(f"sqlite:///{written}")
    try:
        released = release_reservations(engine)
    finally:
        engine.dispose()
    out.print(
        f"restored the database to {written} ({released} reservations of stopped gateways "
        "released); next: cam2drive drive fsck --repair"
    )
