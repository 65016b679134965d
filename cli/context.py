"""The composition root: settings -> engine, S3 store, pipeline, Mercado Pago, PAC, purger.

Built lazily, once per process, so `--help` touches nothing. This is the one
place that knows which concrete part plays each role (the gateway's S3 store
as billing's document store and drive purger, the dev stack's test PAC when
`pac_driver = local`).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from billing.core.db import make_engine
from billing.core.settings import Settings, load_settings

if TYPE_CHECKING:
    from billing.invoicing.pac import Pac
    from billing.invoicing.parts import Invoicing
    from billing.payments.accounts import Accounts
    from billing.payments.mercadopago import MercadoPago
    from gateway.ingest import IngestPipeline
    from gateway.purge import DrivePurge
    from gateway.store import S3DriveStore


class App:
    """What a command needs, created on first use."""

    def __init__(self, config: Path | None = None, settings: Settings | None = None) -> None:
        self.config_path = config
        if settings is not None:
            self.__dict__["settings"] = settings

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.config_path)

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.database_url, pool_size=self.settings.database_pool_size)

    @cached_property
    def store(self) -> S3DriveStore:
        from gateway.store import S3DriveStore

        return S3DriveStore(self.settings)

    @cached_property
    def purger(self) -> DrivePurge:
        from gateway.purge import DrivePurge

        return DrivePurge(self.store)

    @cached_property
    def mercadopago(self) -> MercadoPago:
        """The default account's adapter (mp_currency)."""
        from billing.payments.mercadopago import MercadoPago

        st = self.settings
        if st.mp_access_token:
            return self.accounts.for_currency(st.mp_currency)
        return MercadoPago(st.mp_access_token or "", st.mp_api_base, timeout=st.mp_timeout)

    @cached_property
    def accounts(self) -> Accounts:
        """One Mercado Pago account per currency (billing/payments/accounts.py)."""
        from billing.payments.accounts import Accounts

        return Accounts(self.settings)

    def billing_accounts(self) -> MercadoPago | dict[str, MercadoPago]:
        """What a billing pass polls with: the one account, or each account for
        the plans of its currency (billing/cycle.py `billing_cycle`)."""
        currencies = self.accounts.currencies()
        if len(currencies) <= 1:
            return self.mercadopago
        return {c: self.accounts.for_currency(c) for c in currencies}

    def mercadopago_for(self, currency: str) -> MercadoPago:
        """The adapter of the account that charges in `currency` (a plan's)."""
        return self.accounts.for_currency(currency)

    @cached_property
    def pac(self) -> Pac | None:
        if self.settings.pac_driver is None:  # no CSD either (settings check): invoices off
            return None
        if self.settings.pac_driver == "local":
            from cli.devstack.testpac import make_test_pac

            return make_test_pac(self.settings)
        from billing.invoicing.pac import make_pac

        return make_pac(self.settings)

    @cached_property
    def invoicing(self) -> Invoicing:
        """What issuing and cancelling invoices work with (the S3 store keeps the files)."""
        from billing.invoicing.parts import Invoicing

        return Invoicing(self.engine, self.store, self.settings, self.pac)

    @cached_property
    def pipeline(self) -> IngestPipeline:
        from gateway.ingest import IngestPipeline

        return IngestPipeline(self.settings, self.engine, self.store)

    def rewire(self, settings: Settings) -> App:
        """The same wiring for a forked gateway worker's share of the settings."""
        mine = App(self.config_path, settings)
        STATE["app"] = mine
        return mine


STATE: dict[str, App] = {}


def app_state() -> App:
    if "app" not in STATE:
        STATE["app"] = App()
    return STATE["app"]
