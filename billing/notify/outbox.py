"""Email notifications: collected into an outbox, then sent by SMTP.

Collecting reads what happened (the audit log for subscription transitions
and issued invoices; the drives for silent recorders; the ladder for the
final warning) and queues one `notifications` row per event, unique by a
key naming that event: collecting twice, a restart, or two schedulers
racing queue it once. Sending claims each row atomically before talking to
SMTP and marks it sent after; a failing SMTP server leaves rows pending
with a growing back-off, and nothing here is ever on billing's path.
"""

from __future__ import annotations

import json
import logging
import smtplib
import ssl
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from typing import Any

from sqlalchemy import Engine, and_, func, or_, update
from sqlmodel import Session, col, select

from billing.core.db import add_once, session_scope
from billing.core.errors import Cam2DriveError
from billing.core.models import (
    AuditEvent,
    Cursor,
    Customer,
    Device,
    Distributor,
    DistributorUser,
    Drive,
    Notification,
    Plan,
    Subscription,
    SubscriptionStatus,
    utcnow,
)
from billing.core.settings import Settings
from billing.core.vocab import RECORDING_STATUSES
from billing.dunning import ladder
from billing.notify.messages import PRIVATE, render

log = logging.getLogger("cam2drive.notify")
S = SubscriptionStatus
#: audit events younger than this are read again next time: a transaction
#: that took a lower id may commit after one with a higher id.
SETTLE = timedelta(minutes=5)
CLAIM = timedelta(minutes=10)
WATCHED = ("status:active", "status:past_due", "status:blocked", "status:deleted")


@dataclass
class NotifyReport:
    queued: list[str] = field(default_factory=list)
    sent: int = 0
    failed: int = 0
    waiting: int = 0
    disabled: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _day(value: datetime | date | None) -> str:
    return (
        "?"
        if value is None
        else (value.date() if isinstance(value, datetime) else value).isoformat()
    )


def _queue(
    session: Session,
    now: datetime,
    key: str,
    kind: str,
    customer_id: int,
    payload: dict[str, Any],
    report: NotifyReport,
) -> None:
    """Queue once per key, due at the collector's `now`: one clock for collect and deliver."""
    if session.exec(select(Notification.id).where(Notification.dedupe_key == key)).first():
        return
    row = Notification(
        dedupe_key=key,
        kind=kind,
        customer_id=customer_id,
        payload=json.dumps(payload, default=str),
        status="pending",
        next_attempt_at=now,
    )
    if add_once(session, row):  # else queued by a concurrent collector
        report.queued.append(kind)


def _sub_payload(session: Session, sub: Subscription) -> tuple[int, dict[str, Any]]:
    device = session.get(Device, sub.device_id)
    plan = session.get(Plan, sub.plan_id)
    assert device is not None and plan is not None
    return device.customer_id, {
        "device": device.name,
        "plan": plan.code,
        "paid_through": _day(sub.paid_through),
    }


def collect(engine: Engine, settings: Settings, now: datetime | None = None) -> NotifyReport:
    """Queue every notification that is due; safe to run any number of times."""
    now = now or utcnow()
    report = NotifyReport()
    with session_scope(engine) as s:
        _from_audit(s, settings, now, report)
    with session_scope(engine) as s:
        _final_warnings(s, settings, now, report)
    with session_scope(engine) as s:
        _silent_recorders(s, settings, now, report)
    return report


def _from_audit(s: Session, settings: Settings, now: datetime, report: NotifyReport) -> None:
    cursor = s.get(Cursor, "notify") or Cursor(name="notify", position=0)
    events = s.exec(
        select(AuditEvent)
        .where(
            col(AuditEvent.id) > cursor.position,
            or_(
                and_(col(AuditEvent.entity) == "subscription", col(AuditEvent.action).in_(WATCHED)),
                and_(col(AuditEvent.entity) == "invoice", col(AuditEvent.action) == "issued"),
            ),
        )
        .order_by(col(AuditEvent.id))
    ).all()
    settled, gap = cursor.position, False
    for ev in events:
        if ev.entity == "invoice":
            _invoice_ready(s, int(ev.entity_id), now, report)
        else:
            _transition(s, settings, ev, now, report)
        gap = gap or ev.at > now - SETTLE
        if not gap:  # the cursor only passes events nothing can still precede
            settled = ev.id or settled
    cursor.position = settled
    s.add(cursor)


def _transition(
    s: Session, settings: Settings, ev: AuditEvent, now: datetime, report: NotifyReport
) -> None:
    sub = s.get(Subscription, int(ev.entity_id))
    if sub is None:
        return
    detail = json.loads(ev.detail or "{}")
    customer_id, payload = _sub_payload(s, sub)
    key = f"{ev.action}:audit:{ev.id}"
    if ev.action == "status:active":
        if detail.get("status_before") == S.pending.value:
            _queue(s, now, key, "activated", customer_id, payload, report)
    elif ev.action == "status:past_due":
        since = ev.at.date() if sub.past_due_since is None else sub.past_due_since.date()
        dates = ladder(settings, past_due_since=since)
        payload.update(block_on=dates.block_on.isoformat(), delete_on=dates.delete_on.isoformat())
        _queue(s, now, key, "payment_failed", customer_id, payload, report)
    elif ev.action == "status:blocked":
        since = ev.at.date() if sub.blocked_at is None else sub.blocked_at.date()
        payload.update(delete_on=ladder(settings, blocked_on=since).delete_on.isoformat())
        _queue(s, now, key, "blocked", customer_id, payload, report)
    elif ev.action == "status:deleted":
        _queue(s, now, key, "deleted", customer_id, payload, report)


def _invoice_ready(s: Session, invoice_id: int, now: datetime, report: NotifyReport) -> None:
    from billing.core.models import Charge, Invoice
    from billing.invoicing.invoices import concept_of

    inv = s.get(Invoice, invoice_id)
    # a global invoice goes to "público en general", no one to send it to;
    # a credit note's email is not written yet (the customer sees it in orders)
    if inv is None or inv.status != "issued" or inv.kind != "I":
        return
    charge = s.get(Charge, inv.charge_id)
    assert charge is not None
    _queue(
        s,
        now,
        f"invoice_ready:{inv.id}",
        "invoice_ready",
        inv.customer_id,
        {
            "serie": inv.serie,
            "folio": inv.folio,
            "uuid": inv.uuid,
            "total": str(inv.total),
            "currency": inv.currency,
            "concept": concept_of(s, charge),
            "invoice_id": inv.id,
        },
        report,
    )


def _final_warnings(s: Session, settings: Settings, now: datetime, report: NotifyReport) -> None:
    """Blocked drives whose deletion is `final_warning_days` away or nearer."""
    today = now.date()
    for sub in s.exec(
        select(Subscription).where(
            Subscription.status == S.blocked.value, col(Subscription.blocked_at).is_not(None)
        )
    ):
        assert sub.blocked_at is not None
        blocked_on = sub.blocked_at.date()
        dates = ladder(settings, blocked_on=blocked_on)
        if today < dates.warn_on:
            continue
        customer_id, payload = _sub_payload(s, sub)
        payload["delete_on"] = dates.delete_on.isoformat()
        _queue(
            s,
            now,
            f"final_warning:sub:{sub.id}:{blocked_on}",
            "final_warning",
            customer_id,
            payload,
            report,
        )


def _silent_recorders(s: Session, settings: Settings, now: datetime, report: NotifyReport) -> None:
    """One alert when a live recorder goes quiet, one when it is back."""
    cutoff = now - timedelta(hours=settings.silent_hours)
    live = (
        select(Device, Drive.last_upload_at, Subscription.updated_at)
        .join(Drive, col(Drive.device_id) == Device.id)
        .join(Subscription, col(Subscription.device_id) == Device.id)
        .where(col(Subscription.status).in_(RECORDING_STATUSES))
    )
    hours = f"{settings.silent_hours:g}"
    for device, last, since in s.exec(live.where(col(Device.silent_since).is_(None))).all():
        quiet_from = last or since
        if quiet_from is None or quiet_from >= cutoff:
            continue
        device.silent_since = now
        s.add(device)
        _queue(
            s,
            now,
            f"silent:device:{device.id}:{now.isoformat()}",
            "recorder_silent",
            device.customer_id,
            {
                "device": device.name,
                "hours": hours,
                "last_upload": quiet_from.strftime("%Y-%m-%d %H:%M UTC") if last else "never",
            },
            report,
        )
    back = (
        select(Device, Drive.last_upload_at)
        .join(Drive, col(Drive.device_id) == Device.id)
        .where(
            col(Device.silent_since).is_not(None),
            col(Drive.last_upload_at).is_not(None),
            col(Drive.last_upload_at) > Device.silent_since,
        )
    )
    for device, last in s.exec(back).all():
        assert device.silent_since is not None and last is not None  # the query asks for both
        _queue(
            s,
            now,
            f"recovered:device:{device.id}:{device.silent_since.isoformat()}",
            "recorder_recovered",
            device.customer_id,
            {"device": device.name, "recovered_at": last.strftime("%Y-%m-%d %H:%M UTC")},
            report,
        )
        device.silent_since = None
        s.add(device)


# --- sending -----------------------------------------------------------------


def deliver(
    engine: Engine,
    settings: Settings,
    store: Any = None,
    *,
    now: datetime | None = None,
    limit: int = 200,
) -> NotifyReport:
    """Send what is due; a failure postpones that message, never raises."""
    now = now or utcnow()
    report = NotifyReport()
    if not settings.smtp_host:
        report.disabled = "smtp_host is not set: notifications wait in the outbox"
        return report
    with session_scope(engine) as s:
        due = list(
            s.exec(
                select(Notification.id)
                .where(
                    or_(
                        col(Notification.status) == "pending",
                        col(Notification.status) == "sending",
                    ),
                    Notification.next_attempt_at <= now,
                )
                .order_by(col(Notification.id))
                .limit(limit)
            )
        )
    smtp: smtplib.SMTP | None = None
    try:
        for note_id in due:
            if not _claim(engine, note_id, now):  # type: ignore[arg-type]
                continue
            try:
                message = _message(engine, settings, store, note_id)  # type: ignore[arg-type]
                if smtp is None:
                    smtp = _connect(settings)
                smtp.send_message(message)
            except (OSError, smtplib.SMTPException, Cam2DriveError) as exc:
                _postpone(engine, note_id, now, exc)  # type: ignore[arg-type]
                report.failed += 1
                if isinstance(exc, (OSError, smtplib.SMTPServerDisconnected)):
                    break  # the server is down: the rest waits for the next round
                continue
            _mark_sent(engine, note_id)  # type: ignore[arg-type]
            report.sent += 1
    finally:
        if smtp is not None:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                pass
    with session_scope(engine) as s:
        report.waiting = s.exec(
            select(func.count()).select_from(Notification).where(Notification.status != "sent")
        ).one()
    return report


def _claim(engine: Engine, note_id: int, now: datetime) -> bool:
    """Take the row for this sender, atomically; a crashed sender's claim lapses."""
    table = Notification.__table__  # type: ignore[attr-defined]
    with session_scope(engine) as s:
        done = s.exec(
            update(table)
            .where(table.c.id == note_id, table.c.status != "sent", table.c.next_attempt_at <= now)
            .values(status="sending", next_attempt_at=now + CLAIM)
        )
        return bool(done.rowcount == 1)


def _postpone(engine: Engine, note_id: int, now: datetime, exc: BaseException) -> None:
    with session_scope(engine) as s:
        note = s.get(Notification, note_id)
        assert note is not None
        note.attempts += 1
        note.status = "pending"
        note.next_attempt_at = now + min(
            timedelta(minutes=2 ** min(note.attempts, 10)), timedelta(hours=1)
        )
        note.last_error = f"{type(exc).__name__}: {exc}"[:500]
        s.add(note)
    log.warning("notification %s postponed: %s", note_id, exc)


def _mark_sent(engine: Engine, note_id: int) -> None:
    with session_scope(engine) as s:
        note = s.get(Notification, note_id)
        assert note is not None
        note.status, note.sent_at, note.last_error = "sent", utcnow(), None
        s.add(note)


def _connect(settings: Settings) -> smtplib.SMTP:
    host, port, timeout = settings.smtp_host or "", settings.smtp_port, settings.smtp_timeout
    smtp: smtplib.SMTP
    if settings.smtp_ssl:
        smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=ssl.create_default_context())
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
    if settings.smtp_username:
        smtp.login(settings.smtp_username, settings.smtp_password or "")
    return smtp


def _message(engine: Engine, settings: Settings, store: Any, note_id: int) -> EmailMessage:
    with session_scope(engine) as s:
        note = s.get(Notification, note_id)
        assert note is not None
        to: Customer | DistributorUser | None = (
            s.get(Customer, note.customer_id)
            if note.customer_id is not None
            else s.get(DistributorUser, note.staff_id)
        )
        assert to is not None
        distributor = s.get(Distributor, to.distributor_id)
        payload = json.loads(note.payload)
        payload.setdefault("customer", to.name or to.email)
        locale = to.locale or settings.default_locale
        subject, body = render(note.kind, locale, payload)
        msg = EmailMessage()
        msg["From"] = settings.mail_from
        msg["To"] = formataddr((to.name or "", to.email))
        if distributor is not None and note.kind not in PRIVATE:
            msg["Cc"] = formataddr((distributor.name, distributor.email))
        msg["Subject"] = subject
        msg["Message-ID"] = make_msgid(idstring=f"c2d-{note.id}")
        msg["X-Cam2Drive-Notification"] = f"{note.kind}; {note.dedupe_key}"
        msg.set_content(body)
        if note.kind == "invoice_ready":
            from billing.invoicing.invoices import invoice_files

            xml, pdf = invoice_files(s, store, int(payload["invoice_id"]))
            name = f"{payload['serie']}-{payload['folio']}"
            msg.add_attachment(pdf, maintype="application", subtype="pdf", filename=f"{name}.pdf")
            msg.add_attachment(xml, maintype="application", subtype="xml", filename=f"{name}.xml")
    return msg
