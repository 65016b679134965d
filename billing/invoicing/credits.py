"""Cancellations (motivos 01-04) and credit notes for refunded charges.

Cancellation goes to the SAT through the PAC: a request signed with the
issuer's CSD naming the UUID, the motivo (c_Motivo: 01 "comprobante emitido
con errores con relación", which carries the UUID of the CFDI that
replaces it; 02 with errors without relation; 03 the operation did not take
place; 04 a nominative operation included in a global) and, for 01, the
substitute's UUID (Anexo 20, Cancelación; Art. 29-A CFF).

A refund or chargeback (billing/payments/sync.py) reverses an invoiced
sale. The rule implemented here:
- an own ingreso is cancelled with motivo 03 when the refund comes in the
  calendar month it was issued (issuer's time zone: the month's income is
  not yet declared) and its total is at most $1,000 MXN, which RMF rule
  2.7.1.34 (cancellation without the receiver's acceptance, fraction I)
  lets us cancel alone, so the cancellation cannot hang on an acceptance;
- every other case gets an egreso (TipoDeComprobante E) related to the
  original with TipoRelacion 01 "nota de crédito de los documentos
  relacionados": a global invoice is never cancelled for one of its sales.
A charge refunded before its invoice is stamped is never invoiced: its
pending ingreso is voided, its line leaves a pending global.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from satcfdi.create.cancela import cancelacion
from satcfdi.models import Signer
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from billing.core.db import session_scope
from billing.core.errors import Cam2DriveError, InvalidInput, NotFound
from billing.core.models import Charge, Invoice, InvoiceLine, utcnow
from billing.core.settings import Settings
from billing.invoicing import globals as globals_
from billing.invoicing.cfdi import load_signer
from billing.invoicing.parts import Invoicing
from billing.invoicing.rows import audit_step, open_pending

log = logging.getLogger(__name__)
REASONS = {
    "01": "comprobante emitido con errores con relación",
    "02": "comprobante emitido con errores sin relación",
    "03": "no se llevó a cabo la operación",
    "04": "operación nominativa relacionada en una factura global",
}
#: RMF 2.7.1.34 fraction I: an ingreso up to this total is cancelled without acceptance
NO_ACCEPTANCE_LIMIT = Decimal("1000.00")
REVERSED = ("refunded", "charged_back")
_UUID = re.compile(r"^[0-9A-Fa-f]{8}-([0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}$")


def cancellation_request(
    signer: Signer, uuid: str, reason: str, substitute: str | None, when: datetime | None = None
) -> cancelacion.Cancelacion:
    """The SAT's Cancelacion, checked: motivo 01 needs its substitute, others take none."""
    if reason not in REASONS:
        raise InvalidInput(
            "--reason must be one of %(reasons)s (SAT c_Motivo)", reasons=", ".join(REASONS)
        )
    if reason == "01" and not substitute:
        raise InvalidInput("--reason 01 needs --substitute UUID (the CFDI that replaces it)")
    if reason != "01" and substitute:
        raise InvalidInput("--substitute is only for --reason 01")
    if substitute and not _UUID.match(substitute):
        raise InvalidInput("--substitute %(value)r is not a UUID", value=substitute[:40])
    folio = cancelacion.Folio(uuid=uuid, motivo=reason, folio_sustitucion=substitute)
    return cancelacion.Cancelacion(emisor=signer, folios=folio, fecha=when)


def cancel(
    parts: Invoicing,
    invoice_id: int,
    reason: str,
    substitute: str | None = None,
    *,
    cause: str = "operator",
    now: datetime | None = None,
) -> str:
    """Cancel an issued invoice at the SAT through the PAC; the PAC's answer code."""
    engine = parts.engine
    with session_scope(engine) as s:
        inv = s.get(Invoice, invoice_id)
        if inv is None:
            raise NotFound("invoice %(invoice)s does not exist", invoice=invoice_id)
        if inv.status != "issued" or not inv.uuid:
            raise InvalidInput(
                "invoice %(invoice)s is %(status)s: only an issued one cancels",
                invoice=invoice_id,
                status=inv.status,
            )
        if substitute and substitute.upper() == inv.uuid.upper():
            raise InvalidInput("--substitute names the invoice being cancelled")
        uuid = inv.uuid
    request = cancellation_request(load_signer(parts.settings), uuid, reason, substitute, now)
    code = parts.stamper().cancel(request)
    with session_scope(engine) as s:
        inv = s.get(Invoice, invoice_id)
        assert inv is not None
        inv.status, inv.cancel_reason = "cancelled", reason
        inv.substitute_uuid = substitute.upper() if substitute else None
        inv.cancelled_at = now or utcnow()
        s.add(inv)
        audit_step(
            s,
            invoice_id,
            "cancelled",
            cause,
            uuid=uuid,
            reason=reason,
            substitute=substitute,
            pac_code=code,
        )
    return code


def open_credit_notes(parts: Invoicing, now: datetime) -> dict[str, Any]:
    """Act on every refunded or charged-back charge per the rule in the module docstring."""
    engine, settings = parts.engine, parts.settings
    done: dict[str, Any] = {"voided": [], "cancelled": [], "credit_notes": []}
    with session_scope(engine) as s:
        _void_unstamped(s, done)
        reversed_ = s.exec(
            select(Charge).where(col(Charge.status).in_(REVERSED)).order_by(col(Charge.id))
        ).all()
        todo = []
        for charge in reversed_:
            assert charge.id is not None
            if s.exec(select(Invoice.id).where(Invoice.doc_key == f"E:{charge.id}")).first():
                continue  # credited already
            original = _issued_document(s, charge.id)
            if original is not None:
                todo.append((charge.id, charge.amount, original))
    for charge_id, amount, original in todo:
        assert original.id is not None and original.uuid is not None
        if original.kind == "I" and cancellable(original, settings, now):
            try:
                cancel(parts, original.id, "03", cause=f"charge {charge_id} refunded", now=now)
            except Cam2DriveError as exc:  # unreachable or refused: next pass tries again
                log.error("cannot cancel invoice %s: %r", original.id, str(exc)[:500])
                done.setdefault("errors", []).append({"invoice": original.id, "error": str(exc)})
                continue
            done["cancelled"].append(original.id)
            continue
        try:
            with session_scope(engine) as s:
                note = open_pending(
                    s,
                    settings,
                    now,
                    amount,
                    kind="E",
                    doc_key=f"E:{charge_id}",
                    related_uuid=original.uuid,
                    customer_id=original.customer_id,
                    currency="MXN",
                )
                assert note.id is not None
                s.add(InvoiceLine(invoice_id=note.id, charge_id=charge_id))
                done["credit_notes"].append(note.id)
        except IntegrityError:
            continue  # another scheduler opened it first
    return done


def cancellable(original: Invoice, settings: Settings, now: datetime) -> bool:
    """Same calendar month of issue and within RMF 2.7.1.34's no-acceptance total."""
    issued = globals_.local_day(original.issued_on, settings)
    today = globals_.local_day(now, settings)
    same_month = (issued.year, issued.month) == (today.year, today.month)
    return same_month and original.total <= NO_ACCEPTANCE_LIMIT


def _issued_document(session: Session, charge_id: int) -> Invoice | None:
    """The issued ingreso or global that covers this charge, if any."""
    own = session.exec(
        select(Invoice).where(Invoice.charge_id == charge_id, Invoice.status == "issued")
    ).first()
    if own is not None:
        return own
    return session.exec(
        select(Invoice)
        .join(InvoiceLine, col(InvoiceLine.invoice_id) == Invoice.id)
        .where(InvoiceLine.charge_id == charge_id, Invoice.kind == "G", Invoice.status == "issued")
    ).first()


def _void_unstamped(session: Session, done: dict[str, Any]) -> None:
    """A reversed charge whose document is not stamped yet is never invoiced."""
    rows = session.exec(
        select(Invoice, Charge)
        .join(Charge, col(Charge.id) == Invoice.charge_id)
        .where(Invoice.status == "pending", col(Charge.status).in_(REVERSED))
    ).all()
    for inv, _ in rows:
        inv.status, inv.last_error = "void", "the charge was refunded before it was stamped"
        session.add(inv)
        done["voided"].append(inv.id)
    lines = session.exec(
        select(InvoiceLine, Invoice, Charge)
        .join(Invoice, col(Invoice.id) == InvoiceLine.invoice_id)
        .join(Charge, col(Charge.id) == InvoiceLine.charge_id)
        .where(Invoice.kind == "G", Invoice.status == "pending", col(Charge.status).in_(REVERSED))
    ).all()
    for line, holder, charge in lines:
        session.delete(line)
        holder.total -= charge.amount
        session.add(holder)
        session.flush()
        if not globals_.charges_of(session, holder.id or 0):
            holder.status, holder.last_error = "void", "every sale in it was refunded"
            done["voided"].append(holder.id)
