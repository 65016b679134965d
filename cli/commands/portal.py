"""`cam2drive distributor add-user|users|user-link`: distributor staff's portal logins."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlmodel import select

from billing import password_links, staff
from billing.core.db import session_scope
from billing.core.errors import NotFound
from billing.core.models import DistributorUser
from cli.commands.common import ACTOR, DistributorOpt, JsonOpt, list_rows
from cli.context import app_state
from cli.output import out, record, report


def distributor_add_user(
    distributor: DistributorOpt,
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
    report(
        data,
        json_,
        f"staff user {data['id']} {data['email']} added to distributor {distributor}",
        f"Give them this link to set their password (works once, "
        f"{st.password_link_hours:g} h): {link}",
    )


def distributor_users(distributor: DistributorOpt, json_: JsonOpt = False) -> None:
    """List a distributor's staff logins."""
    fields = "id email name locale created_at".split()
    list_rows(
        "distributor users",
        json_,
        lambda s: (
            record(u, fields, has_password=bool(u.password_hash))
            for u in staff.users(s, distributor)
        ),
    )


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
