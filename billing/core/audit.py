"""The audit log: one row per state change, written in the same transaction."""

from __future__ import annotations

import json
from typing import Any, Protocol

from sqlmodel import Session

from billing.core import staging
from billing.core.models import AuditEvent, utcnow

AUDIT = AuditEvent.__table__  # type: ignore[attr-defined]


#: the cause of a change an operator (the CLI) or a distributor's staff asked for
OPERATOR = "operator request"


def record(
    session: Session,
    entity: str,
    entity_id: object,
    action: str,
    cause: str,
    *,
    actor: str,
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
    record(session, "subscription", sub_id, action, cause, actor=actor, **detail)


class _Row(Protocol):
    id: int | None


def created(session: Session, row: _Row, entity: str, *, actor: str, **detail: Any) -> None:
    """Add a new row on an operator's request and audit it `created` under the id it
    was given (hence the flush)."""
    session.add(row)
    session.flush()
    record(session, entity, row.id, "created", OPERATOR, actor=actor, **detail)
