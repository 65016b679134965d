"""The words every part of cam2drive must mean the same thing by.

Statuses and the sets they fall into, the languages we write in, and the
shape of a drive's S3 prefix. Each is defined here once; billing, the
gateway, the CLI and the HTTP service import it instead of spelling it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class OnFull(StrEnum):
    """What a full drive does with a new upload."""

    rotate = "rotate"  # delete the oldest recordings, like the recorder's own HDD
    reject = "reject"  # refuse the upload with 552


class SubscriptionStatus(StrEnum):
    pending = "pending"
    active = "active"
    past_due = "past_due"
    blocked = "blocked"
    # an ISP's ERP blocked the contract (billing/contracts.py): partial keeps
    # recording while the customer feels the block; total stops both
    blocked_partial = "blocked_partial"
    blocked_total = "blocked_total"
    suspended = "suspended"
    cancelled = "cancelled"
    deleted = "deleted"


_S = SubscriptionStatus

#: The device may upload (past_due: the dunning grace period; blocked_partial:
#: an ISP's partial block keeps the evidence coming while viewing stops).
UPLOAD_STATUSES = frozenset({_S.active, _S.past_due, _S.blocked_partial})
#: Billed and recording: silent-recorder alerts watch these.
RECORDING_STATUSES = frozenset({_S.active.value, _S.past_due.value, _S.blocked_partial.value})
#: The subscription still holds its device's drive, so a second one is refused.
HOLDS_DRIVE_STATUSES = frozenset(
    {
        _S.active.value,
        _S.past_due.value,
        _S.blocked.value,
        _S.blocked_partial.value,
        _S.blocked_total.value,
        _S.suspended.value,
    }
)
#: A viewer (the end customer) may not watch this device's recordings: the
#: ISP's blocks, suspension and cancellation are felt by the customer. A
#: drive blocked for non-payment (`blocked`) stays viewable, as the ladder says.
VIEW_REFUSED_STATUSES = frozenset(
    {
        _S.blocked_partial.value,
        _S.blocked_total.value,
        _S.suspended.value,
        _S.cancelled.value,
    }
)
#: Contracts an ISP pays for in its monthly statement (billing/statement.py):
#: the drive is kept for it whether or not the ERP has blocked the customer.
BILLED_CONTRACT_STATUSES = frozenset(
    {
        _S.active.value,
        _S.blocked_partial.value,
        _S.blocked_total.value,
        _S.suspended.value,
    }
)

#: Languages of emails and (later) pages; the first is the default.
LOCALES: tuple[str, ...] = ("es", "pt", "en")

#: Every drive lives under this S3 prefix; invoices and backups never do.
DRIVE_ROOT = "t/"
_DRIVE_PREFIX = re.compile(r"^t/(\d+)/d/(\d+)/$")
_DRIVE_KEY = re.compile(r"^t/(\d+)/d/(\d+)/([^/].*)$")


@dataclass(frozen=True)
class DriveKey:
    customer_id: int
    device_id: int
    rest: str  # the object's name inside the drive ("" for the prefix itself)


def drive_prefix(customer_id: int, device_id: int) -> str:
    """A device's drive: `t/<customer>/d/<device>/`."""
    return f"{DRIVE_ROOT}{customer_id}/d/{device_id}/"


def parse_drive_prefix(prefix: str) -> DriveKey | None:
    m = _DRIVE_PREFIX.match(prefix)
    return DriveKey(int(m[1]), int(m[2]), "") if m else None


def parse_drive_key(key: str) -> DriveKey | None:
    """The drive an object key lies in, or None if it lies in none (or tries to escape)."""
    if "/../" in key or "//" in key:
        return None
    m = _DRIVE_KEY.match(key)
    return DriveKey(int(m[1]), int(m[2]), m[3]) if m else None
