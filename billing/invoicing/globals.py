"""The global invoice: sales to customers without fiscal data, one CFDI per period.

The SAT's rules (Anexo 20 and its "Guía de llenado ... factura global";
RMF rule 2.7.1.21): operations with the "público en general" for which no
one asked an invoice go into one global CFDI per day, week or month
(c_Periodicidad 01, 02, 04: `cfdi_global_periodicity`), issued after the
period closes, with InformacionGlobal (Periodicidad, Meses = the c_Meses
month 01-12 of the sales, Año), receiver XAXX010101000 "PUBLICO EN
GENERAL", régimen 616, UsoCFDI S01 and DomicilioFiscalReceptor =
LugarExpedicion; one concept per sale with ClaveProdServ 01010101,
ClaveUnidad ACT, Cantidad 1, Descripción "Venta" and the sale's ticket
number (our charge id) as NoIdentificacion. A week is cut at the month's
end, so every period has one Meses. A charge's sale date is its debit
date (`sale_day`).

A customer who gives fiscal data before the period's global is made gets
their own ingreso instead (`request_own` in invoices.py): a charge is in
one fiscal document only.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from satcfdi.transform import get_timezone
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from billing.core.db import session_scope
from billing.core.models import Charge, Customer, Device, Invoice, InvoiceLine, Subscription
from billing.core.settings import Settings
from billing.invoicing.cfdi import (
    PUBLIC_NAME,
    PUBLIC_RFC,
    GlobalInfo,
    Line,
    Receiver,
    form_of_payment,
    issuer_place,
    receiver_for,
)
from billing.invoicing.rows import open_pending

PRODUCT = "01010101"  # c_ClaveProdServ "No existe en el catálogo", as the guide asks
UNIT = "ACT"  # c_ClaveUnidad "Actividad"
DESCRIPTION = "Venta"


@dataclass(frozen=True)
class Period:
    key: str  # "2026-11", "2026-11-22" or "2026-11-W16" (the week starting the 16th)
    first: date
    last: date
    info: GlobalInfo


def period_of(day: date, periodicity: str) -> Period:
    """The global period a sale of `day` belongs to."""
    info = GlobalInfo(periodicity, f"{day.month:02d}", day.year)
    if periodicity == "01":
        return Period(day.isoformat(), day, day, info)
    month_end = day.replace(day=calendar.monthrange(day.year, day.month)[1])
    if periodicity == "02":  # Monday to Sunday, cut at the month's first and last day
        first = max(day - timedelta(days=day.weekday()), day.replace(day=1))
        last = min(first + timedelta(days=6 - first.weekday()), month_end)
        return Period(f"{day:%Y-%m}-W{first.day:02d}", first, last, info)
    return Period(f"{day:%Y-%m}", day.replace(day=1), month_end, info)


def sale_day(charge: Charge, settings: Settings) -> date:
    """The day of the sale: the debit date Mercado Pago charged (period_start),
    else the day the charge was made, in the issuer's time zone."""
    return charge.period_start or local_day(charge.created_at, settings)


def local_day(when: datetime, settings: Settings) -> date:
    return when.astimezone(get_timezone(issuer_place(settings))).date()


def public_receiver(settings: Settings) -> Receiver:
    """The SAT's generic receiver, whose postal code is the issuer's own."""
    return Receiver(PUBLIC_RFC, PUBLIC_NAME, issuer_place(settings), "616", "S01")


def has_fiscal_data(customer: Customer, settings: Settings) -> bool:
    return not receiver_for(customer, settings).is_public


def open_globals(engine: Engine, settings: Settings, now: datetime) -> list[int]:
    """A pending global invoice for every closed period with uninvoiced public sales."""
    today = local_day(now, settings)
    periods: dict[str, tuple[Period, list[int]]] = {}
    with session_scope(engine) as s:
        for charge in _uninvoiced_public(s, settings):
            assert charge.id is not None
            period = period_of(sale_day(charge, settings), settings.cfdi_global_periodicity)
            if period.last < today:  # the period has closed
                periods.setdefault(period.key, (period, []))[1].append(charge.id)
    opened = []
    for key, (period, charge_ids) in sorted(periods.items()):
        try:
            with session_scope(engine) as s:
                charges = [s.get(Charge, cid) for cid in charge_ids]
                total = sum((c.amount for c in charges if c is not None), Decimal(0))
                inv = open_pending(
                    s,
                    settings,
                    now,
                    total,
                    kind="G",
                    # a sale approved after its period's global was made goes into
                    # another global of that period: keyed by its first charge
                    doc_key=f"G:{key}:{charge_ids[0]}",
                    customer_id=_public_holder(s, charge_ids[0]),
                    currency="MXN",
                    periodicity=period.info.periodicity,
                    months=period.info.months,
                    year=period.info.year,
                )
                assert inv.id is not None
                for cid in charge_ids:
                    s.add(InvoiceLine(invoice_id=inv.id, charge_id=cid))
                opened.append(inv.id)
        except IntegrityError:
            continue  # another scheduler opened this period's global first
    return opened


def _public_holder(session: Session, charge_id: int) -> int:
    """invoices.customer_id of a global: the first sale's customer (the files' folder)."""
    sub_id = session.exec(select(Charge.subscription_id).where(Charge.id == charge_id)).one()
    return session.exec(
        select(Device.customer_id)
        .join(Subscription, col(Subscription.device_id) == Device.id)
        .where(Subscription.id == sub_id)
    ).one()


def uninvoiced(session: Session) -> list[tuple[Charge, Customer]]:
    """Approved charges in no fiscal document yet (neither an ingreso of their
    own nor a line of a global invoice), with their customer, oldest first:
    what both the per-charge ingresos and the period's global invoice draw from."""
    return list(
        session.exec(
            select(Charge, Customer)
            .join(Subscription, col(Subscription.id) == Charge.subscription_id)
            .join(Device, col(Device.id) == Subscription.device_id)
            .join(Customer, col(Customer.id) == Device.customer_id)
            .outerjoin(Invoice, col(Invoice.charge_id) == Charge.id)
            .outerjoin(InvoiceLine, col(InvoiceLine.charge_id) == Charge.id)
            .where(
                Charge.status == "approved",
                col(Invoice.id).is_(None),
                col(InvoiceLine.invoice_id).is_(None),
            )
            .order_by(col(Charge.id))
        ).all()
    )


def _uninvoiced_public(session: Session, settings: Settings) -> list[Charge]:
    """Approved MXN charges of customers without fiscal data, in no fiscal document yet."""
    return [
        c
        for c, cust in uninvoiced(session)
        if c.currency == "MXN" and not has_fiscal_data(cust, settings)
    ]


def charges_of(session: Session, invoice_id: int) -> list[Charge]:
    rows = session.exec(
        select(Charge)
        .join(InvoiceLine, col(InvoiceLine.charge_id) == Charge.id)
        .where(InvoiceLine.invoice_id == invoice_id)
        .order_by(col(Charge.id))
    ).all()
    return list(rows)


def lines_of(charges: list[Charge]) -> list[Line]:
    return [Line(DESCRIPTION, c.amount, PRODUCT, UNIT, identifier=str(c.id)) for c in charges]


def main_payment_form(charges: list[Charge], settings: Settings) -> str:
    """The c_FormaPago that paid the largest share (Anexo 20 guide, FormaPago:
    with several forms of payment, the one that settled the largest amount)."""
    paid: dict[str, Decimal] = {}
    for c in charges:
        form = form_of_payment(c.payment_type_id, settings)
        paid[form] = paid.get(form, Decimal(0)) + c.amount
    return max(sorted(paid), key=lambda form: paid[form])
