"""Distributor staff: people who sign in to the portal for a distributor.

They are not customers: they see every customer of their distributor, and
never a customer's video unless that customer granted it (billing/video_grants.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from billing.catalog import check_new_password, get_distributor, unused_login_email
from billing.core import audit
from billing.core.credentials import hash_password
from billing.core.errors import InvalidField, NotFound
from billing.core.models import DistributorUser
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
    """A staff login with no password yet: they set it through an emailed link."""
    get_distributor(session, distributor_id)
    if locale is not None and locale not in LOCALES:
        raise InvalidField("locale", "must be one of %(locales)s", locales=", ".join(LOCALES))
    email = unused_login_email(session, email)
    user = DistributorUser(
        distributor_id=distributor_id,
        email=email,
        name=(name or "").strip()[:200] or None,
        locale=locale,
    )
    audit.created(
        session, user, "distributor_user", actor=actor, distributor_id=distributor_id, email=email
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
        raise NotFound("distributor user %(id)s does not exist", id=user_id)
    user.password_hash = hash_password(check_new_password(password))
    session.add(user)
    audit.record(
        session, "distributor_user", user.id, "password_set", "portal password set", actor=actor
    )
    return user
