"""May this device upload now, into which drive, under which rules; may its customer view?"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Engine, exists, func, select
from sqlalchemy.engine import Connection

from billing.core.db import reader
from billing.core.errors import NotEntitled
from billing.core.models import (
    UPLOAD_STATUSES,
    Device,
    Drive,
    Plan,
    Subscription,
    SubscriptionStatus,
)
from billing.core.vocab import VIEW_REFUSED_STATUSES

_REFUSED = {
    SubscriptionStatus.pending.value: "uploads refused: its subscription is waiting for the first payment",
    SubscriptionStatus.blocked.value: "uploads refused: its subscription is blocked for non-payment; recordings can still be viewed",
    SubscriptionStatus.blocked_total.value: "uploads refused: its contract is blocked by the provider",
    SubscriptionStatus.suspended.value: "uploads refused: its subscription is suspended",
    SubscriptionStatus.cancelled.value: "uploads refused: its subscription was cancelled",
    SubscriptionStatus.deleted.value: "uploads refused: its subscription ended and its drive was deleted",
}


@dataclass(frozen=True)
class Entitlement:
    device_id: int
    drive_id: int
    prefix: str
    capacity_bytes: int
    on_full: str
    status: str


def upload_entitlement(
    engine: Engine, device_id: int, conn: Connection | None = None
) -> Entitlement:
    """The drive a device may upload into, or NotEntitled saying why not.

    Checked at every upload, not only at login, so a subscription blocked
    mid-session stops the next file.
    """
    subs = Subscription.__table__  # type: ignore[attr-defined]
    plans = Plan.__table__  # type: ignore[attr-defined]
    drives = Drive.__table__  # type: ignore[attr-defined]
    if conn is None:
        with reader(engine).connect() as own:
            return upload_entitlement(engine, device_id, own)
    row = conn.execute(
        select(
            subs.c.status,
            plans.c.on_full,
            drives.c.id.label("drive_id"),
            drives.c.prefix,
            drives.c.capacity_bytes,
        )
        .select_from(
            subs.join(plans, plans.c.id == subs.c.plan_id).join(
                drives, drives.c.device_id == subs.c.device_id
            )
        )
        .where(subs.c.device_id == device_id)
        .order_by(subs.c.id.desc())
        .limit(1)
    ).first()
    if row is None:
        raise NotEntitled("uploads refused: this device has no subscription")
    if row.status not in UPLOAD_STATUSES:
        if row.status in _REFUSED:
            raise NotEntitled(_REFUSED[row.status])
        raise NotEntitled("uploads refused: its subscription is %(status)s", status=row.status)
    return Entitlement(device_id=device_id, **row._mapping)


def entitled(device_id: int | ColumnElement[Any]) -> ColumnElement[bool]:
    """SQL condition: the device's newest subscription allows uploads.

    Used inside the UPDATE that reserves bytes, so the check and the
    reservation are one atomic step: a subscription blocked a moment ago
    stops the very next part, with no separate read on the hot path.
    """
    subs = Subscription.__table__  # type: ignore[attr-defined]
    newest = select(func.max(subs.c.id)).where(subs.c.device_id == device_id).scalar_subquery()
    return exists().where(
        subs.c.id == newest, subs.c.status.in_([s.value for s in UPLOAD_STATUSES])
    )


_VIEW_REFUSED = {
    SubscriptionStatus.blocked_partial.value: "viewing refused: the contract is blocked by the provider",
    SubscriptionStatus.blocked_total.value: "viewing refused: the contract is blocked by the provider",
    SubscriptionStatus.suspended.value: "viewing refused: the contract is suspended",
    SubscriptionStatus.cancelled.value: "viewing refused: the contract is cancelled",
}


def viewable_drives(engine: Engine, customer_id: int) -> dict[str, int]:
    """A viewer's folders: device name -> drive id, for the devices they may watch.

    A device whose newest subscription is in VIEW_REFUSED_STATUSES is left
    out (an ISP's block, suspension or cancellation); a customer left with
    no device at all while some are refused gets NotEntitled naming why, so
    the login is refused with the reason instead of showing an empty root.
    """
    devices = Device.__table__  # type: ignore[attr-defined]
    drives = Drive.__table__  # type: ignore[attr-defined]
    subs = Subscription.__table__  # type: ignore[attr-defined]
    newest = (
        select(func.max(subs.c.id))
        .where(subs.c.device_id == devices.c.id)
        .correlate(devices)
        .scalar_subquery()
    )
    with reader(engine).connect() as conn:
        rows = conn.execute(
            select(devices.c.name, drives.c.id, subs.c.status)
            .select_from(
                devices.join(drives, drives.c.device_id == devices.c.id).outerjoin(
                    subs, subs.c.id == newest
                )
            )
            .where(devices.c.customer_id == customer_id)
        ).all()
    allowed = {r.name: r.id for r in rows if r.status not in VIEW_REFUSED_STATUSES}
    refused = [r.status for r in rows if r.status in VIEW_REFUSED_STATUSES]
    if refused and not allowed:
        raise NotEntitled(_VIEW_REFUSED[refused[0]])
    return allowed
