"""The portal in a real browser: Debian's chromium driven by Playwright, and the
accounts a portal test signs in with."""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from billing import catalog, staff
from billing.core.db import session_scope
from billing.core.models import Notification
from tests.support.stack import DeviceLogin, Stack

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "portal-password-1"


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's chromium under Playwright; a missing chromium fails the test (`make test`
    installs it through sysdeps, so its absence is a broken setup, never a reason to
    skip). Never `playwright install`: that downloads a browser. One per test:
    Playwright's sync API cannot nest, so a second person is a second context."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: run `make sysdeps` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-dev-shm-usage",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        try:
            yield browser
        finally:
            browser.close()


def person(browser: Any, locale: str = "es-MX", width: int = 390, height: int = 844) -> Any:
    """A page in its own context (its own cookies): one signed-in person; a phone's screen."""
    context = browser.new_context(locale=locale, viewport={"width": width, "height": height})
    return context.new_page()


@dataclass(frozen=True)
class Account:
    email: str
    password: str
    id: int
    distributor_id: int


def customer_of(stack: Stack, dev: DeviceLogin, password: str = PASSWORD) -> Account:
    """`dev`'s customer, with a portal password."""
    with session_scope(stack.engine) as s:
        cust = catalog.set_customer_password(s, dev.customer_id, password, actor="test")
        assert cust.id is not None
        return Account(cust.email, password, cust.id, cust.distributor_id)


def new_customer(stack: Stack, distributor_id: int | None = None) -> Account:
    """A customer with a password and no device (under a new distributor unless one is named)."""
    tag = uuid.uuid4().hex[:8]
    with session_scope(stack.engine) as s:
        if distributor_id is None:
            dist = catalog.add_distributor(
                s, name=f"Dist {tag}", email=f"d{tag}@example.com", actor="test"
            )
            assert dist.id is not None
            distributor_id = dist.id
        cust = catalog.add_customer(
            s, distributor_id=distributor_id, email=f"c{tag}@example.com", actor="test"
        )
        catalog.set_customer_password(s, cust.id, PASSWORD, actor="test")  # type: ignore[arg-type]
        assert cust.id is not None
        return Account(cust.email, PASSWORD, cust.id, distributor_id)


def staff_of(stack: Stack, distributor_id: int, password: str = PASSWORD) -> Account:
    tag = uuid.uuid4().hex[:8]
    with session_scope(stack.engine) as s:
        user = staff.add_user(
            s, distributor_id=distributor_id, email=f"staff{tag}@example.com", actor="test"
        )
        assert user.id is not None
        staff.set_password(s, user.id, password, actor="test")
        return Account(user.email, password, user.id, distributor_id)


def sign_in(page: Any, base: str, who: Account) -> None:
    page.goto(f"{base}/signin")
    page.fill("#email", who.email)
    page.fill("#password", who.password)
    page.click("form[action='/signin'] button[type=submit]")
    page.wait_for_load_state()
    assert "/signin" not in page.url, page.content()


CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(page: httpx.Response) -> str:
    """The CSRF token a portal page's forms carry."""
    found = CSRF.search(page.text)
    assert found, page.text
    return found.group(1)


def sign_in_http(http: httpx.Client, email: str, password: str) -> httpx.Response:
    """The sign-in form posted over plain HTTP: on success (303) `http` holds the
    session cookie, as a browser would."""
    token = csrf_of(http.get("/signin"))
    return http.post("/signin", data={"csrf": token, "email": email, "password": password})


def emailed_link(stack: Stack, customer_id: int) -> str:
    """The newest password link queued for the customer (the outbox's payload)."""
    with session_scope(stack.engine) as s:
        note = s.exec(
            select(Notification)
            .where(Notification.customer_id == customer_id, Notification.kind == "password_link")
            .order_by(col(Notification.id).desc())
        ).first()
        assert note is not None, "no password link queued"
        return str(json.loads(note.payload)["link"])
