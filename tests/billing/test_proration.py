"""Proration to the billing day: the table the quote and the first charge follow."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from billing.core.errors import InvalidInput
from billing.subscriptions.proration import (
    next_billing_date,
    prorate,
    round_money,
    upgrade_difference,
)

P = Decimal("199.00")


@pytest.mark.parametrize(
    "on,billing_day,days,amount,end",
    [
        # purchases around the 5th
        (date(2026, 11, 4), 5, 1, "6.63", date(2026, 11, 5)),  # 199 * 1/30 = 6.633
        (date(2026, 11, 5), 5, 30, "199.00", date(2026, 12, 5)),  # on the day: full price
        (date(2026, 11, 6), 5, 29, "192.37", date(2026, 12, 5)),  # 199 * 29/30 = 192.366
        (date(2026, 11, 22), 5, 13, "86.23", date(2026, 12, 5)),  # 199 * 13/30 = 86.233
        # month ends: 31-day months cap at 30 days of charge
        (date(2026, 12, 5), 5, 31, "199.00", date(2027, 1, 5)),
        (date(2026, 12, 4), 5, 1, "6.63", date(2026, 12, 5)),
        (date(2027, 1, 6), 5, 30, "199.00", date(2027, 2, 5)),  # min(30, 30)/30
        (date(2026, 12, 31), 5, 5, "33.17", date(2027, 1, 5)),  # year boundary
        (date(2026, 8, 6), 5, 30, "199.00", date(2026, 9, 5)),  # Aug 6 -> Sep 5: 30 days
        (date(2026, 7, 6), 5, 30, "199.00", date(2026, 8, 5)),  # Jul 6 -> Aug 5: 30 days
        # February, common and leap years
        (date(2027, 2, 6), 5, 27, "179.10", date(2027, 3, 5)),  # 199 * 27/30
        (date(2028, 2, 6), 5, 28, "185.73", date(2028, 3, 5)),  # leap: 28 days
        (date(2027, 2, 28), 5, 5, "33.17", date(2027, 3, 5)),
        (date(2028, 2, 29), 5, 5, "33.17", date(2028, 3, 5)),
        (date(2027, 1, 31), 5, 5, "33.17", date(2027, 2, 5)),
        # other billing days
        (date(2026, 11, 22), 1, 9, "59.70", date(2026, 12, 1)),
        (date(2026, 11, 1), 1, 30, "199.00", date(2026, 12, 1)),
        (date(2026, 11, 30), 28, 28, "185.73", date(2026, 12, 28)),
        (date(2027, 1, 29), 28, 30, "199.00", date(2027, 2, 28)),  # Jan 29 -> Feb 28: 30 days
        (date(2027, 2, 27), 28, 1, "6.63", date(2027, 2, 28)),
        (date(2026, 11, 15), 15, 30, "199.00", date(2026, 12, 15)),
    ],
)
def test_first_charge(on: date, billing_day: int, days: int, amount: str, end: date) -> None:
    q = prorate(P, "MXN", on, billing_day)
    assert (q.days, q.amount, q.period_end, q.period_start) == (days, Decimal(amount), end, on)
    assert q.amount <= P


def test_rounding_is_half_up_to_the_currency_unit() -> None:
    assert round_money(Decimal("0.005"), "MXN") == Decimal("0.01")
    assert round_money(Decimal("0.004999"), "MXN") == Decimal("0.00")
    assert prorate(Decimal("10000"), "CLP", date(2026, 11, 4), 5).amount == Decimal("333")
    assert prorate(Decimal("100.00"), "BRL", date(2026, 11, 4), 5).amount == Decimal("3.33")
    assert prorate(Decimal("0.15"), "MXN", date(2026, 11, 4), 5).amount == Decimal("0.01")
    assert isinstance(prorate(P, "MXN", date(2026, 11, 4), 5).amount, Decimal)


def test_upgrade_charges_the_difference_for_the_days_already_paid() -> None:
    old, new = Decimal("199.00"), Decimal("349.00")
    # the 20th, paid through Dec 5: 15 days of the difference
    q = upgrade_difference(old, new, "MXN", date(2026, 11, 20), date(2026, 12, 5), 5)
    assert (q.amount, q.days, q.period_end) == (Decimal("75.00"), 15, date(2026, 12, 5))
    # the billing day once its installment is paid: the whole difference, once
    q = upgrade_difference(old, new, "MXN", date(2026, 11, 5), date(2026, 12, 5), 5)
    assert (q.amount, q.days) == (Decimal("150.00"), 30)
    # a 31-day period still caps at 30/30; February's 28 days pay 28/30
    assert upgrade_difference(old, new, "MXN", date(2027, 2, 5), date(2027, 3, 5), 5).amount == (
        Decimal("150.00")
    )
    q = upgrade_difference(old, new, "MXN", date(2027, 2, 6), date(2027, 3, 5), 5)
    assert q.amount == Decimal("135.00")  # 150 x 27/30
    # the billing day before its installment is paid: nothing to top up yet
    with pytest.raises(InvalidInput, match="nothing is paid"):
        upgrade_difference(old, new, "MXN", date(2026, 11, 5), date(2026, 11, 5), 5)
    with pytest.raises(InvalidInput, match="higher price"):
        upgrade_difference(new, old, "MXN", date(2026, 11, 20), date(2026, 12, 5), 5)


@pytest.mark.parametrize("bad", [0, 29, 31, -1])
def test_billing_day_must_exist_in_every_month(bad: int) -> None:
    with pytest.raises(InvalidInput, match="between 1 and 28"):
        next_billing_date(date(2026, 11, 1), bad)
