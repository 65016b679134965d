"""Sign-in, sign-out, the emailed password links, and the language switch."""

from __future__ import annotations

import time

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import Session

from billing import password_links
from billing.catalog import normalise_email
from billing.core.db import database_errors, session_scope
from billing.core.errors import Cam2DriveError
from billing.core.models import Customer, DistributorUser
from billing.core.vocab import LOCALES
from web import sessions
from web.portal.pages import (
    PageError,
    error_text,
    form,
    formatter,
    parts,
    principal,
    redirect,
    render,
)

router = APIRouter(include_in_schema=False)


@router.get("/")
def home(request: Request) -> Response:
    who = principal(request)
    if who is None:
        return redirect("/signin")
    return redirect("/portal/devices" if who.kind == "customer" else "/distributor/customers")


@router.get("/signin")
def signin_page(request: Request) -> Response:
    if principal(request) is not None:
        return home(request)
    notice = request.query_params.get("done")
    return render(request, "signin.html", password_done=notice == "password", email="")


@router.post("/signin")
async def signin(request: Request) -> Response:
    fields = await form(request)
    p = parts(request)
    email = fields.get("email", "")
    ip = sessions.client_ip(request, p.settings)
    try:
        with database_errors():
            kind, principal_id = sessions.sign_in(
                p.engine, p.settings, email, fields.get("password", ""), ip
            )
    except sessions.SignInFailed as err:
        if str(err) == "wrong":
            message, status = "Wrong email or password.", 401
        else:
            message, status = "Too many failed sign-ins. Try again later.", 429
        return render(
            request,
            "signin.html",
            status,
            error=formatter(request).gettext(message),
            email=email[:254],
        )
    token = sessions.start(p.engine, p.settings, kind, principal_id)
    response = redirect("/")
    opts = sessions.cookie_options(request, p.settings)
    response.set_cookie(
        sessions.COOKIE, token, max_age=int(p.settings.session_hours * 3600), **opts
    )
    return response


@router.post("/signout")
async def signout(request: Request) -> Response:
    await form(request)
    sessions.end(parts(request).engine, request.cookies.get(sessions.COOKIE))
    response = redirect("/signin")
    response.delete_cookie(sessions.COOKIE, path="/")
    return response


@router.get("/password/forgot")
def forgot_page(request: Request) -> Response:
    return render(request, "forgot.html", sent=False)


#: how long "forgot password" takes to answer, at least: queueing a link (a lookup and
#: two inserts) takes longer than finding no account, and must not tell the two apart
FORGOT_ANSWER_SECONDS = 0.25


@router.post("/password/forgot")
async def forgot(request: Request) -> Response:
    """The same answer, in the same time, whether or not the address has an account
    (no email probing); the email leaves with the next notify pass."""
    started = time.monotonic()
    fields = await form(request)
    p = parts(request)
    try:
        email = normalise_email(fields.get("email", ""))
    except Cam2DriveError as err:
        return render(request, "forgot.html", 422, sent=False, error=error_text(request, err))
    with session_scope(p.engine) as s:
        _, account = password_links.account_by_email(s, email) or (None, None)
        if isinstance(account, Customer):
            password_links.email_customer(s, p.settings, account, first=False)
        elif isinstance(account, DistributorUser):
            password_links.email_staff(s, p.settings, account)
    await anyio.sleep(max(0.0, started + FORGOT_ANSWER_SECONDS - time.monotonic()))
    return render(request, "forgot.html", sent=True)


@router.get("/password/{token}")
def password_page(request: Request, token: str) -> Response:
    with Session(parts(request).engine) as s:
        if password_links.find(s, token) is None:
            raise PageError(410, "This link has expired or was already used; ask for a new one.")
    return render(request, "password.html", token=token)


@router.post("/password/{token}")
async def password_set(request: Request, token: str) -> Response:
    fields = await form(request)
    fmt = formatter(request)
    password = fields.get("password", "")
    if password != fields.get("confirm", ""):
        return render(
            request,
            "password.html",
            422,
            token=token,
            error=fmt.gettext("The two passwords differ."),
        )
    try:
        with session_scope(parts(request).engine) as s:
            link = password_links.redeem(s, token, password)
            sessions.end_all(s, link.kind, link.principal_id)
    except Cam2DriveError as err:
        return render(request, "password.html", 422, token=token, error=error_text(request, err))
    return redirect("/signin?done=password")


@router.post("/language")
async def set_language(request: Request) -> Response:
    fields = await form(request)
    code = fields.get("lang", "")
    back = fields.get("back", "/")
    if not back.startswith("/") or back.startswith("//"):
        back = "/"
    if code not in LOCALES:
        raise PageError(422, "Unknown language.")
    who = principal(request)
    if who is not None:
        with session_scope(parts(request).engine) as s:
            row = s.get(Customer if who.kind == "customer" else DistributorUser, who.id)
            if row is not None:
                row.locale = code
                s.add(row)
    response = redirect(back)
    opts = sessions.cookie_options(request, parts(request).settings)
    response.set_cookie(sessions.LANG_COOKIE, code, max_age=365 * 86400, **opts)
    return response
