"""Wiring: settings -> engine, S3 store, pipeline. Built lazily, once per process."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from sqlalchemy import Engine

from billing.db import make_engine
from billing.settings import Settings, load_settings


class App:
    """What a command needs, created on first use so `--help` touches nothing."""

    def __init__(self, config: Path | None = None) -> None:
        self.config_path = config

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.config_path)

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.database_url,
                           pool_size=self.settings.database_pool_size)

    @cached_property
    def store(self):  # type: ignore[no-untyped-def]
        from gateway.store import S3DriveStore

        return S3DriveStore(self.settings)

    @cached_property
    def mercadopago(self):  # type: ignore[no-untyped-def]
        from billing.mercadopago import MercadoPago

        st = self.settings
        return MercadoPago(st.mp_access_token or "", st.mp_api_base, timeout=st.mp_timeout)

    @cached_property
    def pipeline(self):  # type: ignore[no-untyped-def]
        from gateway.ingest import IngestPipeline

        return IngestPipeline(self.settings, self.engine, self.store)


STATE: dict[str, App] = {}


def app_state() -> App:
    if "app" not in STATE:
        STATE["app"] = App()
    return STATE["app"]
