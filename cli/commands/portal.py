"""`cam2drive distributor add-user|users|user-link`: distributor staff's portal logins."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlmodel import select

from billing import password_links, staff
from billing.core.db import session_scope
from billing.core.errors import NotFound
from billing.core.models import DistributorUser
from cli.commands.common import ACTOR, JsonOpt
from cli.context import app_state
from cli.output import emit, out, record


def distributor_add_user(
    distributor: Annotated[int, typer.Option(help="Distributor id.")],
    email: Annotated[str, typer.Option(help="The staff member's email (their portal login).")],
    name: Annotated[str | None, typer.Option(help="Their name.")] = None,
    locale: Annotated[str | None, typer.Option(help="Portal language: es, pt or en.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Add a staff login for a distributor; prints the one-time link that sets its password."""
    st = app_state().settings
    with session_scope(app_state().engine) as s:
        user = staff.add_user(
            s, distributor_id=distributor, email=email, name=name, locale=locale, actor=ACTOR
        )
        assert user.id is not None
        link = password_links.url(st, password_links.issue(s, st, "staff", user.id))
        data = record(user, ["id", "distributor_id", "email", "name", "locale"], password_link=link)
    if json_:
        emit(data, True)
        return
    out.print(f"staff user {data['id']} {data['email']} added to distributor {distributor}")
    out.print(
        f"Give them this link to set their password (works once, "
        f"{st.password_link_hours:g} h): {link}"
    )


def distributor_users(
    distributor: Annotated[int, typer.Option(help="Distributor id.")],
    json_: JsonOpt = False,
) -> None:
    """List a distributor's staff logins."""
    with session_scope(app_state().engine) as s:
        rows = [
            record(
                u,
                ["id", "email", "name", "locale", "created_at"],
                has_password=bool(u.password_hash),
            )
            for u in staff.users(s, distributor)
        ]
    emit(rows, json_, title="distributor users")


def distributor_user_link(
    email: Annotated[str, typer.Argument(help="The staff member's email.")],
) -> None:
    """A new one-time link for a staff member to set or reset their password."""
    st = app_state().settings
    with session_scope(app_state().engine) as s:
        user = s.exec(
            select(DistributorUser).where(DistributorUser.email == email.strip().lower())
        ).first()
        if user is None or user.id is None:
            raise NotFound(f"no distributor user with email {email.strip()!r}")
        link = password_links.url(st, password_links.issue(s, st, "staff", user.id))
    out.print(link)
