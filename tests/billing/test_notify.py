"""Notifications by email to a real SMTP server on loopback (aiosmtpd), across the ladder."""

from __future__ import annotations

import email
import email.policy
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlmodel import select

from billing import catalog as accounts
from billing.core.db import session_scope
from billing.invoicing.invoices import issue_pending
from billing.notify.outbox import collect, deliver
from billing.payments.sync import day_start
from cli.devstack.mp_emulator import MercadoPagoEmulator
from cli.devstack.seaweed import SeaweedServer, free_port
from tests.support.billing import Clock, authorize, control, set_outcome, status, subscribe
from tests.support.cfdi import give_fiscal
from tests.support.stack import Stack, fiscal, stack_with


class Inbox:
    """An SMTP server that keeps every message it is given."""

    def __init__(self, port: int) -> None:
        self.port, self.messages = port, []  # type: ignore[var-annotated]
        self.controller: Controller | None = None

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((sorted(envelope.rcpt_tos), msg))
        return "250 OK"

    def start(self) -> None:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        assert self.controller is not None
        self.controller.stop()

    def mine(self, address: str) -> list[email.message.EmailMessage]:
        """Messages to one customer: the databases also hold other tests' customers."""
        return [m for rcpts, m in self.messages if address in rcpts]

    def kinds(self, address: str) -> list[str]:
        return [kind_of(m) for m in self.mine(address)]


def kind_of(msg: email.message.EmailMessage) -> str:
    return str(msg["X-Cam2Drive-Notification"]).split(";")[0].strip()


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    box = Inbox(free_port())
    box.start()
    yield box
    box.stop()


@contextmanager
def mailing(db_url: str, seaweed: SeaweedServer, inbox: Inbox, **settings: Any) -> Iterator[Stack]:
    """A stack whose notices go to `inbox` over SMTP."""
    with stack_with(db_url, seaweed, smtp_host="127.0.0.1", smtp_port=inbox.port, **settings) as s:
        yield s


@pytest.fixture
def nstack(db_url: str, seaweed, certs: Path, inbox: Inbox) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    with mailing(
        db_url,
        seaweed,
        inbox,
        smtp_timeout=3,
        mail_from="Cam2Drive <avisos@cam2drive.test>",
        **fiscal(certs),
        silent_hours=24 * 365,  # recorder silence has its own test below
    ) as s:
        yield s


def test_the_dunning_ladder_by_email(
    nstack: Stack, mp_emulator: MercadoPagoEmulator, inbox: Inbox
) -> None:
    clock = Clock(nstack, mp_emulator)
    dev = nstack.device(capacity="1GB", grant=False)
    with session_scope(nstack.engine) as s:
        cust = accounts.get_customer(s, dev.customer_id)
        from billing.core.models import Distributor

        addresses = sorted([cust.email, s.get(Distributor, cust.distributor_id).email])  # type: ignore[union-attr]
        to = cust.email
    sub = subscribe(nstack, clock, dev)
    authorize(nstack, mp_emulator, sub)
    give_fiscal(nstack, dev.customer_id)  # its own invoice, not the month's global one

    def tick(day: date, times: int = 2) -> None:
        """The scheduler's day: billing, invoices, notices; sometimes twice."""
        clock.today = day
        control(mp_emulator, "/__emulator/clock", {"date": day.isoformat()})
        now = day_start(day) + timedelta(hours=12)
        for _ in range(times):
            clock.run()
            issue_pending(nstack.invoicing())
            collect(nstack.engine, nstack.settings, now=now)
            deliver(nstack.engine, nstack.settings, nstack.store, now=now)

    tick(clock.today)
    assert inbox.kinds(to) == ["activated", "invoice_ready"]
    set_outcome(mp_emulator, sub, "reject")
    day = clock.today
    while day < date(2026, 12, 21):
        day += timedelta(days=1)
        tick(day)
        if day == date(2026, 12, 14):  # SMTP is down while the drive is blocked
            inbox.stop()
        if day == date(2026, 12, 15):
            assert status(nstack, sub.id) == "blocked" and "blocked" not in inbox.kinds(to)
        if day == date(2026, 12, 16):
            inbox.start()
    assert inbox.kinds(to) == [
        "activated",
        "invoice_ready",
        "payment_failed",
        "blocked",
        "final_warning",
        "deleted",
    ]
    assert all(rcpts == addresses for rcpts, _ in inbox.messages if to in rcpts)
    by_kind = {kind_of(m): m for m in inbox.mine(to)}
    failed = by_kind["payment_failed"].get_body().get_content()  # type: ignore[union-attr]
    assert "2026-12-15" in failed and "2026-12-20" in failed  # the block and delete dates
    assert by_kind["payment_failed"]["Subject"].startswith("No pudimos cobrar")
    assert "2026-12-20" in by_kind["final_warning"]["Subject"]
    invoice = by_kind["invoice_ready"]
    names = sorted(p.get_filename() for p in invoice.iter_attachments())
    assert names[0].endswith(".pdf") and names[1].endswith(".xml")
    assert by_kind["activated"]["From"] == "Cam2Drive <avisos@cam2drive.test>"
    assert status(nstack, sub.id) == "deleted" and nstack.s3_keys(dev) == {}
    with session_scope(nstack.engine) as s:  # the drive is gone, its receipts are not
        from billing.core.models import Invoice

        inv = s.exec(select(Invoice).where(Invoice.customer_id == dev.customer_id)).one()
    assert nstack.store.get_document(inv.xml_key).startswith(b"<?xml")  # type: ignore[arg-type]
    assert nstack.store.get_document(inv.pdf_key).startswith(b"%PDF")  # type: ignore[arg-type]


def test_a_silent_recorder_is_reported_once_and_its_recovery_once(
    db_url: str, seaweed, inbox: Inbox
) -> None:  # type: ignore[no-untyped-def]
    with mailing(db_url, seaweed, inbox, silent_hours=1 / 3600) as stack:
        dev = stack.device()  # a courtesy subscription: active
        quiet = stack.device()  # never uploads
        with session_scope(stack.engine) as s:
            accounts.set_customer_fiscal(s, dev.customer_id, locale="en", actor="test")
            mail = accounts.get_customer(s, dev.customer_id).email
            quiet_mail = accounts.get_customer(s, quiet.customer_id).email
        with stack.ftp(dev) as ftp:
            ftp.storbinary("STOR a.jpg", __import__("io").BytesIO(b"jpeg"))
        time.sleep(1.5)

        def round_() -> None:
            collect(stack.engine, stack.settings)
            deliver(stack.engine, stack.settings, stack.store)

        round_()
        assert inbox.kinds(mail) == inbox.kinds(quiet_mail) == ["recorder_silent"]
        round_()
        round_()  # not once per tick
        assert inbox.kinds(mail) == inbox.kinds(quiet_mail) == ["recorder_silent"]
        with stack.ftp(dev) as ftp:
            ftp.storbinary("STOR b.jpg", __import__("io").BytesIO(b"jpeg"))
        round_()
        round_()
        assert inbox.kinds(mail) == ["recorder_silent", "recorder_recovered"]
        assert inbox.kinds(quiet_mail) == ["recorder_silent"]
        silent, back = (m["Subject"] for m in inbox.mine(mail))
        assert silent.startswith("Recorder NVR") and "is not uploading" in silent  # English
        assert "is uploading again" in back
        assert "no sube grabaciones" in inbox.mine(quiet_mail)[0]["Subject"]  # Spanish


def test_a_failing_smtp_server_never_blocks_and_never_duplicates(
    nstack: Stack, inbox: Inbox
) -> None:
    from billing.core.models import Notification

    dev = nstack.device(grant=False)
    key = f"t:{dev.device_id}"
    with session_scope(nstack.engine) as s:
        s.add(
            Notification(
                dedupe_key=key,
                kind="deleted",
                customer_id=dev.customer_id,
                payload='{"device": "x", "plan": "p"}',
                status="pending",
            )
        )
        address = accounts.get_customer(s, dev.customer_id).email

    def row() -> Notification:
        with session_scope(nstack.engine) as s:
            return s.exec(select(Notification).where(Notification.dedupe_key == key)).one()

    inbox.stop()
    started = time.monotonic()
    while row().attempts == 0:  # other tests' messages may be ahead of ours in the outbox
        assert deliver(nstack.engine, nstack.settings, nstack.store).sent == 0
        assert time.monotonic() - started < 30
    failed = row()
    assert failed.status == "pending" and "Connection refused" in (failed.last_error or "")
    deliver(nstack.engine, nstack.settings, nstack.store)
    assert row().attempts == 1  # backing off: not retried at once
    inbox.start()
    later = datetime.now().astimezone() + timedelta(minutes=5)
    deliver(nstack.engine, nstack.settings, nstack.store, now=later)
    assert row().status == "sent"
    deliver(nstack.engine, nstack.settings, nstack.store, now=later + timedelta(hours=2))
    assert inbox.kinds(address) == ["deleted"]
