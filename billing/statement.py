"""A distributor's monthly statement: what the ISP owes for its contracts.

Each contract is billed, per plan it was on, its billed days in the month
times the distributor's monthly wholesale price for that plan divided by
the days of the month: a full month is exactly the wholesale price. Days
come from the contract's spans ([start_on, end_on), billing/contracts.py):
the day a contract is activated counts, the day it is cancelled does not,
and a plan change on a day bills that day at the new plan. Each line is
rounded half-up to the cent; the total is the sum of the lines, so the
statement adds up to the cent as printed.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from sqlmodel import Session, col, select

from billing.core.errors import InvalidField
from billing.core.models import Contract, ContractSpan, Plan

CENT = Decimal("0.01")
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class Line:
    contract_id: str
    label: str
    start: date  # first billed day in the month
    end: date  # last billed day in the month
    days: int
    monthly_price: Decimal
    amount: Decimal
    currency: str


@dataclass
class Statement:
    month: str
    days_in_month: int
    lines: list[Line] = field(default_factory=list)
    totals: dict[str, Decimal] = field(default_factory=dict)  # currency -> total


def parse_month(text: str) -> tuple[date, date]:
    """`2026-11` -> (first day, first day of the next month)."""
    m = _MONTH.match(text.strip())
    if not m:
        raise InvalidField("month", "must be YYYY-MM, e.g. 2026-11")
    first = date(int(m[1]), int(m[2]), 1)
    days = calendar.monthrange(first.year, first.month)[1]
    return first, date.fromordinal(first.toordinal() + days)


def statement(session: Session, distributor_id: int, month: str) -> Statement:
    first, after = parse_month(month)
    days_in_month = (after - first).days
    report = Statement(month=month, days_in_month=days_in_month)
    rows = session.exec(
        select(ContractSpan, Contract.external_id, Plan.code)
        .join(Contract, col(Contract.id) == ContractSpan.contract_id)
        .join(Plan, col(Plan.id) == ContractSpan.plan_id)
        .where(
            Contract.distributor_id == distributor_id,
            ContractSpan.start_on < after,
            (col(ContractSpan.end_on).is_(None)) | (col(ContractSpan.end_on) > first),
        )
        .order_by(col(Contract.external_id), col(ContractSpan.start_on), col(ContractSpan.id))
    ).all()
    for span, external_id, code in rows:
        start = max(span.start_on, first)
        end = min(span.end_on or after, after)
        days = (end - start).days
        if days <= 0:
            continue
        price = Decimal(span.price)
        amount = (price * days / days_in_month).quantize(CENT, rounding=ROUND_HALF_UP)
        report.lines.append(
            Line(
                contract_id=external_id,
                label=code,
                start=start,
                end=date.fromordinal(end.toordinal() - 1),
                days=days,
                monthly_price=price,
                amount=amount,
                currency=span.currency,
            )
        )
        report.totals[span.currency] = report.totals.get(span.currency, Decimal("0.00")) + amount
    return report
