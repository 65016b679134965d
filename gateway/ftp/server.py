"""Build and run the FTP/FTPS gateway from settings."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import FTPServer

from billing.core.errors import InvalidInput
from billing.core.settings import Settings, passive_port_range
from gateway.admission import Admission
from gateway.auth import Authenticator
from gateway.ftp.handler import (
    DurableDTPMixin,
    GatewayFTPHandler,
    GatewayMixin,
    no_fs_perm,
)
from gateway.ftp.loop import Offload
from gateway.ingest import IngestPipeline

log = logging.getLogger("cam2drive.ftp")


def handler_class(
    settings: Settings, pipeline: IngestPipeline, authenticator: Authenticator, offload: Offload
) -> type:
    """A handler class bound to this process's pipeline, settings and loop."""
    attrs = dict(
        pipeline=pipeline,
        authenticator=authenticator,
        offload=offload,
        fallback_encoding=settings.path_fallback_encoding,
        eof_grace=settings.ftp_eof_grace_ms / 1000,
        transfer_log_format=settings.log_format,
        passive_ports=passive_port_range(settings.ftp_passive_ports),
        masquerade_address=settings.ftp_masquerade_address,
        timeout=settings.ftp_idle_timeout,
        login_timeout=settings.ftp_login_timeout,
        admission=Admission(
            "ftp",
            settings.ftp_max_connections,
            settings.ftp_max_connections_per_ip,
            settings.ftp_max_unauthenticated,
        ),
        auth_failed_timeout=settings.auth_failed_delay,
        permit_foreign_addresses=False,  # FTP bounce: PORT only back to the client
        permit_privileged_ports=False,
        use_sendfile=False,
    )
    if settings.ftp_tls_certfile is None:
        return type("CamFTPHandler", (GatewayFTPHandler,), attrs)
    # from their modules, not pyftpdlib.handlers: see gateway/__init__.py
    from pyftpdlib.handlers.ftps.control import TLS_FTPHandler
    from pyftpdlib.handlers.ftps.data import TLS_DTPHandler

    cert = Path(settings.ftp_tls_certfile)
    key = Path(settings.ftp_tls_keyfile) if settings.ftp_tls_keyfile else cert
    for f in (cert, key):
        if not f.exists():
            raise InvalidInput(f"TLS file {f} does not exist")
    dtp = type("CamTLSDTPHandler", (DurableDTPMixin, TLS_DTPHandler), {})
    attrs.update(
        certfile=str(cert),
        keyfile=str(key),
        dtp_handler=dtp,
        proto_cmds=no_fs_perm(TLS_FTPHandler.proto_cmds),
        tls_control_required=settings.ftp_tls_required,
        tls_data_required=settings.ftp_tls_required,
    )
    return type("CamFTPSHandler", (GatewayMixin, TLS_FTPHandler), attrs)


def build_server(
    settings: Settings,
    pipeline: IngestPipeline,
    authenticator: Authenticator,
    sock: socket.socket | None = None,
) -> FTPServer:
    """pyftpdlib's single-threaded server, every wait on the pool (gateway/ftp/loop.py)."""
    # Its own IOLoop, not pyftpdlib's process-wide singleton: tests and
    # embedders may run several servers in one process.
    ioloop = IOLoop()
    handler = handler_class(settings, pipeline, authenticator, Offload(ioloop))
    address = sock if sock is not None else (settings.ftp_host, settings.ftp_port)
    server = FTPServer(address, handler, ioloop=ioloop)
    # the handler's admission gate counts sessions; pyftpdlib's own max_cons
    # counts every socket in its map (passive listeners, data connections) too
    server.max_cons = 0
    server.max_cons_per_ip = 0
    warn_small_passive_range(settings)
    return server


def warn_small_passive_range(settings: Settings) -> None:
    """Say at start when sessions could outnumber passive ports: past the range,
    PASV gets 425 (gateway/ftp/passive.py), and the operator should know why."""
    ports = len(passive_port_range(settings.ftp_passive_ports))
    if ports < settings.ftp_max_connections:
        log.warning(
            "passive port range %s has %d ports for up to %d FTP sessions: PASV/EPSV "
            "answer 425 while all are in use; widen ftp_passive_ports",
            settings.ftp_passive_ports,
            ports,
            settings.ftp_max_connections,
        )
