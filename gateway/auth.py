"""Logins and IP bans, shared by every protocol and every gateway node.

Failed logins are counted per address in the database, so a ban earned on
one node is honoured by all of them (ARCHITECTURE: gateways are stateless).
"""

from __future__ import annotations

import ipaddress
import logging
from datetime import timedelta

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from billing.core.credentials import verify
from billing.core.db import database_errors, reader
from billing.core.errors import Cam2DriveError
from billing.core.models import Customer, Device, DeviceKey, Drive, LoginFailure, utcnow
from billing.core.settings import Settings
from gateway.drive import Login

log = logging.getLogger("cam2drive.auth")
failures = LoginFailure.__table__  # type: ignore[attr-defined]
devices = Device.__table__  # type: ignore[attr-defined]
drives = Drive.__table__  # type: ignore[attr-defined]
customers = Customer.__table__  # type: ignore[attr-defined]


class AuthFailed(Cam2DriveError):
    pass


class Banned(Cam2DriveError):
    pass


def _ip(remote: str) -> str:
    """One key per client address (IPv4-mapped IPv6 folded to IPv4)."""
    try:
        addr = ipaddress.ip_address(remote)
    except ValueError:
        return remote[:64]
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        return str(addr.ipv4_mapped)
    return str(addr)


class Authenticator:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine

    # --- bans -------------------------------------------------------------

    def check_ban(self, remote: str) -> None:
        """Raise Banned if `remote` is banned right now."""
        row = self._one(select(failures.c.banned_until).where(failures.c.ip == _ip(remote)))
        until = row.banned_until if row is not None else None
        if until is not None and until > utcnow():
            minutes = max(1, int((until - utcnow()).total_seconds() // 60))
            raise Banned(f"too many failed logins from {_ip(remote)}; try again in {minutes} min")

    def record_failure(self, remote: str) -> bool:
        """Count one failed login; True if this failure earned a ban."""
        ip, now, s = _ip(remote), utcnow(), self.settings
        window = timedelta(seconds=s.ban_window_seconds)
        for _ in range(3):  # a concurrent first insert on another node: retry as update
            try:
                with self.engine.begin() as conn:
                    row = conn.execute(select(failures).where(failures.c.ip == ip)).first()
                    if row is None:
                        conn.execute(
                            insert(failures).values(
                                ip=ip, failures=1, window_started_at=now, banned_until=None
                            )
                        )
                        count = 1
                    elif now - row.window_started_at > window:
                        conn.execute(
                            update(failures)
                            .where(failures.c.ip == ip)
                            .values(failures=1, window_started_at=now, banned_until=None)
                        )
                        count = 1
                    else:
                        conn.execute(
                            update(failures)
                            .where(failures.c.ip == ip)
                            .values(failures=failures.c.failures + 1)
                        )
                        count = row.failures + 1
                    if count >= s.ban_max_failures:
                        conn.execute(
                            update(failures)
                            .where(failures.c.ip == ip)
                            .values(banned_until=now + timedelta(seconds=s.ban_seconds))
                        )
                        log.warning(
                            "banned %s for %ss after %d failed logins", ip, s.ban_seconds, count
                        )
                        return True
                    return False
            except IntegrityError:
                continue
            except SQLAlchemyError as exc:
                log.error("cannot record failed login from %s: %s", ip, exc)
                return False
        return False

    def clear(self, remote: str) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    update(failures)
                    .where(failures.c.ip == _ip(remote), failures.c.banned_until.is_(None))
                    .values(failures=0)
                )
        except SQLAlchemyError:
            pass

    # --- logins -------------------------------------------------------------

    def authenticate(self, username: str, password: str, remote: str) -> Login:
        """A Login for valid credentials; AuthFailed (counted toward a ban) otherwise.

        Device logins are `c2d-…` user names; people (viewers) log in with
        their email address and the password they set.
        """
        self.check_ban(remote)
        name = username.strip().lower()
        login = self._viewer(name, password) if "@" in name else self._device(name, password)
        if login is None:
            banned = self.record_failure(remote)
            raise AuthFailed("login incorrect" + ("; address banned" if banned else ""))
        self.clear(remote)
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
        if row is None or not verify(row.secret_hash, password):
            return None
        return Login(
            kind="device",
            username=row.username,
            device_id=row.id,
            drive_id=row.drive_id,
            customer_id=row.customer_id,
        )

    def _viewer(self, email: str, password: str) -> Login | None:
        row = self._one(
            select(customers.c.id, customers.c.email, customers.c.password_hash).where(
                customers.c.email == email
            )
        )
        if row is None or not row.password_hash or not verify(row.password_hash, password):
            return None
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
        return Login(
            kind="device",
            username=row.username,
            device_id=row.id,
            drive_id=row.drive_id,
            customer_id=row.customer_id,
        )

    def _one(self, query):  # type: ignore[no-untyped-def]
        with database_errors(), reader(self.engine).connect() as conn:
            return conn.execute(query).first()
