"""The audit log: one row per state change, written in the same transaction."""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import Session

from billing.core import staging
from billing.core.models import AuditEvent, utcnow

AUDIT = AuditEvent.__table__  # type: ignore[attr-defined]


def record(
    session: Session,
    *,
    actor: str,
    entity: str,
    entity_id: object,
    action: str,
    cause: str,
    **detail: Any,
) -> None:
    """Add an audit event to `session`; it commits or rolls back with the change."""
    row: dict[str, Any] = {
        "at": utcnow(),
        "actor": actor,
        "entity": entity,
        "entity_id": str(entity_id),
        "action": action,
        "cause": cause,
        "detail": json.dumps(detail, default=str, sort_keys=True) if detail else None,
    }
    if not staging.add(session, AUDIT, row):
        session.add(AuditEvent(**row))


def subscription(
    session: Session, sub_id: int | None, action: str, cause: str, *, actor: str, **detail: Any
) -> None:
    """`record` for a subscription: the entity most changes are about, so its
    call sites say only what happened and why."""
    record(
        session,
        actor=actor,
        entity="subscription",
        entity_id=sub_id,
        action=action,
        cause=cause,
        **detail,
    )
