"""`cam2drive gateway`: the FTP and SFTP servers of one node."""

from __future__ import annotations

import typer

from cli.context import App, app_state
from cli.output import fail

gateway_app = typer.Typer(help="Protocol gateways.", no_args_is_help=True)


@gateway_app.command("ftp")
def gateway_ftp() -> None:
    """Serve FTP (and explicit FTPS when a certificate is configured) until stopped."""
    serve(app_state(), ("ftp",))


@gateway_app.command("sftp")
def gateway_sftp() -> None:
    """Serve SFTP until stopped (host keys are created on first start)."""
    serve(app_state(), ("sftp",))


@gateway_app.command("all")
def gateway_all() -> None:
    """Serve FTP and SFTP from one node until stopped.

    `gateway_workers` processes share the node's ports (default 1; 0: one
    per core on PostgreSQL); each serves both protocols with its share of
    the upload buffer budget, database pool and passive ports.
    """
    serve(app_state(), ("ftp", "sftp"))


def serve(state: App, protocols: tuple[str, ...]) -> None:
    from cli.errors import exit_status
    from cli.logs import stop_logging
    from gateway.node import serve_node

    if serve_node(state, protocols, state.rewire, exit_status, stop_logging):
        fail("a gateway worker failed to start (its error is above); the node stopped")
