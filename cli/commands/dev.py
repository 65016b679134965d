"""`cam2drive dev run`: the embedded stack behind `make run` (parts in cli/devstack/)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Annotated

import typer

from billing import catalog
from billing.core.db import session_scope
from cli.devstack.demo import ensure_demo, ensure_demo_erp
from cli.devstack.mailsink import MailSink
from cli.litestream import Replication, replica_path
from cli.output import out

dev_app = typer.Typer(help="Local development stack (SQLite + SeaweedFS).", no_args_is_help=True)


@dev_app.command("run")
def dev_run(
    var: Annotated[Path, typer.Option(help="Where data lives.")] = Path("var"),
    public: Annotated[
        bool,
        typer.Option(
            "--public", help="Listen on every address (default: 127.0.0.1 only, this machine)."
        ),
    ] = False,
) -> None:
    """Start SeaweedFS, migrate SQLite, create demo data and serve FTP(S), SFTP and HTTP
    until Ctrl-C. Demo passwords are new at every start."""
    import secrets

    from billing.core.schema import upgrade
    from cli.context import STATE, App
    from cli.devstack.seaweed import SeaweedServer
    from gateway.node import serve_protocols

    var = var.resolve()  # the printed export line must work from any folder
    weed = SeaweedServer(
        var / "seaweed", s3_port=int(os.environ.get("CAM2DRIVE_DEV_S3_PORT", "8333"))
    )
    out.print(f"starting SeaweedFS S3 on {weed.endpoint} (data in {weed.data_dir})")
    weed.start()
    from cli.devstack.mp_emulator import MercadoPagoEmulator

    emulator = MercadoPagoEmulator(port=int(os.environ.get("CAM2DRIVE_DEV_MP_PORT", "8090")))
    emulator.start()
    mail = MailSink(var / "mail", int(os.environ.get("CAM2DRIVE_DEV_SMTP_PORT", "8025")))
    mail.controller.start()
    replication: Replication | None = None
    try:
        for key, value in weed.env().items():
            os.environ.setdefault(key, value)
        os.environ["CAM2DRIVE_S3_ENDPOINT_URL"] = weed.endpoint
        os.environ.setdefault("CAM2DRIVE_MP_API_BASE", emulator.url)
        os.environ.setdefault("CAM2DRIVE_MP_ACCESS_TOKEN", "TEST-cam2drive-dev")
        os.environ.setdefault("CAM2DRIVE_DATABASE_URL", f"sqlite:///{var / 'cam2drive.db'}")
        os.environ.setdefault("CAM2DRIVE_SFTP_HOST_KEY_DIR", str(var / "hostkeys"))
        # invoices: a locally made CSD for SAT's test RFC, stamped by the local test PAC
        from cli.devstack.democerts import demo_invoicing

        invoicing = demo_invoicing(var / "demo-csd", var / "test-pac")
        dev_env = {f"CAM2DRIVE_{name.upper()}": str(value) for name, value in invoicing.items()}
        dev_env.update({"CAM2DRIVE_SMTP_HOST": "127.0.0.1", "CAM2DRIVE_SMTP_PORT": str(mail.port)})
        from cli.devstack.tls import self_signed  # cryptography: only when FTPS is wanted

        cert, tls_key = self_signed(var / "tls")
        bind = "0.0.0.0" if public else "127.0.0.1"
        dev_env.update(
            {
                "CAM2DRIVE_FTP_TLS_CERTFILE": str(cert),
                "CAM2DRIVE_FTP_TLS_KEYFILE": str(tls_key),
                "CAM2DRIVE_FTP_HOST": bind,
                "CAM2DRIVE_SFTP_HOST": bind,
                "CAM2DRIVE_HTTP_HOST": bind,
            }
        )
        for name, value in dev_env.items():
            os.environ.setdefault(name, value)
        state = App(STATE["app"].config_path if "app" in STATE else None)
        STATE["app"] = state
        upgrade(state.settings.database_url)
        if state.settings.database_url.startswith("sqlite"):
            # the database streams to the bucket as production's does (systemd unit)
            replication = Replication(state.settings, var / "litestream.log").start()
        username, password = ensure_demo(state.engine)
        erp_key, erp_secret = ensure_demo_erp(state.engine)
        viewer, viewer_password = "cliente@example.com", secrets.token_urlsafe(12)
        with session_scope(state.engine) as s:
            catalog.set_customer_password(s, viewer, viewer_password, actor="demo")
        st = state.settings
        out.print("\n[bold]cam2drive is running[/bold] (Ctrl-C stops everything)")
        out.print(f"  FTP     ftp://127.0.0.1:{st.ftp_port}  user {username}  password {password}")
        out.print(f"  SFTP    sftp -P {st.sftp_port} {username}@127.0.0.1  (same password)")
        out.print(f"  viewer  {viewer}  password {viewer_password}  (FTP or SFTP, read-only)")
        out.print(
            f"  try:    curl --ssl-reqd --cacert {cert} --ftp-create-dirs -T somefile "
            f"ftp://{username}:{password}@127.0.0.1:{st.ftp_port}/2026-11-22/001/jpg/"
        )
        out.print(
            f"  HTTP    http://{st.http_host}:{st.http_port}/docs  ERP API: ApiKey "
            f"{erp_key}  ApiSecret {erp_secret}  (README: Integrating your ERP)"
        )
        out.print(
            f"          API=http://127.0.0.1:{st.http_port}/api/v1; KEY={erp_key}:{erp_secret}"
        )
        out.print(f"  S3      {weed.endpoint} bucket {st.s3_bucket}")
        if replication is not None:
            out.print(
                f"  backup  Litestream copies the database to {st.s3_bucket}/"
                f"{replica_path(st)} (cam2drive db restore; log in {var / 'litestream.log'})"
            )
        out.print(
            f"  MP      Mercado Pago emulator at {emulator.url} (README: Mercado Pago and its emulator)"
        )
        out.print(f"  mail    notifications land in {mail.directory}/ (SMTP 127.0.0.1:{mail.port})")
        for name, value in (
            ("CAM2DRIVE_FTP_PORT", st.ftp_port),
            ("CAM2DRIVE_SFTP_PORT", st.sftp_port),
            ("CAM2DRIVE_HTTP_PORT", st.http_port),
        ):
            os.environ.setdefault(name, str(value))
        exports = " ".join(
            f"{k}={shlex.quote(os.environ[k])}"
            for k in dict.fromkeys(
                (
                    "CAM2DRIVE_DATABASE_URL",
                    "CAM2DRIVE_S3_ENDPOINT_URL",
                    "CAM2DRIVE_MP_API_BASE",
                    "CAM2DRIVE_MP_ACCESS_TOKEN",
                    "CAM2DRIVE_FTP_PORT",
                    "CAM2DRIVE_SFTP_PORT",
                    "CAM2DRIVE_HTTP_PORT",
                    *weed.env(),
                    *dev_env,
                )
            )
        )
        out.print(f"  other shells: export {exports}\n")
        # the HTTP service on its own thread of this dev runner (production: its own
        # process, systemd/cam2drive-http.service), never inside the gateway's loop
        from cli.commands.http import serve_in_thread

        http = serve_in_thread(state)
        try:
            serve_protocols(state, ("ftp", "sftp"))  # one process: this one runs threads already
        finally:
            http.should_exit = True
    finally:
        if replication is not None:
            replication.stop()
        mail.controller.stop()
        emulator.stop()
        weed.stop()
