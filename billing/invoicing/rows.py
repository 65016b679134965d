"""The `invoices` rows every kind of fiscal document shares: how one opens, how its steps are audited.

An ingreso, a global and a credit note each start as a `pending` row dated
when it was opened, whose folio is its own id; sealing and stamping come
later (invoices.py), each step audited through `audit_step`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlmodel import Session

from billing.core import audit
from billing.core.models import Invoice
from billing.core.settings import Settings

ACTOR = "invoicing"


def open_pending(
    session: Session, settings: Settings, now: datetime, total: Decimal, **fields: Any
) -> Invoice:
    """A `pending` document, flushed so its id (and folio) exist. Its unique
    keys (its charge, its doc_key) raise IntegrityError when another
    scheduler opened the same document first."""
    inv = Invoice(
        serie=settings.cfdi_serie, folio="", issued_on=now, status="pending", total=total, **fields
    )
    session.add(inv)
    session.flush()
    inv.folio = str(inv.id)
    session.add(inv)
    return inv


def audit_step(session: Session, invoice_id: int, action: str, cause: str, **detail: Any) -> None:
    """`audit.record` for an invoice: issued, refused, failed, cancelled."""
    audit.record(session, "invoice", invoice_id, action, cause, actor=ACTOR, **detail)
