"""Distributor staff: people who sign in to the portal for a distributor.

They are not customers: they see every customer of their distributor, and
never a customer's video unless that customer granted it (billing/video_grants.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from billing.catalog import check_new_password, normalise_email
from billing.core import audit
from billing.core.credentials import hash_password
from billing.core.errors import AlreadyExists, InvalidField, NotFound
from billing.core.models import Customer, Distributor, DistributorUser
from billing.core.vocab import LOCALES


def add_user(
    session: Session,
    *,
    distributor_id: int,
    email: str,
    name: str | None = None,
    locale: str | None = None,
    actor: str,
) -> DistributorUser:
    """A staff login with no password yet: they set it through an emailed link.

    One address is one person: an email already used by a customer or another
    staff member is refused, so a sign-in never has to guess which one is meant.
    """
    if session.get(Distributor, distributor_id) is None:
        raise NotFound(f"distributor {distributor_id} does not exist")
    email = normalise_email(email)
    if locale is not None and locale not in LOCALES:
        raise InvalidField("locale", f"must be one of {', '.join(LOCALES)}")
    taken = session.exec(select(DistributorUser.id).where(DistributorUser.email == email)).first()
    if taken or session.exec(select(Customer.id).where(Customer.email == email)).first():
        raise AlreadyExists(f"email: {email} already signs in to the portal")
    user = DistributorUser(
        distributor_id=distributor_id,
        email=email,
        name=(name or "").strip()[:200] or None,
        locale=locale,
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        actor=actor,
        entity="distributor_user",
        entity_id=user.id,
        action="created",
        cause="operator request",
        distributor_id=distributor_id,
        email=email,
    )
    return user


def users(session: Session, distributor_id: int) -> Sequence[DistributorUser]:
    return session.exec(
        select(DistributorUser)
        .where(DistributorUser.distributor_id == distributor_id)
        .order_by(col(DistributorUser.id))
    ).all()


def set_password(session: Session, user_id: int, password: str, *, actor: str) -> DistributorUser:
    user = session.get(DistributorUser, user_id)
    if user is None:
        raise NotFound(f"distributor user {user_id} does not exist")
    user.password_hash = hash_password(check_new_password(password))
    session.add(user)
    audit.record(
        session,
        actor=actor,
        entity="distributor_user",
        entity_id=user.id,
        action="password_set",
        cause="portal password set",
    )
    return user
