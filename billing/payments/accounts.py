"""One Mercado Pago account per currency.

A Mercado Pago account belongs to one country and charges in its currency
(a plan's `auto_recurring.currency_id`, one of ARS, BRL, CLP, COP, MXN, PEN,
UYU: https://www.mercadopago.com.mx/developers/en/reference/subscriptions/_preapproval_plan/post),
so a plan in BRL needs a Brazilian account. The default account
(`CAM2DRIVE_MP_ACCESS_TOKEN`, `_WEBHOOK_SECRET`, `_API_BASE`) charges in
`mp_currency` (MXN); every other currency is configured as
`[mp.accounts.BRL] access_token = "…"  webhook_secret = "…"`.

The composition root (cli/context.py) asks this registry for the adapter of
a plan's currency; billing code is handed that adapter and never chooses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from billing.core.errors import InvalidInput
from billing.core.settings import Settings
from billing.payments.mercadopago import MercadoPago

#: what a billing pass and a webhook drain are handed: the one account, or
#: every configured one by its currency (the default first)
OneOrByCurrency = MercadoPago | Mapping[str, MercadoPago]


@dataclass(frozen=True)
class Account:
    currency: str
    access_token: str
    webhook_secret: str | None
    api_base: str


def configured(settings: Settings) -> dict[str, Account]:
    """Every configured account by currency; the default one first."""
    found: dict[str, Account] = {}
    if settings.mp_access_token:
        found[settings.mp_currency] = Account(
            settings.mp_currency,
            settings.mp_access_token,
            settings.mp_webhook_secret,
            settings.mp_api_base,
        )
    for currency, acc in settings.mp_accounts.items():
        found[currency] = Account(
            currency, acc.access_token, acc.webhook_secret, acc.api_base or settings.mp_api_base
        )
    return found


def no_account(currency: str, settings: Settings) -> InvalidInput:
    if settings.mp_access_token:
        return InvalidInput(
            "no Mercado Pago account charges in %(currency)s: add [mp.accounts.%(currency)s] "
            'access_token = "…" (and webhook_secret) to the config',
            currency=currency,
        )
    return InvalidInput(
        "no Mercado Pago account charges in %(currency)s: add [mp.accounts.%(currency)s] "
        'access_token = "…" (and webhook_secret) to the config, or set '
        "CAM2DRIVE_MP_ACCESS_TOKEN with CAM2DRIVE_MP_CURRENCY=%(currency)s",
        currency=currency,
    )


class Accounts:
    """The adapters, made on first use, one per configured currency."""

    def __init__(
        self,
        settings: Settings,
        make: Callable[[Account], MercadoPago] | None = None,
    ) -> None:
        self.settings = settings
        self.accounts = configured(settings)
        self._make = make or (
            lambda a: MercadoPago(a.access_token, a.api_base, timeout=settings.mp_timeout)
        )
        self._made: dict[str, MercadoPago] = {}

    def currencies(self) -> list[str]:
        return list(self.accounts)

    def check(self, currency: str) -> None:
        """A plan's currency must have an account once billing is configured at all
        (with none, plans serve courtesy subscriptions and ERP contracts only)."""
        currency = currency.strip().upper()
        if self.accounts and currency not in self.accounts:
            raise no_account(currency, self.settings)

    def for_currency(self, currency: str) -> MercadoPago:
        currency = currency.strip().upper()
        if currency not in self.accounts:
            raise no_account(currency, self.settings)
        if currency not in self._made:
            self._made[currency] = self._make(self.accounts[currency])
        return self._made[currency]
