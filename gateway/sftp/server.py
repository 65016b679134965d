"""The SFTP frontend: asyncssh over the same drive view and ingest pipeline as FTP.

asyncssh runs the SSH protocol on an asyncio loop; every drive-view call
(database, S3) is blocking and runs on a thread pool, so one slow S3 call
never stalls other sessions. Writes and reads are batched on the loop side
(about 1 MiB per hop) so a pipelining client's 32 KiB requests do not each
cost a thread switch.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import stat as statmod
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import asyncssh

from billing.core.errors import Cam2DriveError, StorageUnavailable
from billing.core.settings import Settings
from gateway import paths
from gateway.admission import Admission, Refused, Ticket
from gateway.auth import Authenticator, AuthFailed, Banned
from gateway.drive import Download, DriveView, Entry, Login, login_notice
from gateway.ingest import HeldBytes, IngestPipeline, OrderedWrites, Upload
from gateway.logsafe import printable
from gateway.sftp.hostkeys import ensure_host_keys
from gateway.sftp.replies import sftp_error
from gateway.transferlog import log_transfer, session_id

log = logging.getLogger("cam2drive.sftp")
T = TypeVar("T")
BATCH = 1 << 20  # bytes handed to the pipeline per thread hop
LOGIN_KEY = "cam2drive_login"
SESSION_KEY = "cam2drive_session"


class Gateway:
    """Process-wide state shared by every SSH connection."""

    def __init__(
        self, settings: Settings, pipeline: IngestPipeline, authenticator: Authenticator
    ) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.auth = authenticator
        self.executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="sftp-io")
        self.admission = Admission(
            "sftp",
            settings.sftp_max_connections,
            settings.sftp_max_connections_per_ip,
            settings.sftp_max_unauthenticated,
        )

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking drive-view call off the loop; map its errors to SFTP status."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.executor, fn, *args)
        except Cam2DriveError as err:
            raise sftp_error(err) from None


class SSHServer(asyncssh.SSHServer):
    """Authentication: device passwords, device public keys, viewer passwords; IP bans."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.conn: asyncssh.SSHServerConnection | None = None
        self.ip = ""
        self.ticket: Ticket | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        """Admit the connection through the gate (gateway/admission.py), or
        close it once asyncssh has finished setting it up."""
        self.conn = conn
        conn.set_extra_info(**{SESSION_KEY: session_id()})
        peer = conn.get_extra_info("peername")
        self.ip = str(peer[0]) if peer else ""
        loop = asyncio.get_running_loop()

        def refuse(reason: str) -> None:
            loop.call_soon(conn.disconnect, asyncssh.DISC_TOO_MANY_CONNECTIONS, reason)

        try:
            self.ticket = self.gw.admission.admit(
                self.ip, lambda: refuse("Too many connections waiting to log in")
            )
        except Refused as err:
            refuse(str(err).capitalize())

    def auth_completed(self) -> None:
        if self.ticket is not None:
            self.gw.admission.logged_in(self.ticket)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ticket is not None:
            self.gw.admission.leave(self.ticket)

    async def begin_auth(self, username: str) -> bool:
        try:
            await self.gw.run(self.gw.auth.check_ban, self.ip)
        except asyncssh.SFTPError as err:
            raise asyncssh.DisconnectError(
                asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE, str(err.reason)
            ) from None
        return True

    def password_auth_supported(self) -> bool:
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        loop = asyncio.get_running_loop()
        try:
            login = await loop.run_in_executor(
                self.gw.executor, self.gw.auth.authenticate, username, password, self.ip
            )
        except AuthFailed:
            # the same pause as FTP's 530: guesses cost a client time on both
            await asyncio.sleep(self.gw.settings.auth_failed_delay)
            return False
        except (Banned, StorageUnavailable) as err:
            raise asyncssh.DisconnectError(
                asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE, str(err)
            ) from None
        await self._logged_in(login)
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        loop = asyncio.get_running_loop()
        try:
            login = await loop.run_in_executor(
                self.gw.executor,
                self.gw.auth.device_key_login,
                username,
                key.get_fingerprint("sha256"),
            )
        except StorageUnavailable:
            return False
        if login is None:
            return False  # other keys or a password may follow: not a failed login yet
        await self._logged_in(login)
        return True

    async def _logged_in(self, login: Login) -> None:
        """Remember the login and tell the client what FTP's 230 line tells
        (an SSH auth banner, shown by OpenSSH's sftp and most clients)."""
        assert self.conn is not None
        self.conn.set_extra_info(**{LOGIN_KEY: login})
        log.info("%s logged in from %s (%s)", printable(login.username), self.ip, login.kind)
        notice = await asyncio.get_running_loop().run_in_executor(
            self.gw.executor, login_notice, self.gw.pipeline.engine, login
        )
        self.conn.send_auth_banner(notice + "\r\n")


def _attrs(entry: Entry, writable: bool) -> asyncssh.SFTPAttrs:
    mtime = int(entry.mtime.timestamp())
    if entry.is_dir:
        mode = statmod.S_IFDIR | (0o755 if writable else 0o555)
        kind = asyncssh.FILEXFER_TYPE_DIRECTORY
    else:
        mode = statmod.S_IFREG | (0o644 if writable else 0o444)
        kind = asyncssh.FILEXFER_TYPE_REGULAR
    return asyncssh.SFTPAttrs(
        type=kind,
        size=entry.size,
        permissions=mode,
        uid=0,
        gid=0,
        owner="cam2drive",
        group="cam2drive",
        atime=mtime,
        mtime=mtime,
        nlink=1,
    )


def _refuse_changes(now: asyncssh.SFTPAttrs, asked: asyncssh.SFTPAttrs) -> None:
    """Refuse a setstat that would change anything: recordings keep their
    size, and the gateway keeps no modes, owners or times of its own to set.
    Asking for what already is (a client echoing the attributes it read)
    is answered OK, since it is then true."""
    for field, what in (
        ("size", "truncating or extending a recording"),
        ("permissions", "changing permissions"),
        ("uid", "changing the owner or group"),
        ("gid", "changing the owner or group"),
        ("owner", "changing the owner or group"),
        ("group", "changing the owner or group"),
        ("atime", "setting access or modification times"),
        ("mtime", "setting access or modification times"),
    ):
        value = getattr(asked, field)
        if value is None:
            continue
        current = getattr(now, field)
        if field == "permissions":
            value, current = value & 0o7777, (current or 0) & 0o7777
        if value != current:
            raise asyncssh.SFTPOpUnsupported(f"{what} is not supported")


class WriteHandle:
    """An SFTP file open for writing: ordered writes batched into one Upload.

    The batch is a list of the client's chunks, not one buffer: joining
    them cost a copy of every byte before the part buffer's own.
    """

    def __init__(self, upload: Upload, window: int, held: HeldBytes) -> None:
        self.upload = upload
        self.order = OrderedWrites(window, held)
        self.staged: list[bytes] = []
        self.staged_bytes = 0
        self.failed: asyncssh.SFTPError | None = None
        self.started = time.monotonic()  # for the transfer log

    def take_batch(self) -> list[bytes]:
        batch, self.staged, self.staged_bytes = self.staged, [], 0
        return batch

    def write_batch(self, batch: list[bytes]) -> None:
        """On a worker thread: one hop for the whole batch."""
        for chunk in batch:
            self.upload.write(chunk)

    def finish(self, batch: list[bytes]) -> None:
        """On a worker thread: the last batch and the commit in one hop. A
        snapshot is written whole in this hop; two hops queued it twice
        behind other sessions' batches on a busy pool."""
        self.write_batch(batch)
        self.upload.commit()


class ReadHandle:
    """An SFTP file open for reading: sequential reads served from a 1 MiB window."""

    def __init__(self, download: Download) -> None:
        self.download = download
        self.start = 0  # offset of `data`
        self.data = b""
        self.sent = 0  # bytes answered, for the transfer log
        self.started = time.monotonic()


class SFTPSession(asyncssh.SFTPServer):
    """One SFTP session: the thin protocol layer over DriveView."""

    def __init__(self, chan: asyncssh.SSHServerChannel, gw: Gateway) -> None:
        super().__init__(chan)
        self.gw = gw
        self.chan = chan
        conn = chan.get_connection()
        login: Login = conn.get_extra_info(LOGIN_KEY)
        # kept for the transfer log: the connection is gone when a dropped
        # session's files are closed
        self.session_id: str = conn.get_extra_info(SESSION_KEY) or ""
        self.ip = str((conn.get_extra_info("peername") or ("",))[0])
        self.view = DriveView(gw.pipeline, login, "sftp")
        self.fallback = gw.settings.path_fallback_encoding
        settings = gw.settings
        self.held = HeldBytes(
            gw.pipeline.budget, settings.sftp_held_per_session, settings.upload_buffer_budget // 2
        )

    # --- paths ---------------------------------------------------------------

    def _path(self, raw: bytes) -> str:
        try:
            text = paths.decode_client_bytes(raw, self.fallback)
            return "/" + paths.resolve("", text)
        except Cam2DriveError as err:
            raise sftp_error(err) from None

    async def realpath(self, path: bytes) -> bytes:
        return self._path(path).encode("utf-8")

    async def stat(self, path: bytes) -> asyncssh.SFTPAttrs:
        """A recorder stats each level of its folder chain before every file:
        folders it has seen are answered here, without a worker thread."""
        target = self._path(path)
        entry = self.view.known(target)
        if entry is None:
            entry = await self.gw.run(self.view.stat, target)
        return _attrs(entry, self.view.login.writable)

    lstat = stat

    async def fstat(self, file_obj: object) -> asyncssh.SFTPAttrs:
        if isinstance(file_obj, ReadHandle):
            return _attrs(file_obj.download.entry, self.view.login.writable)
        assert isinstance(file_obj, WriteHandle)
        return asyncssh.SFTPAttrs(
            type=asyncssh.FILEXFER_TYPE_REGULAR,
            size=file_obj.order.next,
            permissions=statmod.S_IFREG | 0o644,
        )

    async def setstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        """OK only for what changes nothing; never a fake OK (README, "SFTP specifics")."""
        if not self.view.login.writable:
            raise asyncssh.SFTPPermissionDenied(
                "Read-only login: recordings can be viewed, not changed"
            )
        target = self._path(path)
        entry = self.view.known(target)
        if entry is None:
            entry = await self.gw.run(self.view.stat, target)
        _refuse_changes(_attrs(entry, True), attrs)

    async def fsetstat(self, file_obj: object, attrs: asyncssh.SFTPAttrs) -> None:
        if isinstance(file_obj, ReadHandle):
            await self.setstat(file_obj.download.name.encode("utf-8"), attrs)
            return
        assert isinstance(file_obj, WriteHandle)
        _refuse_changes(await self.fstat(file_obj), attrs)

    lsetstat = setstat

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        target = self._path(path)
        here = await self.gw.run(self.view.stat, target)
        listing = await self.gw.run(self.view.listdir, target)
        writable = self.view.login.writable
        for name in (b".", b".."):
            yield asyncssh.SFTPName(name, attrs=_attrs(here, writable))
        for entry in listing:
            yield asyncssh.SFTPName(entry.name.encode("utf-8"), attrs=_attrs(entry, writable))

    # --- namespace -----------------------------------------------------------

    async def mkdir(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        await self.gw.run(self.view.mkdir, self._path(path))

    async def rmdir(self, path: bytes) -> None:
        await self.gw.run(self.view.rmdir, self._path(path))

    async def remove(self, path: bytes) -> None:
        await self.gw.run(self.view.remove, self._path(path))

    async def rename(self, oldpath: bytes, newpath: bytes) -> None:
        """SFTP's rename never replaces a file, as OpenSSH's sftp-server;
        posix-rename@openssh.com does."""
        await self.gw.run(self.view.rename, self._path(oldpath), self._path(newpath), False)

    async def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        await self.gw.run(self.view.rename, self._path(oldpath), self._path(newpath))

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPOpUnsupported("symbolic links are not supported")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPOpUnsupported("hard links are not supported")

    def readlink(self, path: bytes) -> bytes:
        raise asyncssh.SFTPNoSuchFile("not a symbolic link")

    # --- files ---------------------------------------------------------------

    async def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        target = self._path(path)
        if pflags & asyncssh.FXF_APPEND:
            raise asyncssh.SFTPOpUnsupported("append is not supported: upload a new file")
        if pflags & asyncssh.FXF_WRITE:
            if pflags & asyncssh.FXF_READ:
                raise asyncssh.SFTPOpUnsupported("files open for writing cannot be read")
            if pflags & asyncssh.FXF_EXCL:
                exists = True
                try:
                    await self.gw.run(self.view.stat, target)
                except asyncssh.SFTPNoSuchFile:
                    exists = False
                if exists:
                    raise asyncssh.SFTPFileAlreadyExists(f"{target} already exists")
            upload = await self.gw.run(self.view.open_write, target, None)
            handle = WriteHandle(upload, self.gw.settings.sftp_write_window, self.held)
            loop = asyncio.get_running_loop()

            def stalled(err: Cam2DriveError) -> None:
                loop.call_soon_threadsafe(self._stalled, handle, err)

            upload.on_stall = stalled
            return handle
        download = await self.gw.run(self.view.open_read, target, 0)
        return ReadHandle(download)

    async def write(self, file_obj: object, offset: int, data: bytes) -> int:
        if not isinstance(file_obj, WriteHandle):
            raise asyncssh.SFTPPermissionDenied("file is not open for writing")
        if file_obj.failed is not None:
            raise file_obj.failed
        try:
            ready = file_obj.order.accept(offset, data)
        except Cam2DriveError as err:
            file_obj.failed = sftp_error(err)
            await self._abort(file_obj)
            raise file_obj.failed from None
        for chunk in ready:
            file_obj.staged.append(chunk)
            file_obj.staged_bytes += len(chunk)
        if file_obj.staged_bytes >= BATCH:
            await self._flush(file_obj)
        return len(data)  # asyncssh's contract (it replies FX_OK whatever the count)

    async def _flush(self, handle: WriteHandle) -> None:
        if not handle.staged:
            return
        try:
            await self.gw.run(handle.write_batch, handle.take_batch())
        except asyncssh.SFTPError as err:
            handle.failed = err
            await self._abort(handle)
            raise

    def _stalled(self, handle: WriteHandle, err: Cam2DriveError) -> None:
        """No data for the stall limit (gateway/leases.py): every later request
        on the handle fails with why, and the upload is aborted now, which
        gives its reservation back."""
        if handle.failed is None:
            handle.failed = sftp_error(err)
            asyncio.ensure_future(self._abort(handle))

    async def _abort(self, handle: WriteHandle) -> None:
        handle.take_batch()
        handle.order.discard()
        await asyncio.get_running_loop().run_in_executor(self.gw.executor, handle.upload.abort)

    async def read(self, file_obj: object, offset: int, size: int) -> bytes:
        """Serve from the window; refill it with one ranged GET read of >= 1 MiB.

        Sequential readers (every client we know) never reopen the stream;
        a jump elsewhere (resume, random access) reopens it at the offset.
        A read across the window's end copies only its own bytes: joining
        the old tail to the new window cost a fresh 1 MiB allocation and
        copy per refill, ~8 % of a download's time.
        """
        if not isinstance(file_obj, ReadHandle):
            raise asyncssh.SFTPPermissionDenied("file is not open for reading")
        h = file_obj
        total = h.download.entry.size
        if offset >= total:
            return b""  # asyncssh answers an empty read as EOF
        want = min(size, total - offset)  # full reads: some clients mishandle short ones
        rel = offset - h.start
        end = len(h.data)
        h.sent += want
        if 0 <= rel < end:
            if rel + want <= end:
                return h.data[rel : rel + want]
            head = h.data[rel:]
            h.start, h.data = h.start + end, await self._fill(h, want - len(head))
            return head + h.data[: want - len(head)]
        if h.download.tell() != offset:
            await self.gw.run(h.download.seek, offset)
        h.start, h.data = offset, await self._fill(h, want)
        return h.data[:want]

    async def _fill(self, h: ReadHandle, need: int) -> bytes:
        """At least `need` bytes from the stream (the caller capped it at the file's end)."""
        data = await self.gw.run(h.download.read, max(BATCH, need))
        while len(data) < need:  # a short read from S3: rare, but never a short reply
            more = await self.gw.run(h.download.read, need - len(data))
            if not more:
                raise asyncssh.SFTPFailure("the recording ended early in storage")
            data += more
        return data

    async def close(self, file_obj: object) -> None:
        if isinstance(file_obj, ReadHandle):
            await asyncio.get_running_loop().run_in_executor(
                self.gw.executor, file_obj.download.close
            )
            self._log(file_obj, "RETR", file_obj.download.name, file_obj.sent, "ok")
            return
        assert isinstance(file_obj, WriteHandle)
        h = file_obj
        if h.failed is not None:
            self._log(h, "STOR", h.upload.name, h.upload.size, f"failed: {h.failed.reason}")
            raise h.failed
        if self._session_ending():
            # asyncssh also "closes" files left open when the connection
            # drops; a file the client never closed is not complete.
            await self._abort(h)
            why = "aborted: the client went away before closing the file"
            self._log(h, "STOR", h.upload.name, h.upload.size, why)
            return
        try:
            hole = h.order.finish()
            if hole:
                raise sftp_error(hole)
            await self.gw.run(h.finish, h.take_batch())
        except asyncssh.SFTPError as err:
            await self._abort(h)
            self._log(h, "STOR", h.upload.name, h.upload.size, f"failed: {err.reason}")
            raise
        self._log(h, "STOR", h.upload.name, h.upload.size, "ok")

    def _log(self, handle: ReadHandle | WriteHandle, op: str, path: str, n: int, how: str) -> None:
        log_transfer(
            form=self.gw.settings.log_format,
            protocol="sftp",
            session=self.session_id,
            user=self.view.login.username,
            ip=self.ip,
            op=op,
            path=path,
            nbytes=n,
            ms=int((time.monotonic() - handle.started) * 1000),
            outcome=how,
        )

    def _session_ending(self) -> bool:
        """True when asyncssh is cleaning up a session rather than serving a close request."""
        if self.chan.is_closing():
            return True
        state = getattr(self.chan, "_recv_state", "open")  # asyncssh's channel state
        return state != "open"

    def statvfs(self, path: bytes) -> asyncssh.SFTPVFSAttrs:
        raise asyncssh.SFTPOpUnsupported("statvfs is not supported")

    async def exit(self) -> None:
        """The session has ended (asyncssh has aborted what was left open)."""
        await asyncio.get_running_loop().run_in_executor(self.gw.executor, self.view.close)


def _algorithms(settings: Settings) -> dict[str, Any]:
    """Modern defaults, or everything asyncssh supports for old embedded clients.

    The client's order picks the cipher, so the default list leaves out
    chacha20-poly1305 (OpenSSH's first choice): asyncssh builds it from a new
    `cryptography` cipher object per packet, 33 us per 300-byte packet against
    4 us for AES-GCM (one C call, AES-NI), and in the fleet bench the SFTP
    ciphers were the largest single share of the gateway's GIL. AES-GCM comes
    first (AEAD: no separate HMAC per packet), then AES-CTR for clients
    without it. `sftp_encryption_algs` can put chacha20 back.
    """
    from asyncssh import encryption, kex, mac, public_key

    if settings.sftp_legacy_algorithms:
        opts: dict[str, Any] = {
            "kex_algs": [a.decode() for a in kex.get_kex_algs()],
            "encryption_algs": [a.decode() for a in encryption.get_encryption_algs()],
            "mac_algs": [a.decode() for a in mac.get_mac_algs()],
            "signature_algs": [a.decode() for a in public_key.get_public_key_algs()],
        }
    else:
        default = [a.decode() for a in encryption.get_default_encryption_algs()]
        gcm = [a for a in default if "gcm" in a]
        opts = {
            "encryption_algs": gcm + [a for a in default if a not in gcm and "chacha20" not in a]
        }
    for name in ("kex_algs", "encryption_algs", "mac_algs"):
        value = getattr(settings, f"sftp_{name}")
        if value:
            opts[name] = value
    return opts


def _limit_requests(settings: Settings) -> None:
    """Tell clients (limits@openssh.com) to read and write at most one SSH packet's worth.

    asyncssh's server advertises 4 MiB reads and writes, and a client that
    takes it at its word (asyncssh's own, in the fleet bench) sends 4 MiB
    SFTP writes: each is gathered whole, joined and sliced again before the
    handler sees it, ~12 MiB held per session; 50 such sessions were most of
    a saturated gateway's 700 MB. OpenSSH's sftp-server offers 255 KiB, the
    size of one of its packets; so do we (`sftp_max_packet` - 1 KiB), which
    still fills a 256 KiB SSH packet per request. asyncssh reads these
    module constants when it answers the request; larger requests from
    clients that ignore the limits are still served.
    """
    import asyncssh.sftp

    size = settings.sftp_max_packet - 1024
    asyncssh.sftp.MAX_SFTP_READ_LEN = size
    asyncssh.sftp.MAX_SFTP_WRITE_LEN = size


async def start_server(
    settings: Settings,
    pipeline: IngestPipeline,
    authenticator: Authenticator,
    port: int | None = None,
    sock: socket.socket | None = None,
) -> asyncssh.SSHAcceptor:
    """Listen for SFTP, or serve `sock` (a gateway worker's inherited
    listener); returns the acceptor (close() it to stop)."""
    gw = Gateway(settings, pipeline, authenticator)
    _limit_requests(settings)
    keys = ensure_host_keys(settings.sftp_host_key_dir)
    return await asyncssh.create_server(
        lambda: SSHServer(gw),
        settings.sftp_host,
        settings.sftp_port if port is None else port,
        sock=sock,
        server_host_keys=keys,
        sftp_factory=lambda chan: SFTPSession(chan, gw),
        allow_scp=False,
        server_version="cam2drive",  # not asyncssh's name and exact version
        agent_forwarding=False,
        x11_forwarding=False,
        allow_pty=False,
        login_timeout=settings.sftp_login_timeout,
        keepalive_interval=30,
        keepalive_count_max=4,
        window=settings.sftp_channel_window,
        max_pktsize=settings.sftp_max_packet,
        **_algorithms(settings),
    )


def _quiet_asyncssh() -> None:
    # asyncssh logs every channel and packet event at INFO/DEBUG; at scale that
    # is both noise and measurable CPU. Connection-level events stay ours.
    logging.getLogger("asyncssh").setLevel(logging.WARNING)


def serve(
    settings: Settings,
    pipeline: IngestPipeline,
    authenticator: Authenticator,
    sock: socket.socket | None = None,
    ready: Callable[[], None] = lambda: None,
) -> None:
    """Serve SFTP until interrupted (`cam2drive gateway sftp`); `ready()` once it listens."""
    _quiet_asyncssh()

    async def main() -> None:
        server = await start_server(settings, pipeline, authenticator, sock=sock)
        log.info("SFTP gateway on %s:%s", settings.sftp_host, settings.sftp_port)
        ready()
        try:
            await asyncio.Event().wait()
        finally:
            server.close()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass


def serve_in_thread(
    settings: Settings,
    pipeline: IngestPipeline,
    authenticator: Authenticator,
    sock: socket.socket | None = None,
) -> threading.Thread:
    """Serve SFTP on a daemon thread's own loop; return once it listens, or raise why not."""
    _quiet_asyncssh()
    listening: Future[None] = Future()

    async def main() -> None:
        try:
            server = await start_server(settings, pipeline, authenticator, sock=sock)
        except BaseException as exc:  # handed to the caller's thread
            listening.set_exception(exc)
            return
        listening.set_result(None)
        log.info("SFTP gateway on %s:%s", settings.sftp_host, settings.sftp_port)
        try:
            await asyncio.Event().wait()
        finally:
            server.close()

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="sftp", daemon=True)
    thread.start()
    listening.result()
    return thread
