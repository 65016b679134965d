"""Proration to the billing day: what a new or upgraded subscription pays first.

Every subscription renews on the same day of the month (the billing day,
default the 5th, configurable 1-28 so it exists in every month). A purchase
on any other day first pays for the days until the next billing day, on the
30-day basis Mercado Pago uses for proportional amounts, so the quote shown
to the payer is exactly what is charged:

    first charge = price x min(d, 30) / 30

where d is the number of days from the purchase date to the next billing day;
a purchase on the billing day itself pays the full price for a whole period.
An upgrade pays (new price - old price) on the same rule for the days already
paid at the old price (`upgrade_difference`). Amounts are
Decimal, rounded half-up to the currency's minor unit; never float.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from billing.core.errors import InvalidInput

BASIS_DAYS = 30
# Minor units per ISO 4217 for the currencies Mercado Pago settles in; others: 2.
_MINOR_UNITS = {"CLP": 0, "COP": 0, "PYG": 0, "JPY": 0}


def quantum(currency: str) -> Decimal:
    """The smallest amount of `currency` (0.01 MXN, 1 CLP)."""
    return Decimal(1).scaleb(-_MINOR_UNITS.get(currency.upper(), 2))


def round_money(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(quantum(currency), rounding=ROUND_HALF_UP)


def _add_month(day: date, billing_day: int) -> date:
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return date(year, month, billing_day)


def check_billing_day(billing_day: int) -> int:
    if not 1 <= billing_day <= 28:
        raise InvalidInput("billing day must be between 1 and 28, not %(day)s", day=billing_day)
    return billing_day


def next_billing_date(on: date, billing_day: int) -> date:
    """The first billing date strictly after `on`."""
    check_billing_day(billing_day)
    if on.day < billing_day:
        return date(on.year, on.month, billing_day)
    return _add_month(on, billing_day)


@dataclass(frozen=True)
class Quote:
    amount: Decimal
    currency: str
    days: int  # days paid for (the 30-day basis caps the charge, not this count)
    period_start: date
    period_end: date  # the next billing date: the first full-price charge

    def as_dict(self) -> dict[str, str | int]:
        return {
            "amount": str(self.amount),
            "currency": self.currency,
            "days": self.days,
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
        }


def prorate(price: Decimal, currency: str, on: date, billing_day: int) -> Quote:
    """What `price` per month costs from `on` to the next billing date."""
    if price < 0:
        raise InvalidInput("price must not be negative")
    return _quote(price, currency, on, next_billing_date(on, billing_day), on.day == billing_day)


def upgrade_difference(
    old_price: Decimal,
    new_price: Decimal,
    currency: str,
    on: date,
    paid_through: date,
    billing_day: int,
) -> Quote:
    """The one-off payment for moving to a dearer plan on `on`: the difference
    for the days already paid at the old price, `on` to `paid_through`.

    Counted from what was paid, not from the calendar: on the billing day,
    once that day's installment is paid (paid through next month), the
    difference is charged once for the whole period, and later installments
    charge the new price. Before that installment is paid there is nothing
    to top up, and the upgrade waits (a quote from the calendar charged the
    difference, and then the installment charged the new price again).
    """
    if new_price <= old_price:
        raise InvalidInput("an upgrade must move to a plan with a higher price")
    if paid_through <= on:
        raise InvalidInput(
            "nothing is paid after %(day)s yet: upgrade once Mercado Pago "
            "has charged the installment due",
            day=on.isoformat(),
        )
    whole = on.day == billing_day and paid_through == next_billing_date(on, billing_day)
    return _quote(new_price - old_price, currency, on, paid_through, whole)


def _quote(monthly: Decimal, currency: str, start: date, end: date, whole: bool) -> Quote:
    """`monthly` for `start` to `end` on the 30-day basis; a `whole` period
    costs `monthly`, whatever the month's length."""
    days = (end - start).days
    amount = monthly if whole else monthly * min(days, BASIS_DAYS) / BASIS_DAYS
    return Quote(round_money(amount, currency), currency.upper(), days, start, end)
