"""Logins and bans, shared by every protocol and every gateway node.

Failed logins are counted in the database, so a ban earned on one node is
honoured by all of them (ARCHITECTURE: gateways are stateless). They are
counted twice: per address (`ban_max_failures`: one address guessing any
accounts) and per account name (`ban_max_failures_per_account`: guesses at
one account spread over many addresses). A successful login resets
neither: with one valid login, an address could otherwise clear its count
between guesses at other accounts. Counts fall back to zero only when
their window passes.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    Executable,
    Row,
    Table,
    and_,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from billing.core.credentials import hash_device_secret, hash_password, verify
from billing.core.db import database_errors, reader
from billing.core.errors import Cam2DriveError, NotEntitled
from billing.core.models import (
    AccountLoginFailure,
    Customer,
    Device,
    DeviceKey,
    Drive,
    LoginFailure,
    utcnow,
)
from billing.core.settings import Settings
from billing.entitlement import viewable_drives
from gateway.drive import Login
from gateway.logsafe import printable

log = logging.getLogger("cam2drive.auth")
failures = LoginFailure.__table__  # type: ignore[attr-defined]
account_failures = AccountLoginFailure.__table__  # type: ignore[attr-defined]
devices = Device.__table__  # type: ignore[attr-defined]
drives = Drive.__table__  # type: ignore[attr-defined]
customers = Customer.__table__  # type: ignore[attr-defined]


class AuthFailed(Cam2DriveError):
    pass


class Banned(Cam2DriveError):
    pass


class ViewingRefused(Banned):
    """A viewer with the right password whose contracts forbid viewing now.

    A kind of Banned because every frontend already answers a ban the way
    this must be answered: the reason in one line, the connection closed,
    and no failed login counted toward a real ban.
    """


def _ip(remote: str) -> str:
    """One key per client address (IPv4-mapped IPv6 folded to IPv4)."""
    try:
        addr = ipaddress.ip_address(remote)
    except ValueError:
        return remote[:64]
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        return str(addr.ipv4_mapped)
    return str(addr)


@cache
def dummy_hash(scheme: str) -> str:
    """A hash no password matches, verified when the account is unknown (or
    has no password yet), so that an unknown name costs the argon2 check a
    known one does: failing fast would tell which emails are customers."""
    secret = secrets.token_urlsafe(32)
    return hash_password(secret) if scheme == "argon2" else hash_device_secret(secret)


class Authenticator:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine

    # --- bans -------------------------------------------------------------

    def check_ban(self, remote: str) -> None:
        """Raise Banned if the address `remote` is banned right now."""
        row = self._one(select(failures.c.banned_until).where(failures.c.ip == _ip(remote)))
        until = row.banned_until if row is not None else None
        if until is not None and until > utcnow():
            raise Banned(f"too many failed logins from {_ip(remote)}; try again in {_mins(until)}")

    def check_account(self, account: str, remote: str) -> None:
        """Raise Banned if password logins to `account` are banned for `remote`.

        The address the account last logged in from is exempt: strangers
        failing at a recorder's user name must not lock the recorder out.
        """
        row = self._one(
            select(account_failures.c.banned_until, account_failures.c.last_ok_ip).where(
                account_failures.c.account == _account(account)
            )
        )
        if row is None or row.banned_until is None or row.banned_until <= utcnow():
            return
        if row.last_ok_ip is not None and row.last_ok_ip == _ip(remote):
            return
        raise Banned(
            f"too many failed logins for this account; try again in {_mins(row.banned_until)}"
        )

    def record_failure(self, remote: str, account: str | None = None) -> bool:
        """Count one failed login against the address and the account name;
        True if this failure earned a ban on either."""
        s = self.settings
        banned = self._count(failures, failures.c.ip, _ip(remote), s.ban_max_failures)
        if account is not None:
            key = _account(account)
            if self._count(
                account_failures, account_failures.c.account, key, s.ban_max_failures_per_account
            ):
                banned = True
        return banned

    def _count(self, table: Table, column: Column[Any], key: str, limit: int) -> bool:
        """One more failure for `key` in its window; True if it earned a ban."""
        now, s = utcnow(), self.settings
        window = timedelta(seconds=s.ban_window_seconds)
        this = column == key
        for _ in range(3):  # a concurrent first insert on another node: retry as update
            try:
                with self.engine.begin() as conn:
                    self._forget_stale(conn, table, now - window)
                    row = conn.execute(select(table).where(this)).first()
                    if row is None:
                        conn.execute(
                            insert(table).values(
                                {
                                    column.name: key,
                                    "failures": 1,
                                    "window_started_at": now,
                                    "banned_until": None,
                                }
                            )
                        )
                        count = 1
                    elif now - row.window_started_at > window:
                        conn.execute(
                            update(table)
                            .where(this)
                            .values(failures=1, window_started_at=now, banned_until=None)
                        )
                        count = 1
                    else:
                        conn.execute(
                            update(table).where(this).values(failures=table.c.failures + 1)
                        )
                        count = row.failures + 1
                    if count >= limit:
                        conn.execute(
                            update(table)
                            .where(this)
                            .values(banned_until=now + timedelta(seconds=s.ban_seconds))
                        )
                        log.warning(
                            "banned %s %s for %ss after %d failed logins",
                            column.name,
                            printable(key),
                            s.ban_seconds,
                            count,
                        )
                        return True
                    return False
            except IntegrityError:
                continue
            except SQLAlchemyError as exc:
                log.error("cannot record failed login for %s: %s", printable(key), exc)
                return False
        return False

    @staticmethod
    def _forget_stale(conn: Any, table: Table, window_start: datetime) -> None:
        """Rows of past windows and ended bans go (names tried once by a
        scanner would pile up); an account's last good address stays."""
        stale = and_(
            table.c.window_started_at < window_start,
            or_(table.c.banned_until.is_(None), table.c.banned_until < utcnow()),
        )
        if table is account_failures:
            stale = and_(stale, table.c.last_ok_ip.is_(None))
        conn.execute(delete(table).where(stale))

    def remember_ok(self, account: str, remote: str) -> None:
        """Note where `account` logged in (the address its bans exempt).

        Written only when the account already has a row (it was failed at):
        a recorder's every login costs no write, while one under attack
        records its address at its next login.
        """
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    update(account_failures)
                    .where(
                        account_failures.c.account == _account(account),
                        or_(
                            account_failures.c.last_ok_ip.is_(None),
                            account_failures.c.last_ok_ip != _ip(remote),
                        ),
                    )
                    .values(last_ok_ip=_ip(remote))
                )
        except SQLAlchemyError:
            pass

    # --- logins -------------------------------------------------------------

    def authenticate(self, username: str, password: str, remote: str) -> Login:
        """A Login for valid credentials; AuthFailed (counted toward a ban) otherwise.

        Device logins are `c2d-…` user names; people (viewers) log in with
        their email address and the password they set. A known and an
        unknown name fail alike, in the same time.
        """
        self.check_ban(remote)
        name = username.strip().lower()
        self.check_account(name, remote)
        login = self._viewer(name, password) if "@" in name else self._device(name, password)
        if login is None:
            banned = self.record_failure(remote, name)
            raise AuthFailed("login incorrect" + ("; address banned" if banned else ""))
        self.remember_ok(name, remote)
        return login

    def _device(self, name: str, password: str) -> Login | None:
        row = self._one(
            select(
                devices.c.id,
                devices.c.username,
                devices.c.secret_hash,
                devices.c.customer_id,
                drives.c.id.label("drive_id"),
            )
            .select_from(devices.join(drives, drives.c.device_id == devices.c.id))
            .where(devices.c.username == name)
        )
        stored = row.secret_hash if row is not None else dummy_hash("sha256")
        if not verify(stored, password) or row is None:
            return None
        return _device_login(row)

    def _viewer(self, email: str, password: str) -> Login | None:
        row = self._one(
            select(customers.c.id, customers.c.email, customers.c.password_hash).where(
                customers.c.email == email
            )
        )
        stored = row.password_hash if row is not None and row.password_hash else None
        if not verify(stored or dummy_hash("argon2"), password) or stored is None:
            return None
        assert row is not None  # the hash came from it
        try:
            with database_errors():
                viewable_drives(self.engine, row.id)
        except NotEntitled as err:
            raise ViewingRefused(err.template, **err.values) from None
        return Login(kind="viewer", username=row.email, customer_id=row.id)

    def device_key_login(self, username: str, key_fingerprint: str) -> Login | None:
        """The device login owning this authorized public key, if any."""
        name = username.strip().lower()
        keys = DeviceKey.__table__  # type: ignore[attr-defined]
        row = self._one(
            select(
                devices.c.id,
                devices.c.username,
                devices.c.customer_id,
                drives.c.id.label("drive_id"),
            )
            .select_from(
                devices.join(drives, drives.c.device_id == devices.c.id).join(
                    keys, keys.c.device_id == devices.c.id
                )
            )
            .where(devices.c.username == name, keys.c.fingerprint == key_fingerprint)
        )
        if row is None:
            return None
        return _device_login(row)

    def _one(self, query: Executable) -> Row[Any] | None:
        with database_errors(), reader(self.engine).connect() as conn:
            return conn.execute(query).first()


def _device_login(row: Row[Any]) -> Login:
    """A recorder's login, by password or by key: its device, drive and customer."""
    return Login(
        kind="device",
        username=row.username,
        device_id=row.id,
        drive_id=row.drive_id,
        customer_id=row.customer_id,
    )


def _account(name: str) -> str:
    return name.strip().lower()[:320]


def _mins(until: datetime) -> str:
    return f"{max(1, int((until - utcnow()).total_seconds() // 60))} min"
