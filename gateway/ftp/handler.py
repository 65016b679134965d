"""The FTP frontend: pyftpdlib handlers over the shared drive view.

pyftpdlib gives us the protocol engine (command parsing, PASV/EPSV/PORT,
TLS, the data channel); every filesystem command is re-implemented here
over `DriveView` so that its reply is precise and the rule behind it lives
in one place for FTP and SFTP alike. Runs under pyftpdlib's threaded server:
each session has its own thread, so the blocking S3 and database calls of
the pipeline only ever stall the session that made them.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import sys
from typing import Any

from pyftpdlib.handlers import DTPHandler, FTPHandler
from pyftpdlib.handlers.ftp.producers import BufferedIteratorProducer, FileProducer
from pyftpdlib.log import logger as ftplog

from billing.entitlement import upload_entitlement
from billing.errors import Cam2DriveError, InvalidPath, NotEntitled, StorageUnavailable
from gateway import paths
from gateway.auth import Authenticator, AuthFailed, Banned
from gateway.drive import DriveView, Login
from gateway.ftp.listing import list_lines, mlsd_lines, mlsx_facts
from gateway.ftp.passive import PassiveListener, PassiveRetryMixin
from gateway.ftp.replies import reply_for
from gateway.ingest import IngestPipeline, Upload

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


class DurableDTPMixin:
    """Data channel that acknowledges an upload only once it is durable.

    pyftpdlib closes the file object and then sends 226. Here a finished
    upload is first committed (S3 complete + index) and the reply becomes
    the commit's outcome; every other ending aborts the upload.
    """

    _reset = False  # the peer reset the data connection instead of closing it

    def handle_close(self) -> None:
        # pyftpdlib calls this from inside its `except OSError` when the
        # connection breaks, and outside any exception for a clean end of data:
        # only the clean end may mark the end of a file
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError) and exc.errno in _BROKEN:
            self._reset = True
        super().handle_close()  # type: ignore[misc]

    def close(self) -> None:
        upload = self.file_obj  # type: ignore[attr-defined]
        if (not self._closed and self.receive  # type: ignore[attr-defined]
                and isinstance(upload, Upload) and not upload.closed):
            resp = self._resp  # type: ignore[attr-defined]
            if self.transfer_finished and resp and resp[0].startswith("226"):  # type: ignore[attr-defined]
                self._resp = self._finish(upload)
            else:
                upload.abort()
        super().close()  # type: ignore[misc]

    def _finish(self, upload: Upload) -> tuple[str, Any]:
        problem = self.cmd_channel.incomplete_reason(  # type: ignore[attr-defined]
            upload, reset=self._reset)
        if problem:
            upload.abort()
            log.info("upload of %s aborted: %s", upload.name, problem)
            return (f"426 Transfer aborted: {problem}; file not stored.", ftplog.info)
        try:
            upload.commit()
        except Cam2DriveError as err:
            return (reply_for(err), ftplog.warning)
        except Exception:
            log.exception("commit of %s failed", upload.name)
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
            super().handle_error()  # type: ignore[misc]


class DurableDTPHandler(DurableDTPMixin, DTPHandler):
    pass


def no_fs_perm(cmds: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Pass raw path arguments through: DriveView judges them, not AbstractedFS."""
    return {name: dict(spec, perm=None) for name, spec in cmds.items()}


class GatewayMixin(PassiveRetryMixin):
    """Everything cam2drive changes in pyftpdlib's FTPHandler."""

    # set per server by gateway/ftp/server.py
    pipeline: IngestPipeline
    authenticator: Authenticator
    fallback_encoding: str | None = "gb18030"
    eof_grace: float = 0.03

    banner = "cam2drive FTP gateway ready."
    authorizer = Authorizer()
    passive_dtp = PassiveListener
    proto_cmds = no_fs_perm(FTPHandler.proto_cmds)
    # A recorder CWDs through seven levels before every file: logging each
    # CWD is most of the log and none of the news. MKD, renames and deletes stay.
    log_cmds_list = [c for c in FTPHandler.log_cmds_list if c not in ("CWD", "XCWD")]
    fs: DriveView

    # --- connection and decoding -------------------------------------------

    def handle(self) -> None:
        """Greet, or refuse a banned address with 421.

        The refused session is closed by the client or at its first command:
        closing here, before pyftpdlib registers the socket in the session's
        thread, would race with that registration.
        """
        self._allo: int | None = None
        self._refusal: str | None = None
        try:
            self.authenticator.check_ban(self.remote_ip)  # type: ignore[attr-defined]
        except Cam2DriveError as err:
            self._refusal = reply_for(err, "421")
            self.respond(self._refusal)  # type: ignore[attr-defined]
            return
        super().handle()  # type: ignore[misc]

    def close(self) -> None:
        """As pyftpdlib's (which aborts an unfinished upload), then the view's end."""
        view = getattr(self, "fs", None)
        super().close()  # type: ignore[misc]
        if isinstance(view, DriveView):
            view.close()

    def pre_process_command(self, line: str, cmd: str, arg: str) -> None:
        if self._refusal:
            self.respond(self._refusal)  # type: ignore[attr-defined]
            self.close_when_done()  # type: ignore[attr-defined]
            return
        super().pre_process_command(line, cmd, arg)  # type: ignore[misc]

    def found_terminator(self) -> None:
        """As pyftpdlib's, but decoding with our fallback and a clear 501."""
        if self._idler is not None and not self._idler.cancelled:  # type: ignore[attr-defined]
            self._idler.reset()  # type: ignore[attr-defined]
        raw = b"".join(self._in_buffer)  # type: ignore[attr-defined]
        self._in_buffer = []
        self._in_buffer_len = 0
        try:
            line = paths.decode_client_bytes(raw, self.fallback_encoding)
        except InvalidPath as err:
            self.respond(f"501 Command refused: {err}.")  # type: ignore[attr-defined]
            return
        cmd = line.split(" ")[0].upper()
        self.pre_process_command(line, cmd, line[len(cmd) + 1:])  # type: ignore[attr-defined]

    def reply_error(self, err: Cam2DriveError) -> None:
        self.respond(reply_for(err))  # type: ignore[attr-defined]

    # --- login --------------------------------------------------------------

    def ftp_PASS(self, line: str) -> None:
        if self.authenticated:  # type: ignore[attr-defined]
            self.respond("503 User already authenticated.")  # type: ignore[attr-defined]
            return
        if not self.username:  # type: ignore[attr-defined]
            self.respond("503 Login with USER first.")  # type: ignore[attr-defined]
            return
        try:
            login = self.authenticator.authenticate(self.username, line, self.remote_ip)  # type: ignore[attr-defined]
        except Banned as err:
            self.respond(reply_for(err, "421"))  # type: ignore[attr-defined]
            self.close_when_done()  # type: ignore[attr-defined]
            return
        except AuthFailed as err:
            self.handle_auth_failed(str(err), line)  # type: ignore[attr-defined]
            return
        except StorageUnavailable as err:
            self.respond(reply_for(err, "421"))  # type: ignore[attr-defined]
            self.close_when_done()  # type: ignore[attr-defined]
            return
        msg = "Login successful."
        if login.kind == "viewer":
            msg = "Login successful (read-only: one folder per device)."
        else:
            try:
                upload_entitlement(self.pipeline.engine, login.device_id)  # type: ignore[arg-type]
            except NotEntitled as err:
                msg = f"Login successful, but {err}."
            except Cam2DriveError:
                pass
        self._login_ok(login, line, msg)

    def _login_ok(self, login: Login, password: str, msg: str) -> None:
        self.respond(f"230 {msg}")  # type: ignore[attr-defined]
        self.log(f"USER '{self.username}' logged in.")  # type: ignore[attr-defined]
        self.authenticated = True
        self.password = ""
        self.attempted_logins = 0
        self.fs = DriveView(self.pipeline, login)
        self.on_login(self.username)  # type: ignore[attr-defined]

    # --- navigation ---------------------------------------------------------

    def ftp_PWD(self, line: str) -> None:
        cwd = self.fs.cwd_display.replace('"', '""')
        self.respond(f'257 "{cwd}" is the current directory.')  # type: ignore[attr-defined]

    def ftp_CWD(self, path: str) -> None:
        try:
            cwd = self.fs.chdir(path or "/")
        except Cam2DriveError as err:
            return self.reply_error(err)
        self.respond(f'250 "{cwd}" is the current directory.')  # type: ignore[attr-defined]

    def ftp_CDUP(self, path: str) -> None:
        """The root's parent is the root, as on any Unix server (a CWD outside is refused)."""
        self.ftp_CWD(".." if self.fs.cwd else "/")

    ftp_XCUP = ftp_CDUP

    # --- namespace ----------------------------------------------------------

    def ftp_MKD(self, path: str) -> None:
        try:
            shown, created = self.fs.mkdir(path)
        except Cam2DriveError as err:
            return self.reply_error(err)
        quoted = shown.replace('"', '""')
        note = "created" if created else "already exists"
        self.respond(f'257 "{quoted}" {note}.')  # type: ignore[attr-defined]

    def ftp_RMD(self, path: str) -> None:
        try:
            self.fs.rmdir(path)
        except Cam2DriveError as err:
            return self.reply_error(err)
        self.respond("250 Directory removed.")  # type: ignore[attr-defined]

    def ftp_DELE(self, path: str) -> None:
        try:
            self.fs.remove(path)
        except Cam2DriveError as err:
            return self.reply_error(err)
        self.respond("250 File removed.")  # type: ignore[attr-defined]

    def ftp_RNFR(self, path: str) -> None:
        try:
            self.fs.stat(path)
            self._rnfr = self.fs.resolve(path)
        except Cam2DriveError as err:
            return self.reply_error(err)
        self.respond("350 Ready for destination name.")  # type: ignore[attr-defined]

    def ftp_RNTO(self, path: str) -> None:
        if not self._rnfr:
            self.respond("503 Bad sequence of commands: use RNFR first.")  # type: ignore[attr-defined]
            return
        src, self._rnfr = self._rnfr, None
        try:
            self.fs.rename("/" + src, path)
        except Cam2DriveError as err:
            return self.reply_error(err)
        self.respond("250 Renaming ok.")  # type: ignore[attr-defined]

    # --- information --------------------------------------------------------

    def _regular_file(self, path: str) -> Any:
        """The entry of a file, or None after replying with the reason."""
        try:
            entry = self.fs.stat(path)
        except Cam2DriveError as err:
            return self.reply_error(err)
        if entry.is_dir:
            self.respond(f"550 {paths.display(entry.path)} is not a regular file.")  # type: ignore[attr-defined]
            return None
        return entry

    def ftp_SIZE(self, path: str) -> None:
        entry = self._regular_file(path)
        if entry is not None:
            self.respond(f"213 {entry.size}")  # type: ignore[attr-defined]

    def ftp_MDTM(self, path: str) -> None:
        entry = self._regular_file(path)
        if entry is not None:
            self.respond(f"213 {entry.mtime.strftime('%Y%m%d%H%M%S')}")  # type: ignore[attr-defined]

    def _listing_arg(self, arg: str) -> str:
        """`LIST -la` and friends: some clients pass ls flags; they mean the cwd."""
        words = [w for w in arg.split(" ") if w]
        while words and words[0].startswith("-"):
            words.pop(0)
        return " ".join(words)

    def ftp_LIST(self, path: str) -> None:
        try:
            listing = self.fs.listdir(self._listing_arg(path))
        except Cam2DriveError as err:
            return self.reply_error(err)
        producer = BufferedIteratorProducer(list_lines(listing, self.fs.login.writable))
        self.push_dtp_data(producer, isproducer=True, cmd="LIST")  # type: ignore[attr-defined]

    def ftp_NLST(self, path: str) -> None:
        try:
            listing = self.fs.listdir(self._listing_arg(path))
        except Cam2DriveError as err:
            return self.reply_error(err)
        data = "".join(f"{e.name}\r\n" for e in listing).encode("utf-8")
        self.push_dtp_data(data, cmd="NLST")  # type: ignore[attr-defined]

    def ftp_MLSD(self, path: str) -> None:
        try:
            entry = self.fs.stat(path)
            if not entry.is_dir:
                self.respond("501 Not a directory.")  # type: ignore[attr-defined]
                return
            listing = self.fs.listdir(path)
        except Cam2DriveError as err:
            return self.reply_error(err)
        producer = BufferedIteratorProducer(mlsd_lines(listing, self.fs.login.writable))
        self.push_dtp_data(producer, isproducer=True, cmd="MLSD")  # type: ignore[attr-defined]

    def ftp_MLST(self, path: str) -> None:
        try:
            entry = self.fs.stat(path)
        except Cam2DriveError as err:
            return self.reply_error(err)
        shown = paths.display(entry.path)
        self.push(f'250-Listing "{shown}":\r\n')  # type: ignore[attr-defined]
        self.push(f" {mlsx_facts(entry, self.fs.login.writable)} {shown}\r\n")  # type: ignore[attr-defined]
        self.respond("250 End MLST.")  # type: ignore[attr-defined]

    def ftp_STAT(self, path: str) -> None:
        if not path:
            return super().ftp_STAT(path)  # type: ignore[misc]
        try:
            listing = self.fs.listdir(path)
        except Cam2DriveError as err:
            return self.reply_error(err)
        self.push(f"213-Status of {path}:\r\n")  # type: ignore[attr-defined]
        for line in list_lines(listing, self.fs.login.writable):
            self.push(" " + line.decode("utf-8"))  # type: ignore[attr-defined]
        self.respond("213 End of status.")  # type: ignore[attr-defined]

    # --- transfers ----------------------------------------------------------

    def ftp_ALLO(self, line: str) -> None:
        """Remember the announced size; always 200 (a Dahua firmware drops on 202)."""
        size = line.split(" ")[0] if line else ""
        self._allo = int(size) if size.isdigit() else None
        self.respond("200 ALLO command successful.")  # type: ignore[attr-defined]

    def ftp_STOR(self, file: str, mode: str = "w") -> None:
        rest, self._restart_position = self._restart_position, 0  # type: ignore[has-type]
        expected, self._allo = self._allo, None
        if rest:
            self.respond("554 Resuming an upload is not supported; send the whole file again.")  # type: ignore[attr-defined]
            return
        try:
            upload = self.fs.open_write(file, expected)
        except Cam2DriveError as err:
            return self.reply_error(err)
        upload.expected_size = expected  # type: ignore[attr-defined]
        if self.data_channel is not None:  # type: ignore[attr-defined]
            self.respond("125 Data connection already open. Transfer starting.")  # type: ignore[attr-defined]
            self.data_channel.file_obj = upload  # type: ignore[attr-defined]
            self.data_channel.enable_receiving(self._current_type, "STOR")  # type: ignore[attr-defined]
        else:
            self.respond("150 File status okay. About to open data connection.")  # type: ignore[attr-defined]
            self._in_dtp_queue = (upload, "STOR")

    def ftp_APPE(self, file: str) -> None:
        self._restart_position = 0
        self.respond("502 APPE is not supported: stored recordings cannot be appended to; "  # type: ignore[attr-defined]
                     "upload a new file.")

    def ftp_STOU(self, line: str) -> None:
        self.respond("502 STOU is not supported; use STOR with a file name.")  # type: ignore[attr-defined]

    def ftp_MFMT(self, path: str, timeval: str = "") -> None:
        self.respond("502 MFMT is not supported.")  # type: ignore[attr-defined]

    def ftp_SITE_CHMOD(self, path: str, mode: str = "") -> None:
        self.respond("502 SITE CHMOD is not supported.")  # type: ignore[attr-defined]

    def ftp_RETR(self, file: str) -> None:
        rest, self._restart_position = self._restart_position, 0  # type: ignore[has-type]
        try:
            download = self.fs.open_read(file, rest)
        except Cam2DriveError as err:
            if rest and isinstance(err, InvalidPath):
                self.respond(f"554 {err}.")  # type: ignore[attr-defined]
                return
            return self.reply_error(err)
        producer = FileProducer(download, self._current_type)  # type: ignore[attr-defined]
        self.push_dtp_data(producer, isproducer=True, file=download, cmd="RETR")  # type: ignore[attr-defined]

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
            fd = self.socket.fileno()  # type: ignore[attr-defined]
            with socket.socket(fileno=os.dup(fd)) as probe:
                if grace > 0 and not select.select([probe], [], [], grace)[0]:
                    return True  # nothing arrived: the client is waiting for our reply
                probe.setblocking(False)
                return probe.recv(1, socket.MSG_PEEK) != b""
        except BlockingIOError:
            return True
        except OSError:
            return False


class GatewayFTPHandler(GatewayMixin, FTPHandler):
    dtp_handler = DurableDTPHandler
