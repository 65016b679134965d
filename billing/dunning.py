"""The dunning ladder: past_due -> blocked -> drive deleted, and the deletion itself.

Deletion is deliberate: only a subscription whose own ledger says it is
unpaid past every step is deleted, only in a pass where Mercado Pago was
reached for it (see billing/cycle.py), and every deletion is audited with what it
removed. An interrupted deletion resumes on the next pass: objects are
removed first, then the index, and the status becomes `deleted` last.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Protocol

from sqlmodel import Session

from billing.catalog import drive_of
from billing.core import audit
from billing.core.models import Drive, Subscription, SubscriptionStatus
from billing.core.settings import Settings
from billing.payments.sync import ACTOR, lapse
from billing.subscriptions.lifecycle import transition

S = SubscriptionStatus


class DrivePurger(Protocol):
    """How billing deletes a drive's recordings without knowing the index or S3.

    The gateway owns both (gateway/purge.py); cli/ wires them in. The purge
    runs inside `session`'s transaction, so the index rows go with the
    status change or not at all; S3 objects are removed first and a re-run
    after a crash finds fewer to remove.
    """

    def purge(self, session: Session, drive: Drive) -> tuple[int, int, int]:
        """Delete every object and index row of `drive`; (objects, bytes, index rows)."""
        ...


@dataclass(frozen=True)
class Ladder:
    """The dates of one unpaid subscription's way down: the only place they are computed.

    `block_on`: uploads stop; `warn_on`: the final warning goes out;
    `delete_on`: the drive is deleted. From a failed installment all three
    are planned; once blocked, they count from the day it really was.
    """

    block_on: date
    warn_on: date
    delete_on: date


def ladder(
    settings: Settings, *, past_due_since: date | None = None, blocked_on: date | None = None
) -> Ladder:
    if blocked_on is None:
        if past_due_since is None:
            raise ValueError("the ladder starts at a failed installment or a block")
        blocked_on = past_due_since + timedelta(days=settings.grace_days)
    delete_on = blocked_on + timedelta(days=settings.delete_after_days)
    return Ladder(
        block_on=blocked_on,
        delete_on=delete_on,
        warn_on=delete_on - timedelta(days=settings.final_warning_days),
    )


def retention_end(settings: Settings, cancelled_on: date) -> date:
    """When a drive whose customer cancelled (at the end of the paid period) is deleted."""
    return cancelled_on + timedelta(days=settings.cancel_retention_days)


def due_step(sub: Subscription, today: date, settings: Settings) -> str | None:
    """ "block", "delete" or None: what the ladder asks of `sub` today."""
    if sub.status == S.cancelled.value and sub.kind == "paid" and sub.blocked_at is not None:
        return "delete" if today >= retention_end(settings, sub.blocked_at.date()) else None
    if sub.status == S.past_due.value and sub.past_due_since is not None:
        if today >= ladder(settings, past_due_since=sub.past_due_since.date()).block_on:
            return "block"
    if sub.status == S.blocked.value and sub.blocked_at is not None:
        if today >= ladder(settings, blocked_on=sub.blocked_at.date()).delete_on:
            return "delete"
    return None


def block(session: Session, sub: Subscription, today: date, grace_days: int) -> None:
    why = (
        f"unpaid {grace_days} days after the failed installment; uploads stop, "
        "recordings stay viewable"
    )
    lapse(session, sub, S.blocked.value, today, cause=why)


def delete_drive(session: Session, sub: Subscription, purger: DrivePurger) -> tuple[int, int]:
    """Remove every object and index row of the subscription's drive, then mark it deleted."""
    drive = drive_of(session, sub.device_id)
    objects, size, indexed = purger.purge(session, drive)
    audit.record(
        session,
        actor=ACTOR,
        entity="drive",
        entity_id=drive.id,
        action="deleted",
        cause=f"subscription {sub.id} cancelled past retention"
        if sub.status == S.cancelled.value
        else f"subscription {sub.id} unpaid past the dunning ladder",
        objects=objects,
        bytes=size,
        index_rows=indexed,
        prefix=drive.prefix,
    )
    transition(
        session,
        sub,
        S.deleted.value,
        actor=ACTOR,
        cause="drive deleted after the dunning ladder"
        if sub.status != S.cancelled.value
        else "drive deleted after the cancellation's retention",
        objects=objects,
        bytes=size,
    )
    return objects, size
