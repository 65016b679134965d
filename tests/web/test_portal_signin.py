"""Portal sign-in over real HTTP: cookies, CSRF, the shared ban, password links, languages."""

from __future__ import annotations

import ftplib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace
from typing import cast
from urllib.parse import urlsplit

import httpx
import pytest
from sqlmodel import select

from billing.core.db import make_engine, session_scope
from billing.core.models import (
    AuditEvent,
    Customer,
    Device,
    PasswordLink,
    WebSession,
    utcnow,
)
from billing.core.settings import Settings
from billing.notify.outbox import deliver
from cli.devstack.mailsink import MailSink
from cli.devstack.seaweed import free_port
from tests.support.portal import (
    PASSWORD,
    csrf_of,
    emailed_link,
    new_customer,
    sign_in_http,
    staff_of,
)
from tests.support.stack import Stack
from tests.support.web import WebServer
from web.portal.auth import FORGOT_ANSWER_SECONDS


def test_sign_in_sets_a_server_side_session(stack: Stack, web: WebServer) -> None:
    who = new_customer(stack)
    with httpx.Client(base_url=web.url) as http:
        assert http.get("/portal/devices").headers["location"] == "/signin"
        r = sign_in_http(http, who.email.upper(), who.password)
        assert r.status_code == 303 and r.headers["location"] == "/"
        cookie = r.headers["set-cookie"]
        assert "c2d_session=" in cookie and "HttpOnly" in cookie
        assert "SameSite=lax" in cookie and "Secure" not in cookie  # plain HTTP
        page = http.get("/portal/devices")
        assert page.status_code == 200 and "Mis dispositivos" in page.text
        # signing out ends the server's session: the old cookie opens nothing
        old = http.cookies["c2d_session"]
        assert http.post("/signout", data={"csrf": csrf_of(page)}).status_code == 303
    with session_scope(stack.engine) as s:
        assert s.exec(select(WebSession).where(WebSession.principal_id == who.id)).all() == []
    with httpx.Client(base_url=web.url, cookies={"c2d_session": old}) as http:
        assert http.get("/portal/devices").status_code == 303


def test_cookies_are_secure_behind_a_tls_proxy(stack: Stack, web: WebServer) -> None:
    who = new_customer(stack)
    with httpx.Client(base_url=web.url, headers={"X-Forwarded-Proto": "https"}) as http:
        page = http.get("/signin")
        assert "Secure" in page.headers["set-cookie"]  # the CSRF cookie too
        token = csrf_of(page)
        # a client on plain HTTP keeps Secure cookies to itself: hand it back as the proxy would
        r = http.post(
            "/signin",
            data={"csrf": token, "email": who.email, "password": who.password},
            headers={"Cookie": f"c2d_csrf={token}"},
        )
        assert r.status_code == 303 and "Secure" in r.headers["set-cookie"]
    # an untrusted peer's X-Forwarded-Proto is not believed
    stack.settings.trusted_proxies = ["192.0.2.1"]
    try:
        with httpx.Client(base_url=web.url, headers={"X-Forwarded-Proto": "https"}) as http:
            assert "Secure" not in http.get("/signin").headers["set-cookie"]
    finally:
        stack.settings.trusted_proxies = ["127.0.0.1", "::1"]


def test_a_form_without_its_csrf_token_changes_nothing(stack: Stack, web: WebServer) -> None:
    who = new_customer(stack)
    with httpx.Client(base_url=web.url) as http:
        assert sign_in_http(http, who.email, who.password).status_code == 303
        forged = http.post("/portal/devices", data={"name": "Forged NVR", "csrf": "nope"})
        assert forged.status_code == 403 and "Traceback" not in forged.text
        assert "formulario" in forged.text
        page = http.get("/portal/devices")
        assert "Forged NVR" not in page.text
        # the sign-in form itself needs its token too
    with httpx.Client(base_url=web.url) as http:
        r = http.post("/signin", data={"email": who.email, "password": who.password})
        assert r.status_code == 403 and "c2d_session" not in r.headers.get("set-cookie", "")


def test_failed_sign_ins_earn_the_ftp_ban(stack: Stack, web: WebServer) -> None:
    """Unknown and known emails fail alike; the ban is the gateways' (one table)."""
    who = new_customer(stack)
    dev = stack.device()
    try:
        with httpx.Client(base_url=web.url) as http:
            unknown = sign_in_http(http, "nobody@example.com", "whatever-password")
            known = sign_in_http(http, who.email, "wrong-password-1")
            assert unknown.status_code == known.status_code == 401
            strip = re.compile(r'name="(csrf|email)" [^>]*')
            assert strip.sub("", unknown.text) == strip.sub("", known.text)
            for _ in range(stack.settings.ban_max_failures):
                sign_in_http(http, who.email, "wrong-password-1")
            banned = sign_in_http(http, who.email, who.password)  # right password, banned address
            assert banned.status_code == 429 and "c2d_session" not in banned.headers.get(
                "set-cookie", ""
            )
        ftp = ftplib.FTP()
        try:
            ftp.connect("127.0.0.1", stack.port, timeout=10)  # the ban answers 421 here
            ftp.login(dev.username, dev.password)
            raise AssertionError("the portal's ban did not reach FTP")
        except (ftplib.error_temp, ftplib.error_perm) as err:
            assert str(err).startswith(("421", "530")) and "failed logins" in str(err)
        finally:
            ftp.close()
    finally:
        stack.clear_bans()


def test_a_distributor_adds_a_customer_who_sets_a_password_once(
    stack: Stack, web: WebServer
) -> None:
    owner = new_customer(stack)
    boss = staff_of(stack, owner.distributor_id)
    with httpx.Client(base_url=web.url) as http:
        assert sign_in_http(http, boss.email, boss.password).status_code == 303
        page = http.get("/distributor/customers")
        bad = http.post(
            "/distributor/customers", data={"csrf": csrf_of(page), "email": "not-an-email"}
        )
        assert bad.status_code == 422 and "no es una dirección de correo" in bad.text
        r = http.post(
            "/distributor/customers",
            data={"csrf": csrf_of(page), "email": "New.Client@Example.com", "name": "Tienda"},
        )
        assert r.status_code == 303
    with session_scope(stack.engine) as s:
        cust = s.exec(select(Customer).where(Customer.email == "new.client@example.com")).one()
        assert cust.distributor_id == owner.distributor_id and cust.password_hash is None
        cust_id = cust.id
    assert cust_id is not None
    path = urlsplit(emailed_link(stack, cust_id)).path
    with httpx.Client(base_url=web.url) as http:
        form = http.get(path)
        assert form.status_code == 200
        short = http.post(path, data={"csrf": csrf_of(form), "password": "x", "confirm": "x"})
        assert short.status_code == 422 and "10" in short.text
        done = http.post(
            path, data={"csrf": csrf_of(form), "password": PASSWORD, "confirm": PASSWORD}
        )
        assert done.status_code == 303
        again = http.post(
            path,
            data={"csrf": csrf_of(form), "password": "another-pass-1", "confirm": "another-pass-1"},
        )
        assert again.status_code == 422
        assert http.get(path).status_code == 410
        assert sign_in_http(http, "new.client@example.com", PASSWORD).status_code == 303


def test_a_billing_error_reads_in_the_users_language(stack: Stack, web: WebServer) -> None:
    """billing's English template, from the catalogue, with the value filled in."""
    taken = new_customer(stack)
    boss = staff_of(stack, taken.distributor_id)
    for language, words in (
        ("es-MX", f"ya existe un cliente con el correo {taken.email}"),
        ("pt-BR", f"já existe um cliente com o e-mail {taken.email}"),
    ):
        with httpx.Client(base_url=web.url, headers={"Accept-Language": language}) as http:
            assert sign_in_http(http, boss.email, boss.password).status_code == 303
            page = http.get("/distributor/customers")
            again = http.post(
                "/distributor/customers", data={"csrf": csrf_of(page), "email": taken.email}
            )
            assert again.status_code == 422 and words in again.text, again.text


def test_languages_by_header_and_by_choice(stack: Stack, web: WebServer) -> None:
    who = new_customer(stack)
    with httpx.Client(base_url=web.url, headers={"Accept-Language": "pt-BR,pt;q=0.9"}) as http:
        assert "Entrar" in http.get("/signin").text
        sign_in_http(http, who.email, who.password)
        page = http.get("/portal/devices")
        assert "Meus dispositivos" in page.text
        http.post(
            "/language", data={"csrf": csrf_of(page), "lang": "en", "back": "/portal/devices"}
        )
        assert "My devices" in http.get("/portal/devices").text
        bad = http.post("/language", data={"csrf": csrf_of(page), "lang": "xx"})
        assert bad.status_code == 422
    with session_scope(stack.engine) as s:
        cust = s.get(Customer, who.id)
        assert cust is not None and cust.locale == "en"  # kept with the user
        assert s.exec(select(AuditEvent).where(AuditEvent.actor == "x")).all() == []


@dataclass
class Mailbox:
    """The mail sink the outbox sends to: what the next notify pass delivers."""

    stack: Stack
    settings: Settings
    folder: Path

    def delivered(self) -> list[EmailMessage]:
        # the stack's database is shared by the session's tests: the outbox may hold
        # more than one pass's worth of their mail, oldest first, before this test's
        while deliver(self.stack.engine, self.settings, self.stack.store).sent:
            pass
        return [
            cast(EmailMessage, message_from_bytes(p.read_bytes(), policy=policy.default))
            for p in sorted(self.folder.iterdir())
        ]


@pytest.fixture
def mailbox(stack: Stack, web: WebServer, tmp_path: Path) -> Iterator[Mailbox]:
    sink = MailSink(tmp_path / "mail", free_port())
    sink.controller.start()
    settings = stack.settings.model_copy(
        update={"smtp_host": "127.0.0.1", "smtp_port": sink.port, "portal_url": web.url}
    )
    try:
        yield Mailbox(stack, settings, tmp_path / "mail")
    finally:
        sink.controller.stop()


def forgot(web: WebServer, *emails: str) -> None:
    """Ask for a link for each address: the page's answer is the same for every one, and
    none comes sooner than FORGOT_ANSWER_SECONDS (queueing a link takes longer than
    finding no account)."""
    with httpx.Client(base_url=web.url) as http:
        page = http.get("/password/forgot")
        for email in emails:
            started = time.monotonic()
            r = http.post("/password/forgot", data={"csrf": csrf_of(page), "email": email})
            assert time.monotonic() - started >= FORGOT_ANSWER_SECONDS
            assert r.status_code == 200 and "le enviamos un enlace" in r.text


def link_path(mails: list[EmailMessage], email: str) -> str:
    """The link in the one mail to `email`, sent to that address alone."""
    mine = [m for m in mails if email in str(m["To"])]
    assert len(mine) == 1 and mine[0]["Cc"] is None  # never copied to the distributor
    body = mine[0].get_content()
    link = re.search(r"https?://\S+/password/\S+", body)
    assert link, body
    return urlsplit(link.group(0)).path


def test_the_link_is_emailed_to_the_customer_alone_and_expires(
    stack: Stack, web: WebServer, mailbox: Mailbox
) -> None:
    who = new_customer(stack)
    forgot(web, who.email, "nobody@example.com", who.email)  # asked twice at once: one email
    mails = mailbox.delivered()
    path = link_path(mails, who.email)
    assert not [m for m in mails if "nobody@example.com" in str(m["To"])]
    with session_scope(stack.engine) as s:  # a day later
        for row in s.exec(
            select(PasswordLink).where(
                PasswordLink.kind == "customer", PasswordLink.principal_id == who.id
            )
        ).all():
            row.expires_at = utcnow() - timedelta(seconds=1)
            s.add(row)
    with httpx.Client(base_url=web.url) as http:
        assert http.get(path).status_code == 410
        form = http.get("/signin")
        late = http.post(
            path, data={"csrf": csrf_of(form), "password": PASSWORD, "confirm": PASSWORD}
        )
        assert late.status_code == 422 and "venció" in late.text


def test_staff_who_forgot_their_password_get_the_link_by_email(
    stack: Stack, web: WebServer, mailbox: Mailbox
) -> None:
    boss = staff_of(stack, new_customer(stack).distributor_id)
    forgot(web, boss.email, "nobody-staff@example.com", boss.email)
    mails = mailbox.delivered()
    path = link_path(mails, boss.email)
    [mail] = [m for m in mails if boss.email in str(m["To"])]
    assert "Cam2Drive" in str(mail["Subject"]) and "clientes" in mail.get_content()
    assert not [m for m in mails if "nobody-staff@example.com" in str(m["To"])]
    chosen = "a-new-staff-password-1"
    with httpx.Client(base_url=web.url) as http:
        form = http.get(path)
        assert form.status_code == 200
        done = http.post(path, data={"csrf": csrf_of(form), "password": chosen, "confirm": chosen})
        assert done.status_code == 303
        assert http.get(path).status_code == 410  # it worked once
        assert sign_in_http(http, boss.email, boss.password).status_code == 401
        assert sign_in_http(http, boss.email, chosen).status_code == 303
        assert http.get("/distributor/customers").status_code == 200
    stack.clear_bans()


def test_staff_run_only_their_own_customers_and_keys(stack: Stack, web: WebServer) -> None:
    mine = new_customer(stack)
    theirs = new_customer(stack)  # another distributor's
    boss = staff_of(stack, mine.distributor_id)
    other_boss = staff_of(stack, theirs.distributor_id)
    with httpx.Client(base_url=web.url) as http, httpx.Client(base_url=web.url) as rival:
        sign_in_http(http, boss.email, boss.password)
        sign_in_http(rival, other_boss.email, other_boss.password)
        page = http.get(f"/distributor/customers/{mine.id}")
        assert page.status_code == 200
        token = csrf_of(page)
        added = http.post(
            f"/distributor/customers/{mine.id}/devices",
            data={"csrf": token, "name": "NVR Bodega", "serial": "X1"},
        )
        assert added.status_code == 200 and 'data-testid="password"' in added.text
        refused = http.post(
            f"/distributor/customers/{theirs.id}/devices", data={"csrf": token, "name": "Intruso"}
        )
        assert refused.status_code == 404
        assert http.get(f"/distributor/customers/{theirs.id}").status_code == 404
        listing = http.get("/distributor/customers", params={"q": mine.email[:6].upper()})
        assert mine.email in listing.text and theirs.email not in listing.text
        # a customer's own pages are not staff pages, and the other way round
        assert http.get("/portal/devices").status_code == 403
        # API keys: made here, they authenticate the ERP; another's cannot be revoked
        made = http.post("/distributor/api/keys", data={"csrf": token})
        shown = re.search(r'id="k-id">([^<]+)<.*id="k-secret">([^<]+)<', made.text, re.S)
        assert shown, made.text
        key_id, secret = shown.groups()
        assert httpx.get(f"{web.url}/api/v1/products", auth=(key_id, secret)).status_code == 200
        stolen = rival.post(
            f"/distributor/api/keys/{key_id}/revoke",
            data={"csrf": csrf_of(rival.get("/distributor/api"))},
        )
        assert stolen.status_code == 404
        assert httpx.get(f"{web.url}/api/v1/products", auth=(key_id, secret)).status_code == 200
        bad = http.post("/distributor/api/callback", data={"csrf": token, "url": "ftp://x"})
        assert bad.status_code == 422 and "URL" in bad.text
    with session_scope(stack.engine) as s:
        names = [d.name for d in s.exec(select(Device).where(Device.customer_id == theirs.id))]
        assert names == []


def test_a_page_with_the_database_down_is_a_page_not_a_traceback() -> None:
    url = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none"
    settings = Settings(database_url=url)
    engine = make_engine(url)
    web = WebServer(SimpleNamespace(settings=settings, engine=engine, store=None))
    try:
        with httpx.Client(base_url=web.url, timeout=30) as http:
            form = http.get("/signin")  # needs no database
            assert form.status_code == 200
            r = http.post(
                "/signin", data={"csrf": csrf_of(form), "email": "a@b.mx", "password": "x" * 10}
            )
            assert r.status_code == 503 and "<html" in r.text and "Traceback" not in r.text
            assert "Intente de nuevo" in r.text
            http.cookies.set("c2d_session", "some-old-session")
            page = http.get("/portal/devices")
            assert page.status_code == 503 and "Traceback" not in page.text
            api = http.get("/api/v1/products", auth=("c2dk_x", "y"))  # the API stays JSON
            assert api.status_code == 503 and api.json()["detail"]
    finally:
        web.close()
        engine.dispose()
