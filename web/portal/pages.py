"""What every portal page shares: templates, the signed-in person, CSRF, language, errors."""

from __future__ import annotations

import inspect
import logging
import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.exc import SQLAlchemyError

from billing.core.errors import Cam2DriveError, InvalidField, StorageUnavailable
from billing.core.vocab import LOCALES
from web import sessions
from web.errors import status_for
from web.i18n import NAMES, Formatter, negotiate
from web.sessions import Principal

log = logging.getLogger("cam2drive.web.portal")

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


class PageError(Exception):
    """A page that cannot be shown: a status and one sentence (msgid), never a traceback."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SignInRequired(Exception):
    pass


def parts(request: Request) -> Any:
    return request.app.state.parts


def principal(request: Request) -> Principal | None:
    """Who signed in, read once per request (the media routes ask too)."""
    if not getattr(request.state, "principal_read", False):
        request.state.principal = sessions.load(
            parts(request).engine, request.cookies.get(sessions.COOKIE)
        )
        request.state.principal_read = True
    found: Principal | None = request.state.principal
    return found


def language(request: Request) -> str:
    """The user's own choice, else the language cookie, else Accept-Language, else the default."""
    who = principal(request)
    if who is not None and who.locale in LOCALES:
        return str(who.locale)
    cookie = request.cookies.get(sessions.LANG_COOKIE)
    if cookie in LOCALES:
        return str(cookie)
    return negotiate(request.headers.get("accept-language"), parts(request).settings.default_locale)


def formatter(request: Request) -> Formatter:
    return Formatter(language(request))


def signed_in(request: Request) -> Principal:
    who = principal(request)
    if who is None:
        raise SignInRequired()
    return who


def customer(request: Request) -> Principal:
    who = signed_in(request)
    if who.kind != "customer":
        raise PageError(403, "This page is for customers.")
    return who


def staff(request: Request) -> Principal:
    who = signed_in(request)
    if who.kind != "staff":
        raise PageError(403, "This page is for distributor staff.")
    return who


CustomerDep = Annotated[Principal, Depends(customer)]
StaffDep = Annotated[Principal, Depends(staff)]


def csrf_token(request: Request) -> str:
    """The token this request's forms carry: the session's, or the pre-sign-in cookie's."""
    who = principal(request)
    if who is not None:
        return who.csrf
    token = request.cookies.get(sessions.CSRF_COOKIE) or getattr(request.state, "new_csrf", None)
    if not token or len(token) > 64:
        token = secrets.token_urlsafe(24)
        request.state.new_csrf = token
    return str(token)


async def form(request: Request) -> dict[str, str]:
    """The posted fields, after the CSRF check (403 and nothing done if it fails)."""
    data = await request.form()
    fields = {k: v for k, v in data.items() if isinstance(v, str)}
    who = principal(request)
    expected = who.csrf if who is not None else request.cookies.get(sessions.CSRF_COOKIE)
    if not sessions.csrf_ok(expected, fields.get("csrf")):
        raise PageError(403, "This form has expired. Reload the page and try again.")
    return fields


def error_text(request: Request, err: Cam2DriveError) -> str:
    """An error in the user's language: its template from the catalogue, slots filled after."""
    fmt = formatter(request)
    if isinstance(err, InvalidField):
        reason = fmt.gettext(err.reason_template, **err.reason_values)
        return f"{fmt.gettext(err.field)}: {reason}"
    return fmt.gettext(err.template, **err.values)


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    fmt = formatter(request)
    who = principal(request)
    body = env.get_template(template).render(
        request=request,
        who=who,
        _=fmt.gettext,
        fmt=fmt,
        lang=fmt.code,
        languages=NAMES,
        csrf=csrf_token(request),
        path=request.url.path,
        **context,
    )
    response = HTMLResponse(body, status_code=status)
    _set_csrf_cookie(request, response)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"  # password links stay off other sites
    return response


def _set_csrf_cookie(request: Request, response: Response) -> None:
    token = getattr(request.state, "new_csrf", None)
    if token:
        opts = sessions.cookie_options(request, parts(request).settings)
        response.set_cookie(sessions.CSRF_COOKIE, token, **opts)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


#: where the portal's pages live; errors elsewhere (the API, media) stay JSON
PAGE_PATHS = ("/portal", "/distributor", "/signin", "/signout", "/password", "/language")


def is_page(request: Request) -> bool:
    path = request.url.path
    return path == "/" or path.startswith(PAGE_PATHS)


def _plain_error(request: Request, status: int, message: str) -> Response:
    """The error page, or a bare one when even rendering fails (the database is down)."""
    try:
        fmt = formatter(request)
        return render(request, "error.html", status, message=fmt.gettext(message))
    except Exception:  # the page needs nothing it could fail on again
        return HTMLResponse(f"<!doctype html><title>cam2drive</title><p>{message}</p>", status)


async def _delegate(handler: Any, request: Request, err: Exception) -> Response:
    """Hand an error to the JSON handler web/errors.py installed (sync or async)."""
    out = handler(request, err)
    if inspect.isawaitable(out):
        out = await out
    assert isinstance(out, Response)
    return out


def install(app: FastAPI) -> None:
    """Page errors as pages (the API's handlers answer JSON for everything else).

    The JSON handlers web/errors.py installed stay in charge of the API's
    paths; on a page, a known error, the database being down and a bug
    each become the error page, never a traceback and never JSON.
    """
    json_known = app.exception_handlers[Cam2DriveError]
    json_database = app.exception_handlers[SQLAlchemyError]
    json_bug = app.exception_handlers[Exception]

    @app.exception_handler(Cam2DriveError)
    async def _known(request: Request, err: Cam2DriveError) -> Response:
        if not is_page(request):
            return await _delegate(json_known, request, err)
        if isinstance(err, StorageUnavailable):
            return _plain_error(request, 503, "The service is busy. Try again in a minute.")
        return render(request, "error.html", status_for(err), message=error_text(request, err))

    @app.exception_handler(SQLAlchemyError)
    async def _database(request: Request, err: SQLAlchemyError) -> Response:
        if not is_page(request):
            return await _delegate(json_database, request, err)
        log.error("database error on a page: %s", type(err).__name__)
        return _plain_error(request, 503, "The service is busy. Try again in a minute.")

    @app.exception_handler(Exception)
    async def _bug(request: Request, err: Exception) -> Response:
        if not is_page(request):
            return await _delegate(json_bug, request, err)
        log.exception("unhandled error on page %r", request.url.path)
        return _plain_error(request, 500, "Something went wrong on our side. Try again later.")

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, _: SignInRequired) -> Response:
        return redirect("/signin")

    @app.exception_handler(PageError)
    async def _page_error(request: Request, err: PageError) -> Response:
        fmt = formatter(request)
        return render(request, "error.html", err.status, message=fmt.gettext(err.message))
