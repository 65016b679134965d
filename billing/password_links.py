"""One-time links that set a first password or reset one.

The link carries a random token; only its SHA-256 is stored, so a copy of
the database opens no account. A link expires (`password_link_hours`) and
works once; redeeming one ends the account's other links. Customers, and
staff who forgot their password, get it by email through the notification
outbox (never copied to the distributor); the CLI prints a staff member's
first link (`distributor add-user`, `distributor user-link`).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import timedelta
from typing import Any, Literal, cast

from sqlalchemy import CursorResult, update
from sqlmodel import Session, col, select

from billing import staff
from billing.catalog import set_customer_password
from billing.core.errors import InvalidInput
from billing.core.models import Customer, DistributorUser, Notification, PasswordLink, utcnow
from billing.core.settings import Settings

Kind = Literal["customer", "staff"]
KINDS: tuple[Kind, ...] = ("customer", "staff")
#: the notification kinds of the emails that carry a link (billing/notify/messages.py)
NOTIFICATION = "password_link"
STAFF_NOTIFICATION = "staff_password_link"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def url(settings: Settings, token: str) -> str:
    return f"{settings.portal_url.rstrip('/')}/password/{token}"


def issue(session: Session, settings: Settings, kind: Kind, principal_id: int) -> str:
    """A fresh link's token for the account (the caller commits)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        PasswordLink(
            token_hash=digest(token),
            kind=kind,
            principal_id=principal_id,
            created_at=now,
            expires_at=now + timedelta(hours=settings.password_link_hours),
        )
    )
    return token


#: one emailed link per account this often: "forgot password" is open to anyone,
#: and must not become a way to flood a customer's mailbox
RESEND = timedelta(minutes=1)


def email_customer(
    session: Session, settings: Settings, customer: Customer, *, first: bool
) -> bool:
    """Queue the email that carries a customer's link (sent by the next notify pass);
    False if one was queued less than RESEND ago (that one still works)."""
    assert customer.id is not None  # read from the database
    return _email(session, settings, "customer", customer.id, first)


def email_staff(session: Session, settings: Settings, user: DistributorUser) -> bool:
    """Queue the email that carries a staff member's reset link, as `email_customer` does."""
    assert user.id is not None  # read from the database
    return _email(session, settings, "staff", user.id, False)


def _email(
    session: Session, settings: Settings, kind: Kind, principal_id: int, first: bool
) -> bool:
    recent = session.exec(
        select(PasswordLink.token_hash).where(
            PasswordLink.kind == kind,
            PasswordLink.principal_id == principal_id,
            col(PasswordLink.created_at) > utcnow() - RESEND,
        )
    ).first()
    if recent is not None:
        return False
    token = issue(session, settings, kind, principal_id)
    session.add(
        Notification(
            dedupe_key=f"password:{digest(token)[:40]}",
            kind=NOTIFICATION if kind == "customer" else STAFF_NOTIFICATION,
            customer_id=principal_id if kind == "customer" else None,
            staff_id=principal_id if kind == "staff" else None,
            payload=json.dumps(
                {
                    "link": url(settings, token),
                    "hours": f"{settings.password_link_hours:g}",
                    "first": first,
                }
            ),
            status="pending",
            next_attempt_at=utcnow(),
        )
    )
    return True


def find(session: Session, token: str) -> PasswordLink | None:
    """The link if it is still good (known, unused, unexpired)."""
    if not token or len(token) > 100:
        return None
    link = session.get(PasswordLink, digest(token))
    if link is None or link.used_at is not None or link.expires_at <= utcnow():
        return None
    return link


def redeem(session: Session, token: str, password: str) -> PasswordLink:
    """Set the password through a good link and spend it (and the account's other links)."""
    link = find(session, token)
    if link is None:
        raise InvalidInput("this link has expired or was already used; ask for a new one")
    actor = f"portal:{link.kind}:{link.principal_id}"
    if link.kind == "customer":
        set_customer_password(session, link.principal_id, password, actor=actor)
    else:
        staff.set_password(session, link.principal_id, password, actor=actor)
    # spend it atomically: a concurrent redeem of the same link finds no unused row
    spent = session.execute(
        update(PasswordLink)
        .where(col(PasswordLink.token_hash) == link.token_hash, col(PasswordLink.used_at).is_(None))
        .values(used_at=utcnow())
    )
    if cast(CursorResult[Any], spent).rowcount != 1:
        raise InvalidInput("this link has expired or was already used; ask for a new one")
    session.execute(
        update(PasswordLink)
        .where(
            col(PasswordLink.kind) == link.kind,
            col(PasswordLink.principal_id) == link.principal_id,
            col(PasswordLink.used_at).is_(None),
        )
        .values(used_at=utcnow())
    )
    return link


def account_by_email(
    session: Session, email: str
) -> tuple[Kind, Customer | DistributorUser] | None:
    email = email.strip().lower()
    cust = session.exec(select(Customer).where(Customer.email == email)).first()
    if cust is not None:
        return "customer", cust
    user = session.exec(select(DistributorUser).where(DistributorUser.email == email)).first()
    return ("staff", user) if user is not None else None
