"""One definition of every setting, read by every cam2drive process.

It lives in `billing/` because that is the lowest layer: the gateway and the
CLI both import it, and nothing here imports them.

Sources, strongest first: constructor arguments, environment variables
(`CAM2DRIVE_FTP_PORT`, plus the standard `AWS_*` variables for S3
credentials), then a TOML file (`--config`, `CAM2DRIVE_CONFIG`, or
`/etc/cam2drive/cam2drive.toml`). The TOML file may group keys in tables:
`[ftp] port = 21` is the same as `ftp_port = 21`.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

DEFAULT_CONFIG_FILE = Path("/etc/cam2drive/cam2drive.toml")


class ConfigError(Exception):
    """A configuration file or value that cannot be used."""


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"ftp": {"port": 21}}` -> `{"ftp_port": 21}` (one level of tables)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}".replace("-", "_")
        if isinstance(value, dict) and not prefix:
            flat.update(_flatten(value, prefix=f"{name}_"))
        else:
            flat[name] = value
    return flat


class _TomlSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self.path = path

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            data = tomllib.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {self.path}: {exc}") from exc
        return _flatten(data)


def _config_path(explicit: Path | None) -> Path | None:
    if explicit is not None:
        if not explicit.exists():
            raise ConfigError(f"config file {explicit} does not exist")
        return explicit
    env = os.environ.get("CAM2DRIVE_CONFIG")
    if env:
        path = Path(env)
        if not path.exists():
            raise ConfigError(f"CAM2DRIVE_CONFIG={env} does not exist")
        return path
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.exists() else None


class MercadoPagoAccount(BaseModel):
    """One Mercado Pago account (a country's, a currency's): its credentials."""

    access_token: str
    webhook_secret: str | None = None
    api_base: str | None = None  # None: mp_api_base


class Settings(BaseSettings):
    """All of cam2drive's configuration (see README, "Configuration")."""

    model_config = SettingsConfigDict(env_prefix="CAM2DRIVE_", extra="ignore")
    #: the TOML file `load_settings` found; plain `Settings(...)` reads none.
    config_file: ClassVar[Path | None] = None

    # --- system of record
    database_url: str = "sqlite:///./var/cam2drive.db"
    # Connections a process keeps open, and never more: beyond it a session
    # waits for a free one. An overflow connection opened and closed per
    # transaction (SQLAlchemy's default) cost a loaded gateway a PostgreSQL
    # connection set-up per file (BENCHMARKS.md, fleet).
    database_pool_size: int = Field(default=20, ge=1, le=1000)

    # --- S3 drive store
    s3_endpoint_url: str | None = None
    s3_bucket: str = "cam2drive"
    s3_region: str | None = None
    s3_part_size: int = Field(8 * 1024 * 1024, ge=5 * 1024 * 1024)
    s3_parts_in_flight: int = Field(3, ge=1, le=64)
    # upload buffers one gateway process may hold at once (parts filling and in
    # flight); a session needing more waits up to upload_buffer_wait seconds
    upload_buffer_budget: int = Field(48 * 1024 * 1024, ge=1024 * 1024)
    upload_buffer_wait: float = Field(10.0, ge=0)
    # seconds between returns of free heap pages to the OS in a gateway (0: never)
    heap_trim_interval: float = Field(5.0, ge=0)
    # how long a gateway thread may keep the GIL while others wait for it
    # (sys.setswitchinterval); longer means fewer forced hand-overs between
    # its threads (BENCHMARKS.md, fleet)
    gil_switch_interval_ms: float = Field(20.0, ge=0.1, le=1000)
    s3_connect_timeout: float = 5.0
    s3_read_timeout: float = 60.0
    s3_max_attempts: int = 3
    # SigV4 payload signing hashes every byte sent (SHA-256: 7 % of an SFTP
    # gateway's CPU per uploaded byte, BENCHMARKS.md). "auto" signs only over
    # plain HTTP to another host: TLS already protects the bytes, and
    # loopback has no wire to protect.
    s3_payload_signing: Literal["auto", "on", "off"] = "auto"
    # an upload whose size is announced (FTP ALLO) of 1 MiB or more is one
    # PutObject sent as its bytes arrive, with no part buffers; needs unsigned
    # payloads (gateway/stream.py). Off: buffered multipart, as for SFTP.
    s3_stream_announced: bool = True

    # gateway processes per node, sharing its ports (gateway/workers.py); 0: one
    # per core on PostgreSQL, one on SQLite. More use more cores and cost memory
    # (BENCHMARKS.md, fleet)
    gateway_workers: int = Field(1, ge=0, le=64)

    # --- FTP frontend
    ftp_host: str = "0.0.0.0"
    ftp_port: int = 2121
    ftp_passive_ports: str = "30000-30511"  # a port for each of ftp_max_connections
    ftp_masquerade_address: str | None = None
    ftp_tls_certfile: Path | None = None
    ftp_tls_keyfile: Path | None = None
    ftp_tls_required: bool = False
    ftp_idle_timeout: int = 300
    ftp_max_connections: int = 512
    # Without ALLO, how long to watch the control connection after the data
    # ends, to tell a finished upload from a killed client (gateway/ftp/handler.py).
    ftp_eof_grace_ms: int = Field(30, ge=0, le=1000)
    ftp_max_connections_per_ip: int = 64
    # of ftp_max_connections, how many may be waiting to log in (the rest is a
    # reserve for logged-in sessions; gateway/admission.py), and for how long
    ftp_max_unauthenticated: int = Field(100, ge=1)
    ftp_login_timeout: float = Field(30.0, gt=0)
    # --- SFTP frontend
    sftp_host: str = "0.0.0.0"
    sftp_port: int = 2222
    sftp_host_key_dir: Path = Path("var/hostkeys")
    # Old embedded SSH clients: also offer SHA-1 key exchange, CBC ciphers, ssh-rsa.
    sftp_legacy_algorithms: bool = False
    sftp_kex_algs: list[str] | None = None
    sftp_encryption_algs: list[str] | None = None
    sftp_mac_algs: list[str] | None = None
    sftp_login_timeout: int = 30
    # as for FTP: in all (per node), per address (per worker process), and
    # waiting to log in (OpenSSH's MaxStartups full value, 100)
    sftp_max_connections: int = Field(512, ge=1)
    sftp_max_connections_per_ip: int = Field(64, ge=1)
    sftp_max_unauthenticated: int = Field(100, ge=1)
    sftp_write_window: int = Field(16 * 1024 * 1024, ge=1024 * 1024)
    # out-of-order data (writes past a hole) one SFTP session may hold over all
    # its open files; a gateway process holds at most half its
    # upload_buffer_budget of it (gateway/ingest.py HeldBytes)
    sftp_held_per_session: int = Field(16 * 1024 * 1024, ge=1024 * 1024)
    # SSH channel window: what a client may send before the gateway has taken it
    # in; each session can hold this much in its buffers
    sftp_channel_window: int = Field(2 * 1024 * 1024, ge=64 * 1024)
    # Largest SSH data packet a client may send on a session channel: fewer,
    # larger packets cost asyncssh less CPU per byte (BENCHMARKS.md, fleet)
    sftp_max_packet: int = Field(256 * 1024, ge=32 * 1024, le=256 * 1024)

    # each transfer logged as one text line, or as one JSON object per line
    # (session, protocol, user, path, bytes, ms, outcome: gateway/transferlog.py)
    log_format: Literal["text", "json"] = "text"

    # Address a recorder should be told to use (printed by `device add`).
    public_host: str | None = None

    # --- HTTP service (web/): the ERP API, health and metrics
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    # uvicorn worker processes of `cam2drive http serve` sharing its port; more
    # pay off on PostgreSQL (SQLite has one writer). Each keeps its own request
    # counters in /metrics (BENCHMARKS.md, ERP API)
    http_workers: int = Field(1, ge=1, le=64)
    # --- the portal (web/portal/): where emailed links point, and its cookies
    portal_url: str = "http://127.0.0.1:8080"  # the public address customers open
    # Secure cookies: "auto" when the request came over TLS (X-Forwarded-Proto is
    # believed only from trusted_proxies), "always" or "never"
    portal_secure_cookies: Literal["auto", "always", "never"] = "auto"
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"])
    session_hours: float = Field(12, gt=0)  # a portal sign-in lasts this long
    password_link_hours: float = Field(24, gt=0)  # a first-password or reset link expires
    # Prometheus /metrics of a gateway or scheduler process (0: off); gateway
    # worker i of several serves on metrics_port + i
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(0, ge=0, le=65535)
    # --- ERP contracts (billing/contracts.py)
    contract_retention_days: int = Field(15, ge=0)  # cancelled -> drive deleted
    idempotency_hours: int = Field(24, ge=1)  # an Idempotency-Key's answer is kept this long
    erp_every_seconds: int = Field(60, ge=5)  # scheduler: callbacks and contract sweep
    callback_timeout: float = Field(10.0, gt=0)
    callback_max_attempts: int = Field(15, ge=1)  # then the event is kept as failed

    # --- path decoding: firmwares may send GB2312 bytes
    path_fallback_encoding: str | None = "gb18030"

    # --- reservations and logins
    reservation_lease_seconds: int = Field(120, ge=1)
    # an upload that takes no data for this long ends with a transient error
    # (FTP 451) and gives its reservation back (gateway/leases.py)
    upload_stall_seconds: float = Field(60.0, gt=0)
    ban_max_failures: int = 5  # per address, within the window
    # per account name, from any addresses (the account's last good address is exempt)
    ban_max_failures_per_account: int = Field(10, ge=1)
    ban_window_seconds: int = 600
    ban_seconds: int = 1800
    auth_failed_delay: float = 1.0

    # --- billing
    billing_day: int = Field(5, ge=1, le=28)
    mp_access_token: str | None = None
    mp_api_base: str = "https://api.mercadopago.com"
    mp_timeout: float = 10.0
    # the application's secret signature (Your integrations > Webhooks): checks x-signature
    mp_webhook_secret: str | None = None
    # a pay-now or upgrade link's own notification_url: this service's POST
    # /webhooks/mercadopago as the internet reaches it. None (the default): the
    # application's Webhooks (Your integrations), which notify `payment` too, and
    # polling; the SDK marks a preference's notification_url deprecated for those
    mp_notification_url: str | None = None
    # a pay-now or upgrade link (Checkout Pro preference) can be paid this long
    pay_link_days: int = Field(3, ge=1)
    # the currency the default account (mp_access_token, mp_webhook_secret,
    # mp_api_base) charges in; each other currency needs its own account:
    # [mp.accounts.BRL] access_token = "…", webhook_secret = "…" (billing/payments/accounts.py)
    mp_currency: str = "MXN"
    mp_accounts: dict[str, MercadoPagoAccount] = Field(default_factory=dict)
    billing_every_seconds: int = Field(900, ge=10)  # scheduler: billing pass period
    janitor_every_seconds: int = Field(60, ge=5)  # scheduler: janitor period
    grace_days: int = Field(10, ge=0)  # past_due -> blocked
    delete_after_days: int = Field(5, ge=0)  # blocked -> drive deleted
    # cancelled by the customer: the drive is kept this long after the paid period
    cancel_retention_days: int = Field(15, ge=0)
    # a pending paid subscription nobody subscribed to at Mercado Pago expires
    pending_expiry_days: int = Field(7, ge=1)
    # a subscription that may change (renewal due, unpaid) is polled at most this often
    billing_recheck_minutes: int = Field(60, ge=0)
    billing_concurrency: int = Field(8, ge=1, le=64)  # Mercado Pago calls in flight in a pass
    # a pass with at least this many subscriptions to check reads Mercado Pago's
    # payment search first (a page per thousand) and polls only what it leaves open
    billing_feed_min: int = Field(50, ge=1)

    node_name: str = Field(default_factory=lambda: os.uname().nodename)

    # --- invoices: CFDI 4.0 sealed with the issuer's CSD, stamped by a PAC
    cfdi_csd_certificate: Path | None = None  # the .cer (DER); no certificate, no invoices
    cfdi_csd_key: Path | None = None  # the .key (encrypted PKCS#8 DER)
    cfdi_csd_password: str | None = None
    # the issuer's fiscal data, as in its Constancia de Situación Fiscal: required
    # with a CSD (no placeholders: a wrong LugarExpedicion is a wrong invoice);
    # the name without "SA de CV", which CFDI 4.0 leaves out and a CSD carries
    cfdi_issuer_name: str | None = None
    cfdi_issuer_regime: str | None = None  # régimen fiscal (c_RegimenFiscal), e.g. 601
    cfdi_issuer_postal_code: str | None = None  # LugarExpedicion: 5 digits
    cfdi_serie: str = "C2D"
    cfdi_product_code: str = "81112006"  # c_ClaveProdServ: servicios de almacenamiento de datos
    cfdi_unit_code: str = "E48"  # c_ClaveUnidad: unidad de servicio
    # c_FormaPago by Mercado Pago payment_type_id, over the table in
    # billing/invoicing/catalogs.py (credit_card 04, debit_card 28, account_money 06...)
    cfdi_payment_forms: dict[str, str] = Field(default_factory=dict)
    # when the payment's type is unknown: intermediario de pagos
    cfdi_payment_form: str = "31"
    cfdi_tax_rate: str = "0.160000"  # IVA, included in plan prices
    # c_Periodicidad of the global invoice to customers without fiscal data:
    # 01 daily, 02 weekly, 04 monthly (billing/invoicing/globals.py)
    cfdi_global_periodicity: Literal["01", "02", "04"] = "04"
    # finkok; or local, the dev stack's test PAC (make run, tests). No default:
    # a CSD configured without a driver is a startup error, never a silent test PAC
    pac_driver: str | None = None
    pac_username: str | None = None
    pac_password: str | None = None
    pac_production: bool = False  # the PAC's production endpoint, not its test one
    pac_local_dir: Path = Path("var/test-pac")  # the local test PAC's certificate
    # every PAC call is bounded: a hung PAC costs one invoice a retry, never the pass
    pac_url: str | None = None  # the PAC's endpoint instead of its published one
    pac_connect_timeout: float = Field(10.0, gt=0)
    pac_read_timeout: float = Field(60.0, gt=0)
    # a CFDI the PAC refuses this many times stops being retried and alerts the operator
    invoice_max_attempts: int = Field(5, ge=1)
    invoice_prefix: str = "invoices/"  # S3 prefix, outside every drive
    # Litestream's copy of the SQLite database, in the drive bucket, outside
    # every drive (cli/litestream.py); `db replicate` streams it, `db restore` reads it
    litestream_prefix: str = "backup/litestream/"
    litestream_sync_interval: float = Field(1.0, gt=0)  # seconds a commit may wait to be copied

    # --- notifications by email
    smtp_host: str | None = None  # none: notifications queue and wait
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_timeout: float = 10.0
    mail_from: str = "cam2drive <no-reply@localhost>"
    default_locale: str = "es"  # es | pt | en, for customers without one
    notify_every_seconds: int = Field(300, ge=5)  # scheduler: collect and send
    silent_hours: float = Field(6, gt=0)  # a recorder silent this long is reported
    # a recorder's clock when its device names none (Dahua file names carry no zone)
    device_timezone: str = "America/Mexico_City"
    final_warning_days: int = Field(2, ge=0)  # warning this many days before deletion

    def recorder_host(self) -> str:
        """The address a recorder is told to upload to (`device add`, the ERP's PUT)."""
        if self.public_host or self.ftp_masquerade_address:
            return str(self.public_host or self.ftp_masquerade_address)
        return "127.0.0.1" if self.ftp_host in ("0.0.0.0", "::") else self.ftp_host

    @field_validator("ftp_passive_ports")
    @classmethod
    def _check_ports(cls, value: str) -> str:
        passive_port_range(value)
        return value

    @field_validator("litestream_prefix")
    @classmethod
    def _check_litestream_prefix(cls, value: str) -> str:
        from billing.core.vocab import DRIVE_ROOT

        if not value.endswith("/") or value.startswith((DRIVE_ROOT, "/")) or ".." in value:
            raise ValueError(f"litestream_prefix must end in '/' and lie outside {DRIVE_ROOT}")
        return value

    @field_validator("device_timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"device_timezone: unknown time zone {value!r}") from None
        return value

    @field_validator("default_locale")
    @classmethod
    def _check_locale(cls, value: str) -> str:
        from billing.core.vocab import LOCALES

        if value not in LOCALES:
            raise ValueError(f"default_locale must be one of {', '.join(LOCALES)}")
        return value

    @field_validator("pac_driver")
    @classmethod
    def _check_pac(cls, value: str | None) -> str | None:
        if value not in (None, "local", "finkok"):
            raise ValueError("pac_driver must be local or finkok")
        return value

    @model_validator(mode="after")
    def _check_pac_and_csd(self) -> Settings:
        """A real CSD is never stamped by the test PAC, and never waits for a default."""
        if self.cfdi_csd_certificate is None:
            return self
        if self.pac_driver is None:
            raise ValueError(
                "a CSD is configured but pac_driver is not: set pac_driver = "
                "finkok (the local test PAC is for make run and tests only)"
            )
        if self.pac_driver == "local" and csd_issued_by_sat(self.cfdi_csd_certificate):
            raise ValueError(
                "pac_driver = local would stamp a SAT-issued CSD's invoices with "
                "the test PAC, which the SAT never sees: set pac_driver = finkok"
            )
        return self

    @model_validator(mode="after")
    def _check_issuer(self) -> Settings:
        """With a CSD, the issuer's data are real config: never a placeholder."""
        if self.cfdi_csd_certificate is None:
            return self
        missing = [
            name
            for name in ("cfdi_issuer_name", "cfdi_issuer_regime", "cfdi_issuer_postal_code")
            if not (getattr(self, name) or "").strip()
        ]
        if missing:
            raise ValueError(
                f"a CSD is configured but {', '.join(missing)} is not: set the issuer's "
                "data as in its Constancia de Situación Fiscal"
            )
        if not re.fullmatch(r"[0-9]{5}", self.cfdi_issuer_postal_code or ""):
            raise ValueError("cfdi_issuer_postal_code (LugarExpedicion) must be 5 digits")
        if not re.fullmatch(r"[0-9]{3}", self.cfdi_issuer_regime or ""):
            raise ValueError("cfdi_issuer_regime must be a c_RegimenFiscal key such as 601")
        for kind, form in {**self.cfdi_payment_forms, "": self.cfdi_payment_form}.items():
            if not re.fullmatch(r"[0-9]{2}", form):
                raise ValueError(f"c_FormaPago {form!r} (for {kind or 'unknown'}) is not 2 digits")
        return self

    @field_validator("mp_currency")
    @classmethod
    def _check_mp_currency(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z]{3}", value.strip()):
            raise ValueError(f"mp_currency {value!r} must be a 3-letter ISO code such as MXN")
        return value.strip().upper()

    @field_validator("mp_accounts")
    @classmethod
    def _check_mp_accounts(
        cls, value: dict[str, MercadoPagoAccount]
    ) -> dict[str, MercadoPagoAccount]:
        for currency in value:
            if not re.fullmatch(r"[A-Za-z]{3}", currency):
                raise ValueError(f"mp.accounts.{currency}: not a 3-letter ISO currency code")
        return {currency.upper(): account for currency, account in value.items()}

    @field_validator("path_fallback_encoding")
    @classmethod
    def _check_encoding(cls, value: str | None) -> str | None:
        if value in (None, "", "none", "refuse"):
            return None
        import codecs

        try:
            codecs.lookup(value)
        except LookupError as exc:
            raise ValueError(f"unknown encoding {value!r}") from exc
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = getattr(settings_cls, "config_file", None)
        return (init_settings, env_settings, _TomlSource(settings_cls, path))


def csd_issued_by_sat(certificate: Path) -> bool:
    """Is this .cer issued by someone else (the SAT), not made locally (self-signed)?

    Every CSD the SAT issues is signed by one of its certification
    authorities; the dev stack's demo CSD signs itself. An unreadable file
    counts as real, so a mistake never unlocks the test PAC.
    """
    from cryptography import x509

    try:
        cert = x509.load_der_x509_certificate(certificate.read_bytes())
    except (OSError, ValueError):
        return True
    return cert.issuer != cert.subject


def passive_port_range(value: str) -> range:
    """Parse `30000-30099` into an inclusive port range."""
    try:
        low, _, high = value.partition("-")
        start, end = int(low), int(high or low)
    except ValueError as exc:
        raise ValueError(f"passive ports must look like 30000-30099, not {value!r}") from exc
    if not (1024 <= start <= end <= 65535):
        raise ValueError(f"passive port range {value!r} must lie within 1024-65535")
    return range(start, end + 1)


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from overrides, the environment and the TOML file."""
    bound = type("Settings", (Settings,), {"config_file": _config_path(config)})
    try:
        return bound(**overrides)
    except ConfigError:
        raise
    except Exception as exc:  # pydantic.ValidationError: make it one line
        errors = getattr(exc, "errors", None)
        if callable(errors):
            first = errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "config"
            raise ConfigError(f"invalid setting {where}: {first.get('msg')}") from exc
        raise ConfigError(str(exc)) from exc
