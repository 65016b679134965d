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
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from satcfdi.models import Signer
from sqlalchemy import Engine, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from billing.core.db import session_scope
from billing.core.errors import Cam2DriveError, InvalidInput, InvoiceError, NotFound
from billing.core.models import (
    Charge,
    Customer,
    Device,
    Invoice,
    InvoiceLine,
    Plan,
    Subscription,
    utcnow,
)
from billing.core.settings import Settings
from billing.invoicing import credits
from billing.invoicing import globals as globals_
from billing.invoicing import pdf as invoice_pdf
from billing.invoicing.catalogs import receiver_problem
from billing.invoicing.cfdi import (
    GlobalInfo,
    Line,
    Receiver,
    build_document,
    form_of_payment,
    load_signer,
    receiver_for,
)
from billing.invoicing.pac import UNREACHABLE
from billing.invoicing.parts import DocumentStore, Invoicing
from billing.invoicing.rows import audit_step, open_pending

log = logging.getLogger(__name__)
#: the SAT's limit between a CFDI's Fecha and its stamp (Anexo 20, Fecha)
STAMP_WINDOW = timedelta(hours=72)


def _aware(when: datetime) -> datetime:
    """SQLite gives naive UTC back: compare like with like."""
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass
class IssueReport:
    issued: list[int] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    # refunds: unstamped documents voided, invoices cancelled, credit notes opened
    refunds: dict[str, Any] = field(default_factory=dict)
    disabled: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def enabled(settings: Settings) -> bool:
    return settings.cfdi_csd_certificate is not None


def issue_pending(parts: Invoicing, *, now: datetime | None = None) -> IssueReport:
    """Invoice every approved charge that has no invoice yet; resume unfinished ones."""
    report = IssueReport()
    engine, settings = parts.engine, parts.settings
    if not enabled(settings):
        report.disabled = "no CSD configured (cfdi_csd_certificate): invoices are off"
        return report
    signer = load_signer(settings)
    parts = replace(parts, pac=parts.stamper())  # one PAC for the whole pass
    now = now or utcnow()
    _open_rows(engine, settings, now, report)
    globals_.open_globals(engine, settings, now)
    report.refunds = credits.open_credit_notes(parts, now)
    with session_scope(engine) as s:
        pending = list(
            s.exec(select(Invoice.id).where(Invoice.status == "pending").order_by(col(Invoice.id)))
        )
    for invoice_id in pending:
        try:
            _issue_one(parts, signer, invoice_id, now)  # type: ignore[arg-type]
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
            audit_step(
                s,
                invoice_id,
                "failed" if inv.status == "failed" else "refused",
                "the PAC refused the CFDI; operator action needed",
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
    """One `pending` ingreso per approved charge of a customer with fiscal data.

    The others' charges wait for their period's global invoice (globals.py).
    """
    with session_scope(engine) as s:
        charges = [
            (c.id, c.amount, c.currency, cust.id)
            for c, cust in globals_.uninvoiced(s)
            if globals_.has_fiscal_data(cust, settings)
        ]
    for charge_id, amount, currency, customer_id in charges:
        assert charge_id is not None  # read from the database
        if currency != "MXN":
            report.skipped.append(
                {"charge": charge_id, "reason": f"CFDI is issued in MXN, not {currency}"}
            )
            continue
        _open_ingreso(engine, settings, charge_id, customer_id, amount, currency, now)


def _open_ingreso(
    engine: Engine,
    settings: Settings,
    charge_id: int,
    customer_id: int | None,
    amount: Decimal,
    currency: str,
    now: datetime,
) -> None:
    assert customer_id is not None
    try:
        with session_scope(engine) as s:
            open_pending(
                s,
                settings,
                now,
                amount,
                charge_id=charge_id,
                customer_id=customer_id,
                currency=currency,
            )
    except IntegrityError:
        return  # another scheduler opened it first


def request_own(parts: Invoicing, charge_id: int, *, now: datetime | None = None) -> int:
    """A customer's own invoice for a charge that would go into the global one.

    Allowed while the charge is in no stamped document: before its period's
    global is issued (RMF rule 2.7.1.21 lets a sale leave the global when its
    customer asks for an invoice). The customer's fiscal data must be set
    first (`customer set-fiscal`). Returns the invoice id, issued now.
    """
    engine, settings = parts.engine, parts.settings
    if not enabled(settings):
        raise InvalidInput("invoices are off: no CSD configured (cfdi_csd_certificate)")
    now = now or utcnow()
    with session_scope(engine) as s:
        charge = s.get(Charge, charge_id)
        if charge is None:
            raise NotFound("charge %(charge)s does not exist", charge=charge_id)
        if charge.status != "approved" or charge.currency != "MXN":
            raise InvalidInput(
                "charge %(charge)s is %(status)s in %(currency)s: "
                "only approved MXN charges are invoiced",
                charge=charge_id,
                status=charge.status,
                currency=charge.currency,
            )
        customer = s.exec(
            select(Customer)
            .join(Device, col(Device.customer_id) == Customer.id)
            .join(Subscription, col(Subscription.device_id) == Device.id)
            .where(Subscription.id == charge.subscription_id)
        ).one()
        if not globals_.has_fiscal_data(customer, settings):
            raise InvalidInput(
                "customer %(customer)s has no fiscal data: run `customer set-fiscal` first",
                customer=customer.id,
            )
        own = s.exec(select(Invoice).where(Invoice.charge_id == charge_id)).first()
        line = s.exec(select(InvoiceLine).where(InvoiceLine.charge_id == charge_id)).first()
        if line is not None:
            holder = s.get(Invoice, line.invoice_id)
            assert holder is not None
            if holder.status != "pending" or holder.kind != "G":
                raise InvalidInput(
                    "charge %(charge)s is in invoice %(invoice)s (%(status)s) already",
                    charge=charge_id,
                    invoice=holder.id,
                    status=holder.status,
                )
            # the global is not stamped yet: the sale leaves it
            s.delete(line)
            holder.total -= charge.amount
            s.add(holder)
            s.flush()
            if not globals_.charges_of(s, holder.id or 0):
                s.delete(holder)
        amount, currency, customer_id = charge.amount, charge.currency, customer.id
    if own is None:
        _open_ingreso(engine, settings, charge_id, customer_id, amount, currency, now)
    with session_scope(engine) as s:
        inv = s.exec(select(Invoice).where(Invoice.charge_id == charge_id)).one()
        invoice_id, status = inv.id, inv.status
    assert invoice_id is not None
    if status == "pending":
        signer = load_signer(settings)
        try:
            _issue_one(parts, signer, invoice_id, now)
        except Cam2DriveError as exc:
            _failed(engine, settings, invoice_id, exc)
            raise
    return invoice_id


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


@dataclass(frozen=True)
class Spec:
    """What a document says, apart from its date: sealed again as is when re-dated."""

    receiver: Receiver
    lines: list[Line]
    payment_form: str
    kind: str = "I"
    related_uuid: str | None = None
    global_info: GlobalInfo | None = None


def spec_of(session: Session, inv: Invoice, settings: Settings) -> Spec:
    """The content of an ingreso, a global or an egreso, from the rows it covers."""
    if inv.kind == "G":
        charges = globals_.charges_of(session, inv.id or 0)
        assert inv.periodicity and inv.months and inv.year
        return Spec(
            globals_.public_receiver(settings),
            globals_.lines_of(charges),
            globals_.main_payment_form(charges, settings),
            global_info=GlobalInfo(inv.periodicity, inv.months, inv.year),
        )
    if inv.kind == "E":
        return credit_spec(session, inv, settings)
    charge, customer = session.get(Charge, inv.charge_id), session.get(Customer, inv.customer_id)
    assert charge is not None and customer is not None
    line = Line(
        concept_of(session, charge),
        charge.amount,
        settings.cfdi_product_code,
        settings.cfdi_unit_code,
    )
    return Spec(
        receiver_for(customer, settings),
        [line],
        form_of_payment(charge.payment_type_id, settings),
    )


def credit_spec(session: Session, inv: Invoice, settings: Settings) -> Spec:
    """An egreso for a refunded charge: the original's receiver, lines and keys.

    Its UsoCFDI is G02 (devoluciones, descuentos o bonificaciones) when the
    receiver's régimen allows it, else S01; for a sale in a global it goes
    to "público en general" with the global's period (InformacionGlobal).
    """
    (refunded,) = globals_.charges_of(session, inv.id or 0)
    original = session.exec(
        select(Invoice).where(
            col(Invoice.uuid) == inv.related_uuid, col(Invoice.kind).in_(("I", "G"))
        )
    ).one()
    form = form_of_payment(refunded.payment_type_id, settings)
    if original.kind == "G":
        assert original.periodicity and original.months and original.year
        line = globals_.lines_of([refunded])[0]
        return Spec(
            globals_.public_receiver(settings),
            [
                Line(
                    f"Devolución: {line.description}",
                    line.amount,
                    line.product_code,
                    line.unit_code,
                    line.identifier,
                )
            ],
            form,
            kind="E",
            related_uuid=inv.related_uuid,
            global_info=GlobalInfo(original.periodicity, original.months, original.year),
        )
    customer = session.get(Customer, original.customer_id)
    assert customer is not None
    receiver = receiver_for(customer, settings)
    use = "G02" if receiver_problem(receiver.rfc, receiver.regime, "G02") is None else "S01"
    line = Line(
        f"Devolución: {concept_of(session, refunded)}",
        refunded.amount,
        settings.cfdi_product_code,
        settings.cfdi_unit_code,
    )
    return Spec(replace(receiver, use=use), [line], form, kind="E", related_uuid=inv.related_uuid)


def _issue_one(parts: Invoicing, signer: Signer, invoice_id: int, now: datetime) -> None:
    engine, settings, pac = parts.engine, parts.settings, parts.stamper()
    with session_scope(engine) as s:
        inv = s.get(Invoice, invoice_id)
        assert inv is not None
        spec = spec_of(s, inv, settings)
        serie, folio, customer_id, dated = inv.serie, inv.folio, inv.customer_id, inv.issued_on
        uncertain = (inv.last_error or "").startswith(UNREACHABLE)
    receiver = spec.receiver

    def seal(when: datetime) -> Any:
        return build_document(
            signer,
            settings,
            spec.receiver,
            spec.lines,
            when=when,
            folio=folio,
            payment_form=spec.payment_form,
            kind=spec.kind,
            related_uuid=spec.related_uuid,
            global_info=spec.global_info,
        )

    cfdi = seal(dated)
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
        cfdi = seal(now)
    if stamped is None:
        stamped = pac.stamp(cfdi)
    uuid = stamped["Complemento"]["TimbreFiscalDigital"]["UUID"]
    xml = stamped.xml_bytes(pretty_print=True)
    try:
        pdf = invoice_pdf.pdf_bytes(stamped)
    except Exception as exc:  # weasyprint/fonts missing: a config problem, reported
        raise InvoiceError("cannot render the invoice PDF: %(error)s", error=exc) from exc
    base = f"{settings.invoice_prefix}{customer_id}/{serie}-{folio}-{uuid}"
    parts.store.put_document(f"{base}.xml", xml, "application/xml")
    parts.store.put_document(f"{base}.pdf", pdf, "application/pdf")
    with session_scope(engine) as s:
        inv = s.get(Invoice, invoice_id)
        assert inv is not None
        inv.status, inv.uuid, inv.last_error = "issued", uuid, None
        inv.issuer_rfc, inv.receiver_rfc = str(signer.rfc), receiver.rfc
        inv.xml_key, inv.pdf_key, inv.stamped_at = f"{base}.xml", f"{base}.pdf", utcnow()
        s.add(inv)
        audit_step(
            s, invoice_id, "issued", _cause(inv), uuid=uuid, total=inv.total, receiver=receiver.rfc
        )


def _cause(inv: Invoice) -> str:
    if inv.kind == "G":
        return f"global invoice {inv.doc_key}: sales to customers without fiscal data"
    if inv.kind == "E":
        return f"credit note for {inv.doc_key}, relating {inv.related_uuid}"
    return f"charge {inv.charge_id} approved"


def invoice_files(session: Session, store: DocumentStore, invoice_id: int) -> tuple[bytes, bytes]:
    """(xml, pdf) of an issued invoice."""
    inv = session.get(Invoice, invoice_id)
    if inv is None:
        raise NotFound("invoice %(invoice)s does not exist", invoice=invoice_id)
    if inv.status != "issued" or not inv.xml_key or not inv.pdf_key:
        why = (
            "invoice %(invoice)s is not issued yet (%(error)s)"
            if inv.last_error
            else "invoice %(invoice)s is not issued yet"
        )
        raise NotFound(why, invoice=invoice_id, error=inv.last_error)
    return store.get_document(inv.xml_key), store.get_document(inv.pdf_key)


_SHOWN = ("issued", "cancelled")


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
            raise NotFound("customer %(customer)s does not exist", customer=customer_id)
        q = q.where(Device.customer_id == customer_id)
    rows = session.exec(q).all()
    # the global invoice a sale is in, and the credit note of a refund
    via: dict[tuple[int, str], Invoice] = {}
    lines = (
        select(InvoiceLine, Invoice)
        .join(Invoice, col(Invoice.id) == InvoiceLine.invoice_id)
        .join(Charge, col(Charge.id) == InvoiceLine.charge_id)
        .join(Subscription, col(Subscription.id) == Charge.subscription_id)
        .join(Device, col(Device.id) == Subscription.device_id)
    )
    if customer_id is not None:
        lines = lines.where(Device.customer_id == customer_id)
    for line, doc in session.exec(lines).all():
        via[(line.charge_id, doc.kind)] = doc
    out = []
    for charge, inv, cust, device_name, plan_code in rows:
        glob, note = via.get((charge.id, "G")), via.get((charge.id, "E"))
        out.append(
            {
                "order": charge.id,
                "customer": cust,
                "date": (charge.period_start or charge.created_at.date()).isoformat(),
                "concept": concept(charge, plan_code, device_name),
                "amount": charge.amount,
                "currency": charge.currency,
                "status": charge.status,
                "invoice": inv.id if inv is not None and inv.status in _SHOWN else None,
                "uuid": inv.uuid if inv is not None else None,
                "invoice_status": inv.status if inv is not None else None,
                # apart from "invoice": the global lists other customers' sales,
                # so a customer's portal never offers it for download
                "global_invoice": glob.id if glob is not None and glob.status in _SHOWN else None,
                "credit_note": note.id if note is not None and note.status == "issued" else None,
                "credit_note_uuid": note.uuid if note is not None else None,
            }
        )
    return out
