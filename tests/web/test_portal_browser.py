"""The portal in Debian's chromium: sign in, add a recorder, isolation, the video grant,
playback."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import pytest
from sqlmodel import select

from billing.core.credentials import verify
from billing.core.db import session_scope
from billing.core.models import AuditEvent, Device, DriveEntry
from tests.support.dhav import make_dav
from tests.support.portal import (
    Account,
    chromium,
    customer_of,
    new_customer,
    person,
    sign_in,
    staff_of,
)
from tests.support.recordings import upload
from tests.support.stack import DeviceLogin, Stack
from tests.support.web import WebServer

DAY = "2026-12-06"
MOTION = f"{DAY}/001/dav/15/15.00.00-15.00.04[M][0@0][0].dav"


@dataclass
class Recorded:
    dev: DeviceLogin
    who: Account
    entry_id: int


def recorded(stack: Stack) -> Recorded:
    """A customer whose recorder uploaded one motion clip over FTP."""
    dev = stack.device()
    with stack.ftp(dev) as ftp:
        upload(ftp, MOTION, make_dav(4))
    with session_scope(stack.engine) as s:
        entry = s.exec(
            select(DriveEntry).where(
                DriveEntry.drive_id == dev.drive_id, DriveEntry.name == MOTION.rsplit("/", 1)[-1]
            )
        ).one()
        assert entry.id is not None
        entry_id = entry.id
    return Recorded(dev, customer_of(stack, dev), entry_id)


@pytest.fixture
def browser() -> Iterator[object]:
    with chromium() as context:
        yield context


def test_sign_in_add_a_recorder_and_read_its_settings(
    stack: Stack, web: WebServer, browser: object
) -> None:
    who = new_customer(stack)
    page = person(browser)
    sign_in(page, web.url, who)
    assert page.url.endswith("/portal/devices")
    page.fill("#name", "NVR Tienda Centro")
    page.fill("#serial", "6G0ABC123")
    page.click("form[action='/portal/devices'] button[type=submit]")
    username = page.text_content("[data-testid=username]").strip()
    password = page.text_content("[data-testid=password]").strip()
    assert page.text_content("[data-testid=server]").strip() == stack.settings.recorder_host()
    assert page.text_content("[data-testid=port]").strip() == str(stack.settings.ftp_port)
    assert page.text_content("[data-testid=sftp_port]").strip() == str(stack.settings.sftp_port)
    with session_scope(stack.engine) as s:
        device = s.exec(select(Device).where(Device.username == username)).one()
        assert device.customer_id == who.id and device.serial == "6G0ABC123"
        assert verify(device.secret_hash, password)  # the page showed the real login
    # the list shows it; bad input is one clear error and adds nothing
    page.goto(f"{web.url}/portal/devices")
    assert "NVR Tienda Centro" in page.content()
    page.fill("#name", "a/b")
    page.click("form[action='/portal/devices'] button[type=submit]")
    assert page.locator("[role=alert]").count() == 1
    with session_scope(stack.engine) as s:
        assert len(s.exec(select(Device).where(Device.customer_id == who.id)).all()) == 1
    # the settings page again: no password, a keyboard-reachable copy button per value
    page.goto(f"{web.url}/portal/devices/{device.id}")
    assert page.locator("[data-testid=password]").count() == 0
    assert page.locator("button.copy").count() >= 4


def test_a_customer_cannot_reach_another_customers_pages_or_media(
    stack: Stack, web: WebServer, browser: object
) -> None:
    a = new_customer(stack)
    b = recorded(stack)
    page = person(browser)
    sign_in(page, web.url, a)
    for url in (
        f"/portal/devices/{b.dev.device_id}",
        f"/portal/recordings?device={b.dev.device_id}&day={DAY}",
        f"/media/recordings/{b.entry_id}",
        f"/media/recordings/{b.entry_id}/original",
        f"/media/devices/{b.dev.device_id}/days/{DAY}",
        f"/distributor/customers/{b.who.id}",
    ):
        # media through the page's own cookies (a navigation to a file would download it)
        got = page.request.get(web.url + url)
        assert got.status in (403, 404), (url, got.status)
        assert "Traceback" not in got.text()
    # the owner reaches the same media
    own = person(browser)
    sign_in(own, web.url, b.who)
    assert own.request.get(f"{web.url}/media/recordings/{b.entry_id}/original").status == 200


def test_distributor_staff_see_no_video_without_the_customers_grant(
    stack: Stack, web: WebServer, browser: object
) -> None:
    b = recorded(stack)
    boss = staff_of(stack, b.who.distributor_id)
    stranger = staff_of(stack, new_customer(stack).distributor_id)
    page = person(browser)
    sign_in(page, web.url, boss)
    assert page.goto(f"{web.url}/distributor/customers/{b.who.id}").status == 200
    watch = f"{web.url}/distributor/customers/{b.who.id}/recordings?day={DAY}"
    clip = f"{web.url}/media/recordings/{b.entry_id}?customer={b.who.id}"
    assert page.goto(watch).status == 403
    assert page.request.get(clip).status == 403
    assert page.request.get(f"{web.url}/media/recordings/{b.entry_id}").status in (401, 404)
    # the customer allows it on their own page; the change is audited
    mine = person(browser)
    sign_in(mine, web.url, b.who)
    mine.goto(f"{web.url}/portal/privacy")
    mine.check("input[name=allow][value=yes]")
    mine.click("form[action='/portal/privacy'] button[type=submit]")
    with session_scope(stack.engine) as s:
        events = s.exec(
            select(AuditEvent).where(
                AuditEvent.entity == "customer", AuditEvent.entity_id == str(b.who.id)
            )
        ).all()
        assert [e.action for e in events if e.action.startswith("video_grant")] == [
            "video_grant:on"
        ]
        assert events[-1].actor == f"portal:customer:{b.who.id}"
    assert page.goto(watch).status == 200
    assert page.locator(".clip.k-M").count() == 1
    assert page.request.get(clip).status == 200
    # staff of another distributor: the customer does not exist for them
    theirs = person(browser)
    sign_in(theirs, web.url, stranger)
    assert theirs.goto(watch).status == 404
    assert theirs.request.get(clip).status == 404


def test_a_day_with_motion_plays_a_dav_clip(stack: Stack, web: WebServer, browser: object) -> None:
    b = recorded(stack)
    page = person(browser)
    sign_in(page, web.url, b.who)
    page.goto(f"{web.url}/portal/recordings?device={b.dev.device_id}&day={DAY}")
    bar = page.locator(".timeline .clip.k-M")
    assert bar.count() == 1
    assert page.locator(".legend .k-M").count() == 1
    bar.focus()
    page.keyboard.press("Enter")  # the keyboard alone plays it
    page.wait_for_function(
        "() => { const v = document.getElementById('player'); return v.readyState >= 3; }",
        timeout=30000,
    )
    first = page.evaluate("document.getElementById('player').currentTime")
    page.wait_for_function(
        f"() => document.getElementById('player').currentTime > {first} + 0.3", timeout=30000
    )
    assert page.get_attribute("#download", "href") == f"/media/recordings/{b.entry_id}/original"


def test_an_hevc_clip_is_flagged_before_it_fails_to_play(
    stack: Stack, web: WebServer, browser: object
) -> None:
    b = recorded(stack)
    with stack.ftp(b.dev) as ftp:
        upload(
            ftp,
            f"{DAY}/002/dav/16/16.00.00-16.00.02[A][0@0][0].dav",
            make_dav(1, codec="hevc", audio=False, start=datetime(2026, 12, 6, 16)),
        )
    page = person(browser)
    sign_in(page, web.url, b.who)
    page.goto(f"{web.url}/portal/recordings?device={b.dev.device_id}&day={DAY}")
    assert page.is_hidden("#hevc-warning")
    page.click(".timeline .clip.k-A")
    page.wait_for_selector("#hevc-warning", state="visible", timeout=30000)
    page.click(".timeline .clip.k-M")  # H.264: the warning goes
    page.wait_for_selector("#hevc-warning", state="hidden", timeout=30000)
