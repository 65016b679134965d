"""Portal sign-in: who is asking, kept in a server-side session.

The cookie carries a random token; the `web_sessions` row (its SHA-256 is the
key) says whose it is, so a sign-out or a password change ends it on every
node. Cookies are HttpOnly and SameSite=Lax, and Secure when the request
came over TLS (X-Forwarded-Proto is believed only from `trusted_proxies`) or
when `portal_secure_cookies` says always. Every form posts a CSRF token bound
to the session; before sign-in, a double-submit cookie plays that part.

Sign-in goes through the gateway's Authenticator for bans: one address
guessing, or one account guessed at, is banned on FTP, SFTP and the portal
alike, through the same tables. An unknown email costs the argon2 check a
known one does (`dummy_hash`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from fastapi import Request
from sqlalchemy import delete
from sqlmodel import Session, col, select

from billing.core.credentials import verify
from billing.core.db import reader, session_scope
from billing.core.models import Customer, DistributorUser, WebSession, utcnow
from billing.core.settings import Settings
from gateway.auth import Authenticator, Banned, dummy_hash

COOKIE = "c2d_session"
CSRF_COOKIE = "c2d_csrf"
LANG_COOKIE = "c2d_lang"
Kind = Literal["customer", "staff"]


@dataclass(frozen=True)
class Principal:
    """A signed-in person: a customer, or staff of a distributor."""

    kind: Kind
    id: int
    email: str
    name: str | None
    locale: str | None
    distributor_id: int
    csrf: str

    @property
    def customer_id(self) -> int | None:
        return self.id if self.kind == "customer" else None

    @property
    def actor(self) -> str:
        return f"portal:{self.kind}:{self.id}"


class SignInFailed(Exception):
    """Wrong email or password (one message for both), or a ban."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def client_ip(request: Request, settings: Settings) -> str:
    """The caller's address; X-Forwarded-For's last hop only when a trusted proxy sent it."""
    peer = request.client.host if request.client else "unknown"
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded and peer in settings.trusted_proxies:
        return forwarded.split(",")[-1].strip()[:64] or peer
    return peer


def is_tls(request: Request, settings: Settings) -> bool:
    if settings.portal_secure_cookies != "auto":
        return settings.portal_secure_cookies == "always"
    if request.url.scheme == "https":
        return True
    peer = request.client.host if request.client else ""
    proto = request.headers.get("x-forwarded-proto", "")
    return peer in settings.trusted_proxies and proto.split(",")[0].strip() == "https"


def cookie_options(request: Request, settings: Settings) -> dict[str, Any]:
    return {
        "httponly": True,
        "samesite": "lax",
        "secure": is_tls(request, settings),
        "path": "/",
    }


def sign_in(
    engine: Any, settings: Settings, email: str, password: str, ip: str
) -> tuple[Kind, int]:
    """(kind, id) for good credentials; SignInFailed otherwise, counted toward a ban."""
    auth = Authenticator(settings, engine)
    name = email.strip().lower()[:254]
    try:
        auth.check_ban(ip)
        auth.check_account(name, ip)
    except Banned as err:
        raise SignInFailed(str(err)) from None
    found: tuple[Kind, int, str | None] | None = None
    with Session(reader(engine)) as s:
        cust = s.exec(select(Customer).where(Customer.email == name)).first()
        if cust is not None:
            assert cust.id is not None
            found = ("customer", cust.id, cust.password_hash)
        else:
            user = s.exec(select(DistributorUser).where(DistributorUser.email == name)).first()
            if user is not None:
                assert user.id is not None
                found = ("staff", user.id, user.password_hash)
    stored = found[2] if found is not None else None
    if not verify(stored or dummy_hash("argon2"), password[:1024]) or not stored:
        banned = auth.record_failure(ip, name)
        raise SignInFailed("banned" if banned else "wrong")
    assert found is not None
    auth.remember_ok(name, ip)
    return found[0], found[1]


def start(engine: Any, settings: Settings, kind: Kind, principal_id: int) -> str:
    """A new session's cookie token."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with session_scope(engine) as s:
        s.execute(delete(WebSession).where(col(WebSession.expires_at) < now))
        s.add(
            WebSession(
                token_hash=_digest(token),
                kind=kind,
                principal_id=principal_id,
                csrf=secrets.token_urlsafe(24),
                created_at=now,
                expires_at=now + timedelta(hours=settings.session_hours),
            )
        )
    return token


def end(engine: Any, token: str | None) -> None:
    if token:
        with session_scope(engine) as s:
            s.execute(delete(WebSession).where(col(WebSession.token_hash) == _digest(token)))


def end_all(session: Session, kind: str, principal_id: int) -> None:
    """A password change signs the account out everywhere."""
    session.execute(
        delete(WebSession).where(
            col(WebSession.kind) == kind,
            col(WebSession.principal_id) == principal_id,
        )
    )


def load(engine: Any, token: str | None) -> Principal | None:
    if not token or len(token) > 100:
        return None
    with Session(reader(engine)) as s:
        row = s.get(WebSession, _digest(token))
        if row is None or row.expires_at <= utcnow():
            return None
        kind: Kind = "customer" if row.kind == "customer" else "staff"
        account: Customer | DistributorUser | None = (
            s.get(Customer, row.principal_id)
            if kind == "customer"
            else s.get(DistributorUser, row.principal_id)
        )
        if account is None:
            return None
        return Principal(
            kind,
            row.principal_id,
            account.email,
            account.name,
            account.locale,
            account.distributor_id,
            row.csrf,
        )


def csrf_ok(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))
