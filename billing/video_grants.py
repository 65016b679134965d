"""A customer's permission for their distributor's staff to watch their recordings.

Off by default: staff run the account (devices, subscriptions) but see no
video. Only the customer turns it on or off, on their own page; both are
audited, and every video request by staff checks it again.
"""

from __future__ import annotations

from sqlmodel import Session

from billing.core import audit
from billing.core.models import VideoGrant

_CAUSE = "the customer changed who may watch their recordings"


def granted(session: Session, customer_id: int) -> bool:
    return session.get(VideoGrant, customer_id) is not None


def set_grant(session: Session, customer_id: int, allow: bool, *, actor: str) -> bool:
    """Turn the grant on or off; True if that changed anything (and was audited)."""
    row = session.get(VideoGrant, customer_id)
    if allow == (row is not None):
        return False
    if allow:
        session.add(VideoGrant(customer_id=customer_id))
    else:
        session.delete(row)
    action = "video_grant:on" if allow else "video_grant:off"
    audit.record(session, "customer", customer_id, action, _CAUSE, actor=actor)
    return True
