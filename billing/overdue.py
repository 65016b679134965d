"""The dunning ladder: past_due -> blocked -> drive deleted, and the deletion itself.

Deletion is deliberate: only a subscription whose own ledger says it is
unpaid past every step is deleted, only in a pass where Mercado Pago was
reached for it (see run.py), and every deletion is audited with what it
removed. An interrupted deletion resumes on the next pass: objects are
removed first, then the index, and the status becomes `deleted` last.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Protocol

from sqlalchemy import delete, update
from sqlmodel import Session

from billing import audit
from billing.accounts import drive_of
from billing.models import Drive, DriveEntry, Subscription, SubscriptionStatus
from billing.payments import ACTOR, day_start
from billing.subscriptions import transition

S = SubscriptionStatus


class DriveStore(Protocol):
    """What billing needs of storage; cli/ hands it gateway's S3 store."""

    def delete_prefix(self, prefix: str) -> tuple[int, int]:
        """Delete every object under `prefix`; (objects, bytes) removed."""
        ...


def due_step(sub: Subscription, today: date, grace_days: int,
             delete_after_days: int) -> str | None:
    """"block", "delete" or None: what the ladder asks of `sub` today."""
    if sub.status == S.past_due.value and sub.past_due_since is not None:
        if today >= sub.past_due_since.date() + timedelta(days=grace_days):
            return "block"
    if sub.status == S.blocked.value and sub.blocked_at is not None:
        if today >= sub.blocked_at.date() + timedelta(days=delete_after_days):
            return "delete"
    return None


def block(session: Session, sub: Subscription, today: date, grace_days: int) -> None:
    sub.blocked_at = day_start(today)
    transition(session, sub, S.blocked.value, actor=ACTOR,
               cause=f"unpaid {grace_days} days after the failed installment; uploads stop, "
                     "recordings stay viewable")


def delete_drive(session: Session, sub: Subscription, store: DriveStore) -> tuple[int, int]:
    """Remove every object and index row of the subscription's drive, then mark it deleted."""
    drive = drive_of(session, sub.device_id)
    objects, size = store.delete_prefix(drive.prefix)
    entries = DriveEntry.__table__  # type: ignore[attr-defined]
    drives = Drive.__table__  # type: ignore[attr-defined]
    indexed = session.exec(  # type: ignore[call-overload]
        delete(entries).where(entries.c.drive_id == drive.id)).rowcount
    session.exec(update(drives).where(drives.c.id == drive.id).values(  # type: ignore[call-overload]
        committed_bytes=0, object_count=0, capacity_bytes=0))
    audit.record(session, actor=ACTOR, entity="drive", entity_id=drive.id, action="deleted",
                 cause=f"subscription {sub.id} unpaid past the dunning ladder",
                 objects=objects, bytes=size, index_rows=indexed, prefix=drive.prefix)
    transition(session, sub, S.deleted.value, actor=ACTOR,
               cause="drive deleted after the dunning ladder", objects=objects, bytes=size)
    return objects, size
