"""What the FTP mixins use of pyftpdlib's handlers, typed for mypy.

pyftpdlib ships no type information, and the mixins in handler.py and
passive.py become handlers only when server.py joins them to pyftpdlib's
classes (plain or TLS), so mypy cannot see what `self` offers them. Under
TYPE_CHECKING they derive from the classes below, which declare just the part
of pyftpdlib 2.x they use; at run time these bases are `object` and the
method resolution order is pyftpdlib's own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable
    from typing import Any

    LogFun = Callable[[str], None]

    class CallLater:
        """pyftpdlib.ioloop._CallLater: a call scheduled on the loop."""

        cancelled: bool

        def cancel(self) -> None: ...

        def reset(self) -> None: ...

    class IOLoop:
        READ: int
        WRITE: int

        def call_later(
            self, seconds: float, target: Callable[..., object], *args: Any, **kwargs: Any
        ) -> CallLater: ...

    class Channel:
        """pyftpdlib.ioloop.AsyncChat, both channels' base."""

        ioloop: IOLoop
        socket: socket.socket
        _closed: bool
        _idler: CallLater | None

        def add_channel(self, map: Any = None, events: int | None = None) -> None: ...

        def del_channel(self, map: Any = None) -> None: ...

        def writable(self) -> bool: ...

        def handle_read_event(self) -> None: ...

        def handle_close(self) -> None: ...

        def handle_error(self) -> None: ...

        def close(self) -> None: ...

        def close_when_done(self) -> None: ...

    class DataChannel(Channel):
        """pyftpdlib.handlers.DTPHandler."""

        file_obj: Any
        receive: bool
        transfer_finished: bool
        _resp: tuple[str, LogFun] | tuple[()] | None

        def enable_receiving(self, type: str, cmd: str) -> None: ...

    class ControlChannel(Channel):
        """pyftpdlib.handlers.FTPHandler."""

        remote_ip: str
        username: str
        log_prefix: str
        _log_debug: bool
        password: str
        authenticated: bool
        attempted_logins: int
        _current_type: str
        _restart_position: int
        _last_response: str
        _in_buffer: list[bytes]
        _in_buffer_len: int
        _in_dtp_queue: tuple[Any, str] | None
        _dtp_acceptor: Any
        _rnfr: str | None

        def handle(self) -> None: ...

        def found_terminator(self) -> None: ...

        def pre_process_command(self, line: str, cmd: str, arg: str) -> None: ...

        def push(self, data: str) -> None: ...

        def respond(self, resp: str, logfun: LogFun = ...) -> None: ...

        def push_dtp_data(
            self,
            data: Any,
            isproducer: bool = False,
            file: Any = None,
            cmd: str | None = None,
        ) -> None: ...

        def log(self, msg: str, logfun: LogFun = ...) -> None: ...

        def log_cmd(self, cmd: str, arg: str, respcode: int, respstr: str) -> None: ...

        def handle_auth_failed(self, msg: str, password: str) -> None: ...

        def on_login(self, username: str) -> None: ...

        def ftp_STAT(self, path: str) -> None: ...

        def _make_epasv(self, extmode: bool = False) -> None: ...

else:
    DataChannel = ControlChannel = object
