"""`cam2drive http`: the HTTP service (ERP API, health, metrics) on uvicorn, its own process."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.context import App, app_state
from cli.output import out

http_app = typer.Typer(help="The HTTP service: ERP API, /livez, /readyz, /metrics.")


_UVICORN: dict[str, Any] = {
    "log_config": None,  # cam2drive's own logging (cli/logs.py)
    "access_log": False,  # /metrics counts requests; paths are client-chosen text
    "server_header": False,
    "proxy_headers": False,
}


def _server(state: App, host: str | None = None, port: int | None = None) -> Any:
    import uvicorn

    from web.app import create_app

    st = state.settings
    config = uvicorn.Config(
        create_app(state),
        host=host or st.http_host,
        port=st.http_port if port is None else port,
        **_UVICORN,
    )
    return uvicorn.Server(config)


def worker_app() -> Any:
    """The app of one of several uvicorn workers: each process builds its own parts
    (engine, pool, S3 client) from the config file the parent names in CAM2DRIVE_CONFIG."""
    from web.app import create_app

    return create_app(App())


@http_app.command("serve")
def http_serve(
    host: Annotated[str | None, typer.Option(help="Default: http_host (127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Default: http_port (8080).")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, max=64, help="Processes. Default: http_workers (1).")
    ] = None,
) -> None:
    """Serve the HTTP service until stopped (SIGTERM or Ctrl-C)."""
    state = app_state()
    st = state.settings
    workers = st.http_workers if workers is None else workers
    if workers == 1:
        server = _server(state, host, port)
        out.print(f"cam2drive HTTP service on http://{server.config.host}:{server.config.port}")
        server.run()
        return
    import uvicorn

    if state.config_path is not None:  # the workers are spawned: they read the same file
        os.environ["CAM2DRIVE_CONFIG"] = str(state.config_path.resolve())
    host, port = host or st.http_host, st.http_port if port is None else port
    out.print(f"cam2drive HTTP service on http://{host}:{port} ({workers} workers)")
    uvicorn.run(
        f"{__name__}:worker_app", factory=True, host=host, port=port, workers=workers, **_UVICORN
    )


@http_app.command("openapi")
def http_openapi(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Print the OpenAPI document (docs/openapi.json is this, committed)."""
    text = openapi_text()
    if output is None:
        print(text, end="")
    else:
        output.write_text(text, encoding="utf-8")


def openapi_text() -> str:
    """The schema needs no database or S3: the app is built on parts never touched."""
    from web.app import create_app

    class _Unused:
        settings = engine = store = None

    return json.dumps(create_app(_Unused()).openapi(), indent=2, sort_keys=True) + "\n"  # type: ignore[arg-type]


def serve_in_thread(state: App) -> Any:
    """`make run`: the service on a thread of the dev runner; returns the server to stop."""
    server = _server(state)
    thread = threading.Thread(target=server.run, name="http", daemon=True)
    thread.start()
    return server
