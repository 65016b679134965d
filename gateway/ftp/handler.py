"""The FTP frontend: pyftpdlib handlers over the shared drive view.

pyftpdlib gives us the protocol engine (command parsing, PASV/EPSV/PORT,
TLS, the data channel); every filesystem command is re-implemented here
over `DriveView` so that its reply is precise and the rule behind it lives
in one place for FTP and SFTP alike. Runs on pyftpdlib's event loop, one
thread for every session (gateway/ftp/loop.py says why): a command answered
from the session's own state replies at once, and one that waits on the
database or S3 runs on the pool while its session reads nothing more (`_step`),
so a slow step only ever stalls the session that made it.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import sys
from collections.abc import Callable
from typing import Any, Literal

from pyftpdlib.handlers import DTPHandler, FTPHandler
from pyftpdlib.handlers.ftp.producers import BufferedIteratorProducer
from pyftpdlib.log import logger as ftplog

from billing.core.errors import (
    Cam2DriveError,
    InvalidPath,
    StorageUnavailable,
)
from gateway import paths
from gateway.admission import Admission, Refused, Ticket
from gateway.auth import Authenticator, AuthFailed, Banned
from gateway.drive import Download, DriveView, Entry, Login, login_notice
from gateway.ftp.bases import DataChannel
from gateway.ftp.listing import list_lines, mlsd_lines, mlsx_facts
from gateway.ftp.loop import Offload
from gateway.ftp.passive import PassiveListener, PassiveRetryMixin
from gateway.ftp.readahead import ReadAhead
from gateway.ftp.replies import reply_for
from gateway.ingest import IngestPipeline, Upload
from gateway.logsafe import printable
from gateway.transferlog import log_transfer, session_id

log = logging.getLogger("cam2drive.ftp")

# how a data connection ends when the peer did not close it: not an end of file
_BROKEN = {errno.ECONNRESET, errno.ECONNABORTED, errno.ETIMEDOUT}


class Authorizer:
    """The little of pyftpdlib's authorizer interface its base handler still calls.

    Logins themselves are checked in `ftp_PASS` through gateway/auth.py.
    """

    def has_perm(self, username: str, perm: str, path: str | None = None) -> bool:
        return True

    def get_perms(self, username: str) -> str:
        return "elradfmw"

    def get_msg_quit(self, username: str) -> str:
        return "Goodbye."

    def impersonate_user(self, username: str, password: str) -> None:
        pass

    def terminate_impersonation(self, username: str) -> None:
        pass


class _LoopWrites:
    """A receiving data channel's file object: pyftpdlib writes each chunk it
    reads here (plain and TLS alike), and the channel decides whether the
    Upload takes it on the loop or off it."""

    def __init__(self, channel: DurableDTPMixin, upload: Upload) -> None:
        self.channel = channel
        self.upload = upload
        self.name = upload.name

    @property
    def closed(self) -> bool:
        return self.upload.closed

    def write(self, chunk: bytes) -> None:
        self.channel._write(self.upload, chunk)

    def close(self) -> None:
        self.upload.close()


class DurableDTPMixin(DataChannel):
    """Data channel that acknowledges an upload only once it is durable.

    pyftpdlib closes the file object and then sends 226. Here a finished
    upload is first committed (S3 complete + index) on the pool, and the
    reply becomes the commit's outcome; every other ending aborts the
    upload. A chunk whose write would wait (`Upload.write_waits`: the
    first bytes of a clip reserve its size, a full stream pipe, a part for
    S3) stops the channel reading until it is taken, so TCP slows the
    recorder and the loop serves everyone else meanwhile.
    """

    # Up to 256 KiB a read, not pyftpdlib's 64 KiB: a loop event per read, and
    # the loop is shared by every session (a clip's tail waited its turn
    # four times as often; BENCHMARKS.md, fleet).
    ac_in_buffer_size = 256 * 1024
    _reset = False  # the peer reset the data connection instead of closing it
    _upload: Upload | None = None
    _busy = False  # a write or the commit is off the loop
    _close_pending = False  # close() came while busy: done when it ends
    cmd_channel: GatewayMixin

    def enable_receiving(self, type: str, cmd: str) -> None:
        super().enable_receiving(type, cmd)
        upload = self.file_obj
        if isinstance(upload, Upload):
            self._upload = upload
            self.file_obj = _LoopWrites(self, upload)
            calls = self.cmd_channel.offload.calls
            upload.on_stall = lambda err: calls.call_soon(self._stalled, upload, err)

    def _stalled(self, upload: Upload, err: Cam2DriveError) -> None:
        """The upload took no data for the stall limit (gateway/leases.py):
        451, and close() aborts it, which gives its reservation back. A step
        off the loop meanwhile fails by itself with the same error. The
        control connection stays: the recorder may send the file again."""
        if self._closed or self._busy or upload is not self._upload:
            return
        self._resp = (reply_for(err), ftplog.warning)
        self.close()

    def _write(self, upload: Upload, chunk: bytes) -> None:
        wait = upload.write_waits(len(chunk))
        if wait is None:
            upload.write(chunk)
            return
        self._busy = True
        self.del_channel()
        offload: Offload = self.cmd_channel.offload
        if wait == "room":
            upload.when_room(lambda: offload.calls.call_soon(self._room, upload, chunk))
        else:
            offload.run(lambda: upload.write(chunk), self._written)

    def _room(self, upload: Upload, chunk: bytes) -> None:
        """The stream's pipe has room: write the chunk that waited for it."""
        if self._unbusy():
            return
        try:
            self._write(upload, chunk)
        except Exception:
            self.handle_error()
            return
        if not self._busy:
            self._read_on()

    def _written(self, ok: bool, value: Any) -> None:
        if self._unbusy():
            return
        if not ok:
            try:
                raise value
            except Exception:
                self.handle_error()
            return
        self._read_on()

    def _unbusy(self) -> bool:
        """The step off the loop ended. True if the channel is closed now (a
        close() that came during the step runs here)."""
        self._busy = False
        if self._close_pending:
            self._close_pending = False
            self.close()
            return True
        return self._closed

    def _read_on(self) -> None:
        if self._closed:
            return
        self.add_channel(events=self.ioloop.READ)
        pending = getattr(self.socket, "pending", None)
        if pending is not None and pending():  # TLS bytes already decrypted: no poll event
            self.ioloop.call_later(
                0,
                self.handle_read_event,
                _errback=self.handle_error,
            )

    def handle_close(self) -> None:
        # pyftpdlib calls this from inside its `except OSError` when the
        # connection breaks, and outside any exception for a clean end of data:
        # only the clean end may mark the end of a file
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError) and exc.errno in _BROKEN:
            self._reset = True
        super().handle_close()

    def close(self) -> None:
        if self._busy:
            self._close_pending = True
            return
        upload = self._upload
        if not self._closed and self.receive and upload is not None and not upload.closed:
            resp = self._resp
            if self.transfer_finished and resp and resp[0].startswith("226"):
                self._commit(upload)
                return
            upload.closed = True  # aborted off the loop: abort() may wait on S3
            self.cmd_channel.offload.fire(upload.abort, f"abort of {upload.name}")
        super().close()

    def _commit(self, upload: Upload) -> None:
        """Commit on the pool, the session quiet meanwhile; then close with its reply."""
        self._busy = True
        self.del_channel()
        if self._idler is not None and not self._idler.cancelled:
            self._idler.cancel()
        control = self.cmd_channel
        control._pause()

        def then(ok: bool, resp: Any) -> None:
            self._busy = self._close_pending = False
            if not ok:  # _finish answers every failure itself
                log.error("commit of %s failed", printable(upload.name), exc_info=resp)
                resp = ("451 Internal error; file not stored, retry later.", ftplog.error)
            self._resp = resp if not control._closed else None
            control._resume()
            super(DurableDTPMixin, self).close()

        control.offload.run(lambda: self._finish(upload), then)

    def _finish(self, upload: Upload) -> tuple[str, Any]:
        problem = self.cmd_channel.incomplete_reason(upload, reset=self._reset)
        if problem:
            upload.abort()
            log.info("upload of %s aborted: %s", printable(upload.name), problem)
            return (f"426 Transfer aborted: {problem}; file not stored.", ftplog.info)
        try:
            upload.commit()
        except Cam2DriveError as err:
            return (reply_for(err), ftplog.warning)
        except Exception:
            log.exception("commit of %s failed", printable(upload.name))
            upload.abort()
            return ("451 Internal error; file not stored, retry later.", ftplog.error)
        return (f"226 Transfer complete: {upload.size} bytes stored.", ftplog.debug)

    def handle_error(self) -> None:
        try:
            raise  # noqa: PLE0704  (the exception pyftpdlib is handling)
        except Cam2DriveError as err:
            self._resp = (reply_for(err), ftplog.warning)
            self.close()
        except Exception:
            super().handle_error()


class DurableDTPHandler(DurableDTPMixin, DTPHandler):
    pass


# Commands the gateway cannot honour, left out of the command table so that
# FEAT never advertises them (pyftpdlib lists MFMT when the table has it);
# the client gets pyftpdlib's "500 Command not understood".
UNSUPPORTED = ("MFMT",)


def no_fs_perm(cmds: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Pass raw path arguments through: DriveView judges them, not AbstractedFS.
    Commands in UNSUPPORTED are left out."""
    return {name: dict(spec, perm=None) for name, spec in cmds.items() if name not in UNSUPPORTED}


class GatewayMixin(PassiveRetryMixin):
    """Everything cam2drive changes in pyftpdlib's FTPHandler."""

    # set per server by gateway/ftp/server.py
    pipeline: IngestPipeline
    authenticator: Authenticator
    offload: Offload
    fallback_encoding: str | None = "gb18030"
    eof_grace: float = 0.03
    transfer_log_format: Literal["text", "json"] = "text"
    admission: Admission
    login_timeout: float = 30.0

    banner = "cam2drive FTP gateway ready."
    authorizer = Authorizer()
    passive_dtp = PassiveListener
    proto_cmds = no_fs_perm(FTPHandler.proto_cmds)
    # A recorder CWDs through seven levels before every file: logging each
    # CWD is most of the log and none of the news. MKD, renames and deletes stay.
    log_cmds_list = [c for c in FTPHandler.log_cmds_list if c not in ("CWD", "XCWD")]
    fs: DriveView
    data_channel: DurableDTPMixin | None

    # --- connection and decoding -------------------------------------------

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._queued: list[bytes] = []  # commands held while a step is off the loop
        self.session = session_id()
        self._allo: int | None = None
        self._refusal: str | None = None
        self._ticket: Ticket | None = None
        self._login_timer: Any = None
        super().__init__(*args, **kwargs)

    def handle(self) -> None:
        """Greet, or refuse with 421 a connection the admission gate turns away
        (gateway/admission.py) or a banned address (the ban is read off the loop)."""
        ip = self.remote_ip
        try:
            self._ticket = self.admission.admit(ip, self._evicted)
        except Refused as err:
            self._refusal = f"421 {str(err).capitalize()}."
            self.respond(self._refusal)
            self.close_when_done()
            return
        self._login_timer = self.ioloop.call_later(
            self.login_timeout, self._login_expired, _errback=self.handle_error
        )

        def check() -> Cam2DriveError | None:
            try:
                self.authenticator.check_ban(ip)
            except Cam2DriveError as err:
                return err
            return None

        def then(refusal: Cam2DriveError | None) -> None:
            if refusal is None:
                super(GatewayMixin, self).handle()
                return
            self._refusal = reply_for(refusal, "421")
            self.respond(self._refusal)
            self.close_when_done()

        self._step("", "", check, then)

    def _evicted(self) -> None:
        """Closed to make room for a newcomer (gateway/admission.py)."""
        self.respond("421 Too many connections waiting to log in; closing the oldest.")
        self.close()

    def _login_expired(self) -> None:
        """No login within login_timeout: the slot goes back to the pool."""
        if not self.authenticated and not self._closed:
            self.respond("421 Login timed out.")
            self.close_when_done()

    def close(self) -> None:
        """As pyftpdlib's (which aborts an unfinished upload), then the view's end."""
        view = getattr(self, "fs", None)
        if self._login_timer is not None and not self._login_timer.cancelled:
            self._login_timer.cancel()
        if self._ticket is not None:
            self.admission.leave(self._ticket)
        super().close()
        if isinstance(view, DriveView):
            self.offload.fire(view.close, "closing an FTP session's drive view")

    # --- steps that wait, off the loop -------------------------------------

    _paused = False

    def _step(
        self,
        cmd: str,
        arg: str,
        work: Callable[[], Any],
        done: Callable[[Any], None],
        *,
        now: bool = False,
        discard: Callable[[Any], None] | None = None,
    ) -> None:
        """Run a command's `work()`, then reply with `done(result)`.

        `now`: `work` is answered from the session's own state (its folder
        cache, its entitlement) and runs on the loop. Otherwise it runs on
        the pool while the session reads no further command; a
        Cam2DriveError becomes its reply. `discard` gets the result of work
        that finished after the session closed (an upload to abort).
        """
        if now:
            try:
                result = work()
            except Cam2DriveError as err:
                return self.reply_error(err)
            return done(result)
        self._pause()

        def then(ok: bool, value: Any) -> None:
            if self._closed:
                if ok and discard is not None and value is not None:
                    discard(value)
                return
            self._resume()
            self._last_response = ""
            try:
                if ok:
                    done(value)
                elif isinstance(value, Cam2DriveError):
                    self.reply_error(value)
                else:
                    raise value
            except Exception:
                self.handle_error()  # (logged; session closed)
                return
            if cmd and self._last_response:
                resp = self._last_response
                self.log_cmd(cmd, arg, int(resp[:3]), resp[4:])

        self.offload.run(work, then)

    def _pause(self) -> None:
        """Read no more from the client until `_resume` (a step is off the loop)."""
        if not self._paused:
            self._paused = True
            self.del_channel()

    def _resume(self) -> None:
        if not self._paused or self._closed:
            return
        self._paused = False
        loop = self.ioloop
        self.add_channel(events=loop.READ | (loop.WRITE if self.writable() else 0))
        if self._queued:  # after this step's reply, which the caller sends now
            loop.call_later(0, self._run_queued, _errback=self.handle_error)

    def _run_queued(self) -> None:
        """Commands a client sent without waiting for the previous reply."""
        while self._queued and not self._paused and not self._closed:
            self._command(self._queued.pop(0))

    def pre_process_command(self, line: str, cmd: str, arg: str) -> None:
        if self._refusal:
            self.respond(self._refusal)
            self.close_when_done()
            return
        super().pre_process_command(line, cmd, arg)

    def found_terminator(self) -> None:
        """As pyftpdlib's, but decoding with our fallback and a clear 501, and
        holding commands that arrive while a step of the session is off the loop."""
        if self._idler is not None and not self._idler.cancelled:
            self._idler.reset()
        raw = b"".join(self._in_buffer)
        self._in_buffer = []
        self._in_buffer_len = 0
        if self._paused or self._queued:
            self._queued.append(raw)
            return
        self._command(raw)

    def _command(self, raw: bytes) -> None:
        try:
            line = paths.decode_client_bytes(raw, self.fallback_encoding)
        except InvalidPath as err:
            self.respond(f"501 Command refused: {err}.")
            return
        cmd = line.split(" ")[0].upper()
        self.pre_process_command(line, cmd, line[len(cmd) + 1 :])

    def reply_error(self, err: Cam2DriveError) -> None:
        self.respond(reply_for(err))

    # --- login --------------------------------------------------------------

    def ftp_PASS(self, line: str) -> None:
        if self.authenticated:
            self.respond("503 User already authenticated.")
            return
        if not self.username:
            self.respond("503 Login with USER first.")
            return
        user, ip = self.username, self.remote_ip

        def check() -> tuple[Login | None, str | Cam2DriveError]:
            """The login and its greeting, or the refusal (never raised: each
            kind of refusal has its own reply below)."""
            try:
                login = self.authenticator.authenticate(user, line, ip)
            except (Banned, AuthFailed, StorageUnavailable) as err:
                return None, err
            return login, login_notice(self.pipeline.engine, login)

        def then(outcome: tuple[Login | None, str | Cam2DriveError]) -> None:
            login, msg = outcome
            if login is not None:
                return self._login_ok(login, line, str(msg))
            if isinstance(msg, AuthFailed):
                return self.handle_auth_failed(str(msg), line)
            assert isinstance(msg, Cam2DriveError)  # check() pairs no login with its refusal
            self.respond(reply_for(msg, "421"))
            self.close_when_done()

        self._step("PASS", "******", check, then)

    # --- logging: every line through printable (the user name and command
    # arguments in it are client-sent), transfers with their real outcome

    def log(self, msg: str, logfun: Callable[[str], None] = ftplog.info) -> None:
        logfun(printable(f"{self.log_prefix % self.__dict__} {msg}"))

    def logline(self, msg: str, logfun: Callable[[str], None] = ftplog.debug) -> None:
        if self._log_debug:
            logfun(printable(f"{self.log_prefix % self.__dict__} {msg}"))

    def logerror(self, msg: str) -> None:
        ftplog.error(printable(f"{self.log_prefix % self.__dict__} {msg}"))

    def log_transfer(
        self,
        cmd: str | None,
        filename: str | None,
        receive: bool,
        completed: bool,
        elapsed: float,
        bytes: int,  # noqa: A002  (pyftpdlib's keyword)
    ) -> None:
        """The transfer's final reply as its outcome (pyftpdlib logged
        `completed=1` for an upload then refused with 451, and `None` as the
        command of every download)."""
        reply = self._last_response
        if not reply or reply[0] == "1":  # no final reply: the client went away first
            reply = "aborted: the connection closed before the transfer ended"
        log_transfer(
            form=self.transfer_log_format,
            protocol="ftp",
            session=self.session,
            user=self.username,
            ip=self.remote_ip,
            op=cmd or ("STOR" if receive else "RETR"),
            path=filename or "",
            nbytes=bytes,
            ms=int(elapsed * 1000),
            outcome=reply,
        )

    def _login_ok(self, login: Login, password: str, msg: str) -> None:
        self.respond(f"230 {msg}")
        self.log(f"USER '{self.username}' logged in.")
        self.authenticated = True
        self.password = ""
        self.attempted_logins = 0
        self.fs = DriveView(self.pipeline, login)
        if self._login_timer is not None:
            self._login_timer.cancel()
        if self._ticket is not None:
            self.admission.logged_in(self._ticket)
        self.on_login(self.username)

    # --- navigation ---------------------------------------------------------

    def ftp_PWD(self, line: str) -> None:
        cwd = self.fs.cwd_display.replace('"', '""')
        self.respond(f'257 "{cwd}" is the current directory.')

    def ftp_CWD(self, path: str) -> None:
        path = path or "/"
        self._step(
            "CWD",
            path,
            lambda: self.fs.chdir(path),
            lambda cwd: self.respond(f'250 "{cwd}" is the current directory.'),
            now=self._known(path),
        )

    def _known(self, path: str) -> bool:
        """True if `path` can be judged without the database (a cached
        folder, or a path refused on its face)."""
        try:
            return self.fs.known(path) is not None
        except Cam2DriveError:
            return True

    def ftp_CDUP(self, path: str) -> None:
        """The root's parent is the root, as on any Unix server (a CWD outside is refused)."""
        self.ftp_CWD(".." if self.fs.cwd else "/")

    ftp_XCUP = ftp_CDUP

    # --- namespace ----------------------------------------------------------

    def ftp_MKD(self, path: str) -> None:
        def made(outcome: tuple[str, bool]) -> None:
            shown, created = outcome
            quoted = shown.replace('"', '""')
            note = "created" if created else "already exists"
            self.respond(f'257 "{quoted}" {note}.')

        self._step("MKD", path, lambda: self.fs.mkdir(path), made)

    def ftp_RMD(self, path: str) -> None:
        self._step(
            "RMD",
            path,
            lambda: self.fs.rmdir(path),
            lambda _: self.respond("250 Directory removed."),
        )

    def ftp_DELE(self, path: str) -> None:
        self._step(
            "DELE", path, lambda: self.fs.remove(path), lambda _: self.respond("250 File removed.")
        )

    def ftp_RNFR(self, path: str) -> None:
        def ready(_: object) -> None:
            self._rnfr = self.fs.resolve(path)
            self.respond("350 Ready for destination name.")

        self._step("RNFR", path, lambda: self.fs.stat(path), ready)

    def ftp_RNTO(self, path: str) -> None:
        if not self._rnfr:
            self.respond("503 Bad sequence of commands: use RNFR first.")
            return
        src, self._rnfr = self._rnfr, None
        self._step(
            "RNTO",
            path,
            lambda: self.fs.rename("/" + src, path),
            lambda _: self.respond("250 Renaming ok."),
        )

    # --- information --------------------------------------------------------

    def _regular_file(self, cmd: str, path: str, reply: Callable[[Entry], str]) -> None:
        """Reply `reply(entry)` about a file, or why there is none."""

        def then(entry: Entry) -> None:
            if entry.is_dir:
                self.respond(f"550 {paths.display(entry.path)} is not a regular file.")
            else:
                self.respond(reply(entry))

        self._step(cmd, path, lambda: self.fs.stat(path), then)

    def ftp_SIZE(self, path: str) -> None:
        self._regular_file("SIZE", path, lambda e: f"213 {e.size}")

    def ftp_MDTM(self, path: str) -> None:
        self._regular_file("MDTM", path, lambda e: f"213 {e.mtime.strftime('%Y%m%d%H%M%S')}")

    def _listing_arg(self, arg: str) -> str:
        """`LIST -la` and friends: some clients pass ls flags; they mean the cwd."""
        words = [w for w in arg.split(" ") if w]
        while words and words[0].startswith("-"):
            words.pop(0)
        return " ".join(words)

    def ftp_LIST(self, path: str) -> None:
        def send(listing: list[Entry]) -> None:
            producer = BufferedIteratorProducer(list_lines(listing, self.fs.login.writable))
            self.push_dtp_data(producer, isproducer=True, cmd="LIST")

        arg = self._listing_arg(path)
        self._step("LIST", path, lambda: self.fs.listdir(arg), send)

    def ftp_NLST(self, path: str) -> None:
        def send(listing: list[Entry]) -> None:
            data = "".join(f"{e.name}\r\n" for e in listing).encode("utf-8")
            self.push_dtp_data(data, cmd="NLST")

        arg = self._listing_arg(path)
        self._step("NLST", path, lambda: self.fs.listdir(arg), send)

    def ftp_MLSD(self, path: str) -> None:
        def read() -> list[Entry] | None:
            if not self.fs.stat(path).is_dir:
                return None
            return self.fs.listdir(path)

        def send(listing: list[Entry] | None) -> None:
            if listing is None:
                self.respond("501 Not a directory.")
                return
            producer = BufferedIteratorProducer(mlsd_lines(listing, self.fs.login.writable))
            self.push_dtp_data(producer, isproducer=True, cmd="MLSD")

        self._step("MLSD", path, read, send)

    def ftp_MLST(self, path: str) -> None:
        def send(entry: Entry) -> None:
            shown = paths.display(entry.path)
            self.push(f'250-Listing "{shown}":\r\n')
            self.push(f" {mlsx_facts(entry, self.fs.login.writable)} {shown}\r\n")
            self.respond("250 End MLST.")

        self._step("MLST", path, lambda: self.fs.stat(path), send)

    def ftp_STAT(self, path: str) -> None:
        if not path:
            return super().ftp_STAT(path)

        def send(listing: list[Entry]) -> None:
            self.push(f"213-Status of {path}:\r\n")
            for line in list_lines(listing, self.fs.login.writable):
                self.push(" " + line.decode("utf-8"))
            self.respond("213 End of status.")

        self._step("STAT", path, lambda: self.fs.listdir(path), send)

    # --- transfers ----------------------------------------------------------

    def ftp_ALLO(self, line: str) -> None:
        """Remember the announced size: 200 (a Dahua firmware drops on 202), or
        501 for what is no size (`ALLO -5`), which changes nothing."""
        size = line.split(" ")[0] if line else ""
        if not (size.isascii() and size.isdigit()):
            self._allo = None
            self.respond("501 ALLO needs a size in bytes (a whole number, 0 or more).")
            return
        self._allo = int(size)
        self.respond("200 ALLO command successful.")

    def ftp_STOR(self, file: str, mode: str = "w") -> None:
        rest, self._restart_position = self._restart_position, 0
        expected, self._allo = self._allo, None
        if rest:
            self.respond("554 Resuming an upload is not supported; send the whole file again.")
            return

        def opened(upload: Upload) -> None:
            upload.expected_size = expected
            if self.data_channel is not None:
                self.respond("125 Data connection already open. Transfer starting.")
                self.data_channel.file_obj = upload
                self.data_channel.enable_receiving(self._current_type, "STOR")
            else:
                self.respond("150 File status okay. About to open data connection.")
                self._in_dtp_queue = (upload, "STOR")

        self._step(
            "STOR",
            file,
            lambda: self.fs.open_write(file, expected),
            opened,
            now=self.fs.writes_known(file),
            discard=Upload.abort,
        )

    def ftp_APPE(self, file: str) -> None:
        self._restart_position = 0
        self.respond(
            "502 APPE is not supported: stored recordings cannot be appended to; upload a new file."
        )

    def ftp_STOU(self, line: str) -> None:
        self.respond("502 STOU is not supported; use STOR with a file name.")

    def ftp_SITE_CHMOD(self, path: str, mode: str = "") -> None:
        self.respond("502 SITE CHMOD is not supported.")

    def ftp_RETR(self, file: str) -> None:
        rest, self._restart_position = self._restart_position, 0

        def open_() -> Download | str:
            try:
                return self.fs.open_read(file, rest)
            except InvalidPath as err:
                if rest:
                    return f"554 {err}."
                raise

        def send(download: Download | str) -> None:
            if isinstance(download, str):
                self.respond(download)
                return
            producer = ReadAhead(download, ascii_mode=self._current_type == "a")
            self.push_dtp_data(producer, isproducer=True, file=producer, cmd="RETR")

        self._step("RETR", file, open_, send, discard=Download.close)

    # --- "ack means durable" helpers ------------------------------------------

    def incomplete_reason(self, upload: Upload, reset: bool = False) -> str | None:
        """Why a data stream that ended must not be committed, or None.

        In FTP stream mode the end of a file is the client closing the data
        connection, which a killed client also does. If the client announced
        the size (ALLO, as Dahua firmwares do), the count decides. Otherwise
        a data connection reset (RST) instead of closed is a broken transfer,
        and a control connection closed by the peer means the client died
        mid-transfer; the kernel of a killed client may close its data socket
        a moment before its control socket, so we watch the control
        connection for `eof_grace` seconds before trusting the end of data.
        """
        expected = getattr(upload, "expected_size", None)
        if expected is not None:
            if upload.size != expected:
                return f"received {upload.size} of the {expected} bytes announced by ALLO"
            return None
        if reset:  # a reset, not a close: the client did not say the file was done
            return "the data connection was reset before the end of the file"
        if not self._control_alive(self.eof_grace):
            return "the client closed the control connection before the transfer completed"
        return None

    def _control_alive(self, grace: float) -> bool:
        try:
            fd = self.socket.fileno()
            with socket.socket(fileno=os.dup(fd)) as probe:
                # poll, not select: a node with more than 1 024 descriptors (a flood of
                # idle sockets) gets "filedescriptor out of range" from select()
                poller = select.poll()
                poller.register(probe, select.POLLIN | select.POLLPRI)
                if grace > 0 and not poller.poll(grace * 1000):
                    return True  # nothing arrived: the client is waiting for our reply
                probe.setblocking(False)
                return probe.recv(1, socket.MSG_PEEK) != b""
        except BlockingIOError:
            return True
        except OSError:
            return False


class GatewayFTPHandler(GatewayMixin, FTPHandler):
    dtp_handler = DurableDTPHandler
