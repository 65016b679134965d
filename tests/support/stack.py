"""The stack harness: one database, the shared SeaweedFS, a live FTP gateway, and records."""

from __future__ import annotations

import ftplib
import io
import os
import random
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import select

from billing import catalog as accounts
from billing.core.db import make_engine, session_scope
from billing.core.models import Drive, DriveEntry, Subscription
from billing.core.settings import Settings
from billing.invoicing.pac import Pac
from billing.invoicing.parts import Invoicing
from cli.devstack.democerts import demo_invoicing
from cli.devstack.seaweed import SeaweedServer, free_port
from cli.devstack.testpac import make_test_pac
from gateway.auth import Authenticator
from gateway.ftp.server import build_server
from gateway.ingest import IngestPipeline
from gateway.names import is_name_key, object_key
from gateway.purge import DrivePurge
from gateway.store import S3DriveStore

PG_ADMIN = os.environ.get("CAM2DRIVE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


MiB = 1024 * 1024


HOST_KEYS = Path(os.environ.get("CAM2DRIVE_TEST_HOSTKEYS", "var/test-hostkeys"))


def put(ftp: ftplib.FTP, path: str, data: bytes) -> str:
    """STOR `data` as `path`; the final reply."""
    return ftp.storbinary(f"STOR {path}", io.BytesIO(data))


def passive_range() -> str:
    base = random.randrange(40000, 60000, 100)
    return f"{base}-{base + 99}"


@dataclass
class DeviceLogin:
    username: str
    password: str
    device_id: int
    drive_id: int
    customer_id: int
    prefix: str


class Stack:
    """One database + the shared SeaweedFS + one running FTP gateway."""

    def __init__(self, db_url: str, seaweed: SeaweedServer, bucket: str, **overrides: Any) -> None:
        self.db_url = db_url
        self.seaweed = seaweed
        self.settings = Settings(
            **{
                "database_url": db_url,
                "s3_endpoint_url": seaweed.endpoint,
                "s3_bucket": bucket,
                "s3_part_size": 5 * MiB,
                "ftp_host": "127.0.0.1",
                "ftp_port": free_port(),
                "ftp_passive_ports": passive_range(),
                "auth_failed_delay": 0,
                "s3_connect_timeout": 2,
                "s3_read_timeout": 10,
                "s3_max_attempts": 2,
                "sftp_host": "127.0.0.1",
                "sftp_host_key_dir": HOST_KEYS,
                **overrides,
            }
        )
        self.engine = make_engine(db_url)
        self.store = S3DriveStore(self.settings)
        self.store.ensure_bucket()
        self.pipeline = IngestPipeline(self.settings, self.engine, self.store)
        self.purger = DrivePurge(self.store)
        self.pac = make_test_pac(self.settings) if self.settings.pac_driver == "local" else None
        self.servers: list[Any] = []
        self.port = self.start_gateway()

    def invoicing(self, pac: Pac | None = None) -> Invoicing:
        """What issuing invoices works with: the stack's, with `pac` instead of its test PAC."""
        return Invoicing(self.engine, self.store, self.settings, pac or self.pac)

    def start_gateway(self, settings: Settings | None = None) -> int:
        st = settings or self.settings
        server = build_server(
            st,
            self.pipeline
            if settings is None
            else IngestPipeline(st, make_engine(st.database_url), self.store),
            Authenticator(st, self.engine),
        )
        stop = threading.Event()

        def serve() -> None:
            # close_all on the serving thread: called from the test's thread it
            # closed the loop under a running poll (EBADF logged by the thread)
            while not stop.is_set():
                server.serve_forever(timeout=0.05, blocking=False, handle_exit=False)
            server.close_all()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        self.servers.append((stop, thread))
        return int(server.address[1])

    def start_sftp(self) -> int:
        """The SFTP gateway on its own asyncio loop thread; returns its port."""
        import asyncio

        from gateway.sftp.server import start_server

        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, daemon=True).start()
        acceptor = asyncio.run_coroutine_threadsafe(
            start_server(
                self.settings, self.pipeline, Authenticator(self.settings, self.engine), port=0
            ),
            loop,
        ).result(30)
        self._sftp = (loop, acceptor)
        return int(acceptor.sockets[0].getsockname()[1])

    def close(self) -> None:
        for stop, thread in self.servers:
            stop.set()
            thread.join(30)
        if getattr(self, "_sftp", None):
            loop, acceptor = self._sftp
            loop.call_soon_threadsafe(acceptor.close)
            loop.call_soon_threadsafe(loop.stop)
        self.clear_bans()
        self.engine.dispose()

    def clear_bans(self) -> None:
        """Forget failed logins: a success no longer resets them (gateway/auth.py),
        so a test's wrong passwords from 127.0.0.1 would add up to a ban of later tests."""
        from sqlalchemy import delete

        from billing.core.models import AccountLoginFailure, LoginFailure

        with self.engine.begin() as conn:
            conn.execute(delete(LoginFailure.__table__))  # type: ignore[attr-defined]
            conn.execute(delete(AccountLoginFailure.__table__))  # type: ignore[attr-defined]

    # --- records ----------------------------------------------------------

    def device(
        self, capacity: str = "1GB", on_full: str = "reject", grant: bool = True
    ) -> DeviceLogin:
        tag = uuid.uuid4().hex[:8]
        with session_scope(self.engine) as s:
            dist = accounts.add_distributor(
                s, name=f"Dist {tag}", email=f"d{tag}@example.com", actor="test"
            )
            cust = accounts.add_customer(
                s, distributor_id=dist.id, email=f"c{tag}@example.com", actor="test"
            )
            code = f"T-{tag}".upper()
            terms = accounts.PlanTerms(code, capacity, "10.00", "MXN", on_full)
            accounts.add_plan(s, terms, actor="test")
            new = accounts.add_device(s, customer_id=cust.id, name=f"NVR {tag}", actor="test")
            if grant:
                accounts.grant_subscription(
                    s, device_ref=new.device.id, plan_code=code, actor="test"
                )
            return DeviceLogin(
                new.device.username,
                new.password,
                new.device.id,
                new.drive.id,
                cust.id,
                new.drive.prefix,
            )

    def viewer(self, dev: DeviceLogin, password: str = "viewer-password-1") -> tuple[str, str]:
        """Give `dev`'s customer a viewer password; returns (email, password)."""
        with session_scope(self.engine) as s:
            cust = accounts.set_customer_password(s, dev.customer_id, password, actor="test")
            return cust.email, password

    def set_status(self, dev: DeviceLogin, status: str) -> None:
        with session_scope(self.engine) as s:
            sub = s.exec(
                select(Subscription)
                .where(Subscription.device_id == dev.device_id)
                .order_by(Subscription.id.desc())
            ).first()  # type: ignore[union-attr]
            assert sub is not None
            sub.status = status
            s.add(sub)

    def drive(self, dev: DeviceLogin) -> Drive:
        with session_scope(self.engine) as s:
            return s.get(Drive, dev.drive_id)  # type: ignore[return-value]

    def entries(self, dev: DeviceLogin) -> dict[str, DriveEntry]:
        with session_scope(self.engine) as s:
            rows = s.exec(select(DriveEntry).where(DriveEntry.drive_id == dev.drive_id))
            return {e.path: e for e in rows}

    def s3_keys(self, dev: DeviceLogin) -> dict[str, int]:
        """The recordings under the drive's prefix (not their name records: gateway/names.py)."""
        return {k: n for k, n in self.store.list_keys(dev.prefix) if not is_name_key(k)}

    def multipart_uploads(self, dev: DeviceLogin) -> list[Any]:
        return self.store.list_multipart(dev.prefix)

    def assert_consistent(self, dev: DeviceLogin) -> None:
        """Invariant: usage == sum of the index == what S3 holds; nothing in flight."""
        drive = self.drive(dev)
        files = {p: e for p, e in self.entries(dev).items() if not e.is_dir}
        assert drive.reserved_bytes == 0
        assert drive.committed_bytes == sum(e.size for e in files.values())
        assert drive.object_count == len(files)
        assert self.s3_keys(dev) == {e.key: e.size for e in files.values()}
        records = {object_key(k) for k, _ in self.store.list_keys(dev.prefix) if is_name_key(k)}
        assert records <= set(self.s3_keys(dev))  # no name record outlives its recording
        assert self.multipart_uploads(dev) == []

    # --- clients ------------------------------------------------------------

    def ftp(self, dev: DeviceLogin | None = None, port: int | None = None) -> ftplib.FTP:
        client = ftplib.FTP()
        client.encoding = "utf-8"
        client.connect("127.0.0.1", port or self.port, timeout=30)
        if dev is not None:
            client.login(dev.username, dev.password)
        return client


@contextmanager
def stack_with(db_url: str, seaweed: SeaweedServer, **overrides: Any) -> Iterator[Stack]:
    """A stack on the shared SeaweedFS (one bucket per database) with settings of its
    own, closed on exit."""
    bucket = "c2d-pg" if db_url.startswith("postgresql") else "c2d-sqlite"
    stack = Stack(db_url, seaweed, bucket, **overrides)
    try:
        yield stack
    finally:
        stack.close()


@contextmanager
def stack_on_own_s3(
    db_url: str, tmp_path: Path, name: str
) -> Iterator[tuple[Stack, SeaweedServer]]:
    """A stack on a SeaweedFS of its own, for tests that stop and restart S3."""
    weed = SeaweedServer(tmp_path / "weed", s3_port=free_port()).start()
    bucket = f"c2d-{name}-{'pg' if db_url.startswith('postgresql') else 'sqlite'}"
    stack = Stack(db_url, weed, bucket)
    try:
        yield stack, weed
    finally:
        stack.close()
        weed.stop()


def announce(ftp: ftplib.FTP, name: str, size: int) -> Any:
    """TYPE I, ALLO and STOR as a Dahua recorder starts a clip; the data socket."""
    ftp.voidcmd("TYPE I")
    ftp.voidcmd(f"ALLO {size}")
    return ftp.transfercmd(f"STOR {name}")


def keep_sending(ftp: ftplib.FTP, conn: Any, mib: int) -> str:
    """Up to `mib` more random MiB on a data connection the gateway may drop, then
    the transfer's final reply (an error reply's text too)."""
    try:
        for _ in range(mib):
            conn.sendall(os.urandom(MiB))
    except OSError:
        pass
    conn.close()
    try:
        return ftp.voidresp()
    except ftplib.Error as err:
        return str(err)


def record_clip(ftp: ftplib.FTP, path: str, clip: bytes) -> None:
    """A clip as a Dahua recorder sends one: announced and streamed as `path_`,
    then renamed to `path` once whole."""
    conn = announce(ftp, f"{path}_", len(clip))
    conn.sendall(clip)
    conn.close()
    assert ftp.voidresp().startswith("226")
    ftp.rename(f"{path}_", path)


def fiscal(certs: Path) -> dict[str, object]:
    """Settings that turn invoicing on with the demo CSD and the local test PAC."""
    return demo_invoicing(certs, certs / "pac")
