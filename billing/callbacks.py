"""Signed callbacks to a distributor's ERP, sent from an outbox.

An event is queued in the transaction that caused it (one row, unique by
what it tells, so a retried request or sweep queues it once) and only if
the distributor registered an endpoint. `deliver` runs from the scheduler
or `cam2drive callback deliver`, never inside an API request: it claims a
due row, POSTs it, and on any failure reschedules it with a growing
back-off until `callback_max_attempts`, after which it is kept as `failed`.

Signature (the way Stripe and GitHub sign webhooks): the headers carry
`X-Cam2drive-Timestamp` (Unix seconds) and `X-Cam2drive-Signature:
sha256=<hex>`, the HMAC-SHA256 with the endpoint's secret of
`<timestamp>.<body bytes>`. A receiver recomputes it and rejects an old
timestamp, so a captured delivery cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Engine, and_, or_, update
from sqlmodel import Session, col, select

from billing.catalog import get_distributor
from billing.core import audit
from billing.core.db import add_once, session_scope
from billing.core.errors import InvalidField
from billing.core.models import (
    CallbackEndpoint,
    CallbackEvent,
    Contract,
    Cursor,
    Drive,
    Notification,
    Subscription,
    SubscriptionStatus,
    utcnow,
)
from billing.core.settings import Settings

log = logging.getLogger("cam2drive.callbacks")
EVENTS = (
    "contract.activated",
    "device.silent",
    "device.recovered",
    "drive.quota_90",
    "drive.deletion_scheduled",
    "drive.deleted",
)
CLAIM = timedelta(minutes=5)  # a claimed delivery whose sender died is retried after this


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` over `<timestamp>.<body>`: what the ERP recomputes to trust a call."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def set_endpoint(
    session: Session, distributor_id: int, url: str, secret: str | None, *, actor: str
) -> tuple[CallbackEndpoint, str]:
    """Register (or replace) where events go; a secret is made when none is given."""
    get_distributor(session, distributor_id)
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname or len(url) > 500:
        raise InvalidField("url", "must be an http(s) URL such as https://erp.example/cam2drive")
    secret = secret or secrets.token_urlsafe(32)
    if len(secret) < 16 or len(secret) > 200:
        raise InvalidField("secret", "must have 16 to 200 characters")
    row = session.get(CallbackEndpoint, distributor_id) or CallbackEndpoint(
        distributor_id=distributor_id, url="", secret=""
    )
    row.url, row.secret = url.strip(), secret
    session.add(row)
    audit.record(
        session,
        "distributor",
        distributor_id,
        "callback_set",
        audit.OPERATOR,
        actor=actor,
        url=row.url,
    )
    return row, secret


def queue(
    session: Session, distributor_id: int, event: str, dedupe_key: str, data: dict[str, Any]
) -> bool:
    """Queue `event` once per key if the distributor listens; True if queued now."""
    assert event in EVENTS, event
    if session.get(CallbackEndpoint, distributor_id) is None:
        return False
    if session.exec(select(CallbackEvent.id).where(CallbackEvent.dedupe_key == dedupe_key)).first():
        return False
    now = utcnow()
    body = json.dumps(
        {"event": event, "id": dedupe_key, "created_at": now.isoformat(), "data": data},
        default=str,
        sort_keys=True,
    )
    row = CallbackEvent(
        distributor_id=distributor_id,
        dedupe_key=dedupe_key,
        event=event,
        payload=body,
        status="pending",
        next_attempt_at=now,
    )
    return add_once(session, row)  # False: queued by a concurrent sweep


_RECORDER_NOTICES = {"recorder_silent": "device.silent", "recorder_recovered": "device.recovered"}
QUOTA_ALERT = 0.9


def collect(session: Session, now: datetime | None = None) -> int:
    """Queue the events nothing queues in a request: a recorder gone silent or back
    (read from the customers' email outbox, billing/notify/outbox.py, which
    already decides when a recorder is silent) and a drive at 90 % of its plan
    (once a month per drive). Returns how many were queued."""
    now = now or utcnow()
    queued = 0
    cursor = session.get(Cursor, "erp_events") or Cursor(name="erp_events", position=0)
    notes = session.exec(
        select(Notification)
        .where(
            Notification.id > cursor.position,  # type: ignore[operator]
            Notification.kind.in_(tuple(_RECORDER_NOTICES)),  # type: ignore[attr-defined]
        )
        .order_by(Notification.id)  # type: ignore[arg-type]
    ).all()
    for note in notes:
        # dedupe keys name the device: silent:device:<id>:... / recovered:device:<id>:...
        parts = note.dedupe_key.split(":")
        device_id = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else None
        contract = (
            session.exec(select(Contract).where(Contract.device_id == device_id)).first()
            if device_id is not None
            else None
        )
        if contract is not None:
            queued += queue(
                session,
                contract.distributor_id,
                _RECORDER_NOTICES[note.kind],
                f"{_RECORDER_NOTICES[note.kind]}:{note.id}",
                {"contract_id": contract.external_id, **json.loads(note.payload)},
            )
        cursor.position = max(cursor.position, note.id or 0)
    session.add(cursor)
    month = now.strftime("%Y-%m")
    full = session.exec(
        select(Contract, Drive)
        .join(Drive, Drive.device_id == Contract.device_id)  # type: ignore[arg-type]
        .join(Subscription, Subscription.id == Contract.subscription_id)  # type: ignore[arg-type]
        .where(
            Drive.capacity_bytes > 0,
            Drive.committed_bytes >= Drive.capacity_bytes * QUOTA_ALERT,
            Subscription.status != SubscriptionStatus.deleted.value,
        )
    ).all()
    for contract, drive in full:
        queued += queue(
            session,
            contract.distributor_id,
            "drive.quota_90",
            f"drive.quota_90:{drive.id}:{month}",
            {
                "contract_id": contract.external_id,
                "capacity_bytes": drive.capacity_bytes,
                "committed_bytes": drive.committed_bytes,
            },
        )
    return queued


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min ... capped at 6 h: an ERP down for a day is caught up within hours."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 6 * 3600))


def deliver(
    engine: Engine, settings: Settings, now: datetime | None = None, limit: int = 500
) -> DeliveryReport:
    """Send every due event once; failures wait for their back-off."""
    import requests

    now = now or utcnow()
    report = DeliveryReport()
    with session_scope(engine) as s:
        due = s.exec(
            select(CallbackEvent.id)
            .where(
                or_(
                    and_(
                        col(CallbackEvent.status) == "pending",
                        col(CallbackEvent.next_attempt_at) <= now,
                    ),
                    and_(
                        col(CallbackEvent.status) == "sending",
                        col(CallbackEvent.next_attempt_at) <= now,
                    ),
                )
            )
            .order_by(CallbackEvent.id)  # type: ignore[arg-type]
            .limit(limit)
        ).all()
    http = requests.Session()
    for event_id in due:
        claimed = _claim(engine, event_id, now)  # type: ignore[arg-type]
        if claimed is None:
            continue
        event, endpoint = claimed
        body = event.payload.encode()
        stamp = str(int(now.timestamp()))
        error: str | None = None
        try:
            reply = http.post(
                endpoint.url,
                data=body,
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": "cam2drive-callbacks/1",
                    "X-Cam2drive-Event": event.event,
                    "X-Cam2drive-Delivery": event.dedupe_key,
                    "X-Cam2drive-Timestamp": stamp,
                    "X-Cam2drive-Signature": signature(endpoint.secret, stamp, body),
                },
                timeout=settings.callback_timeout,
                allow_redirects=False,
            )
            if not 200 <= reply.status_code < 300:
                error = f"HTTP {reply.status_code}"
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        _settle(engine, event, error, now, settings, report)
    return report


def _claim(engine: Engine, event_id: int, now: datetime) -> tuple[CallbackEvent, Any] | None:
    table = CallbackEvent.__table__  # type: ignore[attr-defined]
    with session_scope(engine) as s:
        done = s.execute(
            update(table)
            .where(
                table.c.id == event_id,
                table.c.status.in_(("pending", "sending")),
                table.c.next_attempt_at <= now,
            )
            .values(status="sending", next_attempt_at=now + CLAIM, attempts=table.c.attempts + 1)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            return None
        event = s.get(CallbackEvent, event_id)
        assert event is not None
        endpoint = s.get(CallbackEndpoint, event.distributor_id)
        if endpoint is None:  # unregistered since: nothing to send it to
            event.status, event.last_error = "failed", "no callback endpoint"
            s.add(event)
            return None
        return event, endpoint


def _settle(
    engine: Engine,
    event: CallbackEvent,
    error: str | None,
    now: datetime,
    settings: Settings,
    report: DeliveryReport,
) -> None:
    with session_scope(engine) as s:
        row = s.get(CallbackEvent, event.id)
        assert row is not None
        if error is None:
            row.status, row.sent_at, row.last_error = "sent", utcnow(), None
            report.sent += 1
        elif row.attempts >= settings.callback_max_attempts:
            row.status, row.last_error = "failed", error
            report.failed += 1
            log.warning("callback %s failed for good: %s", row.dedupe_key, error)
        else:
            row.status, row.last_error = "pending", error
            row.next_attempt_at = now + backoff(row.attempts)
            report.retrying += 1
        s.add(row)
