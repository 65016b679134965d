"""Invoices for approved charges: a stamped CFDI and its PDF, in S3, indexed, once.

Issuing is a step of the billing pass (and `cam2drive invoice issue`). Each
approved MXN charge gets an `invoices` row first, holding the folio and the
date its CFDI will carry; sealing is deterministic, so a retry after a crash
or a PAC timeout seals the same document and the PAC gives back the same
stamp. The files go under `invoice_prefix`, outside every drive, so a drive
deleted for non-payment never takes its receipts with it.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from satcfdi.models import Signer
from sqlalchemy import Engine, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from billing.core import audit
from billing.core.db import session_scope
from billing.core.errors import Cam2DriveError, InvoiceError, NotFound
from billing.core.models import (
    Charge,
    Customer,
    Device,
    Invoice,
    Plan,
    Subscription,
    utcnow,
)
from billing.core.settings import Settings
from billing.invoicing import pdf as invoice_pdf
from billing.invoicing.cfdi import build, form_of_payment, load_signer, receiver_for
from billing.invoicing.pac import UNREACHABLE, Pac, make_pac

ACTOR = "invoicing"
log = logging.getLogger(__name__)
#: the SAT's limit between a CFDI's Fecha and its stamp (Anexo 20, Fecha)
STAMP_WINDOW = timedelta(hours=72)


def _aware(when: datetime) -> datetime:
    """SQLite gives naive UTC back: compare like with like."""
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class DocumentStore(Protocol):
    def put_document(self, key: str, body: bytes, content_type: str) -> None: ...

    def get_document(self, key: str) -> bytes: ...


@dataclass
class IssueReport:
    issued: list[int] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    disabled: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def enabled(settings: Settings) -> bool:
    return settings.cfdi_csd_certificate is not None


def issue_pending(
    engine: Engine,
    store: DocumentStore,
    settings: Settings,
    *,
    pac: Pac | None = None,
    now: datetime | None = None,
) -> IssueReport:
    """Invoice every approved charge that has no invoice yet; resume unfinished ones."""
    report = IssueReport()
    if not enabled(settings):
        report.disabled = "no CSD configured (cfdi_csd_certificate): invoices are off"
        return report
    signer = load_signer(settings)
    pac = pac or make_pac(settings)
    now = now or utcnow()
    _open_rows(engine, settings, now, report)
    with session_scope(engine) as s:
        pending = list(
            s.exec(select(Invoice.id).where(Invoice.status == "pending").order_by(col(Invoice.id)))
        )
    for invoice_id in pending:
        try:
            _issue_one(engine, store, settings, signer, pac, invoice_id, now)  # type: ignore[arg-type]
            report.issued.append(invoice_id)  # type: ignore[arg-type]
        except Cam2DriveError as exc:
            _failed(engine, settings, invoice_id, exc)  # type: ignore[arg-type]
            report.failed.append({"invoice": invoice_id, "error": str(exc)})
    return report


def _failed(engine: Engine, settings: Settings, invoice_id: int, exc: Cam2DriveError) -> None:
    """Count the failure; a PAC refusal alerts the operator and stops after a few tries.

    An unreachable PAC is retried every pass (the call is bounded by the PAC
    timeouts); a refusal will not change by itself (a bad receiver, a bad
    CSD), so it is an audit row and a log line for the operator, and after
    `invoice_max_attempts` the invoice is `failed`, never retried forever.
    """
    refused = isinstance(exc, InvoiceError)
    with session_scope(engine) as s:
        inv = s.get(Invoice, invoice_id)
        assert inv is not None
        inv.attempts += 1
        inv.last_error = str(exc)[:2000]
        if refused and inv.attempts >= settings.invoice_max_attempts:
            inv.status = "failed"
        s.add(inv)
        if refused:
            audit.record(
                s,
                actor=ACTOR,
                entity="invoice",
                entity_id=invoice_id,
                action="failed" if inv.status == "failed" else "refused",
                cause="the PAC refused the CFDI; operator action needed",
                attempts=inv.attempts,
                error=str(exc)[:500],
            )
            log.error(
                "invoice %s refused by the PAC (attempt %s of %s): %r",
                invoice_id,
                inv.attempts,
                settings.invoice_max_attempts,
                str(exc)[:500],
            )


def _open_rows(engine: Engine, settings: Settings, now: datetime, report: IssueReport) -> None:
    """One `pending` invoice row per approved charge that has none."""
    with session_scope(engine) as s:
        rows = s.exec(
            select(Charge, Device.customer_id)
            .join(Subscription, col(Subscription.id) == Charge.subscription_id)
            .join(Device, col(Device.id) == Subscription.device_id)
            .outerjoin(Invoice, col(Invoice.charge_id) == Charge.id)
            .where(Charge.status == "approved", col(Invoice.id).is_(None))
            .order_by(col(Charge.id))
        ).all()
        charges = [(c.id, c.amount, c.currency, customer_id) for c, customer_id in rows]
    for charge_id, amount, currency, customer_id in charges:
        assert charge_id is not None  # read from the database
        if currency != "MXN":
            report.skipped.append(
                {"charge": charge_id, "reason": f"CFDI is issued in MXN, not {currency}"}
            )
            continue
        try:
            with session_scope(engine) as s:
                inv = Invoice(
                    charge_id=charge_id,
                    customer_id=customer_id,
                    serie=settings.cfdi_serie,
                    folio="",
                    issued_on=now,
                    status="pending",
                    total=amount,
                    currency=currency,
                )
                s.add(inv)
                s.flush()
                inv.folio = str(inv.id)
                s.add(inv)
        except IntegrityError:
            continue  # another scheduler opened it first


def concept(charge: Charge, plan_code: str, device_name: str) -> str:
    """The invoice concept of a charge (Spanish: it is a Mexican fiscal document)."""
    if charge.kind == "upgrade":
        return (
            f"Cam2Drive: cambio al plan {plan_code}, grabador {device_name}, "
            f"prorrateo hasta {charge.period_end or ''}"
        ).strip()
    period = (
        f", periodo {charge.period_start} a {charge.period_end}"
        if charge.period_start and charge.period_end
        else ""
    )
    return f"Cam2Drive: almacenamiento en la nube {plan_code}, grabador {device_name}{period}"


def concept_of(session: Session, charge: Charge) -> str:
    sub = session.get(Subscription, charge.subscription_id)
    assert sub is not None
    plan = session.get(Plan, charge.plan_id or sub.plan_id)
    device = session.get(Device, sub.device_id)
    assert plan is not None and device is not None
    return concept(charge, plan.code, device.name)


def _issue_one(
    engine: Engine,
    store: DocumentStore,
    settings: Settings,
    signer: Signer,
    pac: Pac,
    invoice_id: int,
    now: datetime,
) -> None:
    with session_scope(engine) as s:
        inv = s.get(Invoice, invoice_id)
        assert inv is not None
        charge, customer = s.get(Charge, inv.charge_id), s.get(Customer, inv.customer_id)
        assert charge is not None and customer is not None
        receiver = receiver_for(customer, settings)

        def seal(when: datetime, charge: Charge) -> Any:
            return build(
                signer,
                settings,
                receiver,
                concept=concept_of(s, charge),
                amount=charge.amount,
                currency=charge.currency,
                when=when,
                folio=folio,
                payment_form=form_of_payment(charge.payment_type_id, settings),
            )

        serie, folio, customer_id, dated = inv.serie, inv.folio, inv.customer_id, inv.issued_on
        cfdi = seal(dated, charge)
        uncertain = (inv.last_error or "").startswith(UNREACHABLE)
    stamped = None
    if uncertain and hasattr(pac, "stamped"):
        # the last call may have reached the PAC: its stamp, if any, is the invoice
        stamped = pac.stamped(cfdi)
    if stamped is None and _aware(now) - _aware(dated) > STAMP_WINDOW:
        # the SAT stamps a CFDI only within 72 hours of its Fecha: re-date, re-seal
        with session_scope(engine) as s:
            row = s.get(Invoice, invoice_id)
            assert row is not None
            row.issued_on = now
            s.add(row)
            charge = s.get(Charge, row.charge_id)
            assert charge is not None
            cfdi = seal(now, charge)
    if stamped is None:
        stamped = pac.stamp(cfdi)
    uuid = stamped["Complemento"]["TimbreFiscalDigital"]["UUID"]
    xml = stamped.xml_bytes(pretty_print=True)
    try:
        pdf = invoice_pdf.pdf_bytes(stamped)
    except Exception as exc:  # weasyprint/fonts missing: a config problem, reported
        raise InvoiceError(f"cannot render the invoice PDF: {exc}") from exc
    base = f"{settings.invoice_prefix}{customer_id}/{serie}-{folio}-{uuid}"
    store.put_document(f"{base}.xml", xml, "application/xml")
    store.put_document(f"{base}.pdf", pdf, "application/pdf")
    with session_scope(engine) as s:
        inv = s.get(Invoice, invoice_id)
        assert inv is not None
        inv.status, inv.uuid, inv.last_error = "issued", uuid, None
        inv.issuer_rfc, inv.receiver_rfc = str(signer.rfc), receiver.rfc
        inv.xml_key, inv.pdf_key, inv.stamped_at = f"{base}.xml", f"{base}.pdf", utcnow()
        s.add(inv)
        audit.record(
            s,
            actor=ACTOR,
            entity="invoice",
            entity_id=invoice_id,
            action="issued",
            cause=f"charge {inv.charge_id} approved",
            uuid=uuid,
            total=inv.total,
            receiver=receiver.rfc,
        )


def invoice_files(session: Session, store: DocumentStore, invoice_id: int) -> tuple[bytes, bytes]:
    """(xml, pdf) of an issued invoice."""
    inv = session.get(Invoice, invoice_id)
    if inv is None:
        raise NotFound(f"invoice {invoice_id} does not exist")
    if inv.status != "issued" or not inv.xml_key or not inv.pdf_key:
        raise NotFound(
            f"invoice {invoice_id} is not issued yet"
            + (f" ({inv.last_error})" if inv.last_error else "")
        )
    return store.get_document(inv.xml_key), store.get_document(inv.pdf_key)


def orders(session: Session, customer_id: int | None = None) -> list[dict[str, Any]]:
    """The customer's "Ver Pedidos": every charge, with its invoice when there is one."""
    # one query for the whole list: a distributor's orders run to thousands of rows
    q = (
        # SQLModel's select() is typed for at most four columns
        select(Charge, Invoice, Device.customer_id, Device.name, Plan.code)  # type: ignore[call-overload]
        .join(Subscription, col(Subscription.id) == Charge.subscription_id)
        .join(Device, col(Device.id) == Subscription.device_id)
        .join(Plan, Plan.id == func.coalesce(Charge.plan_id, Subscription.plan_id))
        .outerjoin(Invoice, col(Invoice.charge_id) == Charge.id)
        .order_by(col(Charge.id))
    )
    if customer_id is not None:
        if session.get(Customer, customer_id) is None:
            raise NotFound(f"customer {customer_id} does not exist")
        q = q.where(Device.customer_id == customer_id)
    out = []
    for charge, inv, cust, device_name, plan_code in session.exec(q).all():
        out.append(
            {
                "order": charge.id,
                "customer": cust,
                "date": (charge.period_start or charge.created_at.date()).isoformat(),
                "concept": concept(charge, plan_code, device_name),
                "amount": charge.amount,
                "currency": charge.currency,
                "status": charge.status,
                "invoice": inv.id if inv is not None and inv.status == "issued" else None,
                "uuid": inv.uuid if inv is not None else None,
            }
        )
    return out
