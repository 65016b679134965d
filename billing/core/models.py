"""The system of record: every table cam2drive keeps.

The schema itself is created only by Alembic (alembic/versions); tests check
that the migrations and these classes agree.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlmodel import Field, SQLModel

from billing.core.vocab import UPLOAD_STATUSES, OnFull, SubscriptionStatus

__all__ = ["UPLOAD_STATUSES", "OnFull", "SubscriptionStatus"]


def utcnow() -> datetime:
    """Aware UTC; SQLModel's UTCDateTime columns store and return UTC on both databases."""
    return datetime.now(UTC)


class WithId(SQLModel):
    """A table keyed by an integer the database assigns (its first column, `id`)."""

    id: int | None = Field(default=None, primary_key=True)


class Distributor(WithId, table=True):
    __tablename__ = "distributors"

    name: str = Field(sa_column=Column(String(200), nullable=False))
    email: str = Field(sa_column=Column(String(254), nullable=False, unique=True))
    created_at: datetime = Field(default_factory=utcnow, nullable=False)


class Customer(WithId, table=True):
    __tablename__ = "customers"

    distributor_id: int = Field(foreign_key="distributors.id", index=True, nullable=False)
    email: str = Field(sa_column=Column(String(254), nullable=False, unique=True))
    name: str | None = Field(default=None, sa_column=Column(String(200)))
    phone: str | None = Field(default=None, sa_column=Column(String(40)))
    tax_id: str | None = Field(default=None, sa_column=Column(String(40)))  # the RFC in Mexico
    # fiscal data for CFDI invoices; with none, invoices go to "público en general"
    tax_regime: str | None = Field(default=None, sa_column=Column(String(3)))
    cfdi_use: str | None = Field(default=None, sa_column=Column(String(4)))
    postal_code: str | None = Field(default=None, sa_column=Column(String(10)))
    locale: str | None = Field(default=None, sa_column=Column(String(5)))  # es | pt | en
    password_hash: str | None = Field(default=None, sa_column=Column(String(200)))
    created_at: datetime = Field(default_factory=utcnow, nullable=False)


class Device(WithId, table=True):
    __tablename__ = "devices"

    customer_id: int = Field(foreign_key="customers.id", index=True, nullable=False)
    name: str = Field(sa_column=Column(String(100), nullable=False))
    serial: str | None = Field(default=None, sa_column=Column(String(100)))
    username: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    secret_hash: str = Field(sa_column=Column(String(200), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, nullable=False)
    # set while the recorder is reported silent (billing/notify/outbox.py), cleared on recovery
    silent_since: datetime | None = Field(default=None)
    # IANA zone of the recorder's clock (its file names carry none); None: settings.device_timezone
    timezone: str | None = Field(default=None, sa_column=Column(String(64)))


class DeviceKey(WithId, table=True):
    """An SSH public key a device may log in with over SFTP."""

    __tablename__ = "device_keys"
    __table_args__ = (UniqueConstraint("device_id", "fingerprint", name="uq_device_keys_fp"),)

    device_id: int = Field(foreign_key="devices.id", index=True, nullable=False)
    algorithm: str = Field(sa_column=Column(String(60), nullable=False))
    public_key: str = Field(sa_column=Column(Text, nullable=False))
    fingerprint: str = Field(sa_column=Column(String(100), nullable=False, index=True))
    comment: str | None = Field(default=None, sa_column=Column(String(200)))
    created_at: datetime = Field(default_factory=utcnow, nullable=False)


class Plan(WithId, table=True):
    __tablename__ = "plans"

    code: str = Field(sa_column=Column(String(40), nullable=False, unique=True))
    capacity_bytes: int = Field(sa_column=Column(BigInteger, nullable=False))
    price: Decimal = Field(sa_column=Column(Numeric(12, 2), nullable=False))
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    on_full: str = Field(default=OnFull.rotate.value, sa_column=Column(String(10), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, nullable=False)


class Subscription(WithId, table=True):
    """A device's right to upload: `courtesy` (granted by hand) or `paid` (Mercado Pago)."""

    __tablename__ = "subscriptions"

    device_id: int = Field(foreign_key="devices.id", index=True, nullable=False)
    plan_id: int = Field(foreign_key="plans.id", nullable=False)
    status: str = Field(sa_column=Column(String(20), nullable=False, index=True))
    kind: str = Field(default="courtesy", sa_column=Column(String(20), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, nullable=False)
    # --- paid subscriptions
    mp_preapproval_id: str | None = Field(default=None, sa_column=Column(String(64), index=True))
    checkout_url: str | None = Field(default=None, sa_column=Column(String(500)))
    pending_reason: str | None = Field(default=None, sa_column=Column(Text))
    start_date: date | None = Field(default=None)
    first_charge: Decimal | None = Field(default=None, sa_column=Column(Numeric(12, 2)))
    paid_through: date | None = Field(default=None)
    cancel_at_period_end: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=false())
    )
    next_plan_id: int | None = Field(default=None, foreign_key="plans.id")
    past_due_since: datetime | None = Field(default=None)
    # when uploads stopped: blocked for non-payment, or cancelled at period end
    blocked_at: datetime | None = Field(default=None)
    # when a billing pass last heard from Mercado Pago about it (billing/cycle.py)
    checked_at: datetime | None = Field(default=None)
    # the outbox of the preapproval's amount: set when a plan change must reach
    # Mercado Pago (PUT /preapproval/{id}), cleared once it has; each billing
    # pass retries it, isolated to this subscription (billing/payments/outbox.py)
    mp_amount_pending: Decimal | None = Field(default=None, sa_column=Column(Numeric(12, 2)))


class MercadoPagoPlan(WithId, table=True):
    """The Mercado Pago preapproval plan behind a cam2drive plan, price and billing day."""

    __tablename__ = "mp_plans"
    __table_args__ = (UniqueConstraint("plan_id", "billing_day", "price", name="uq_mp_plans"),)

    plan_id: int = Field(foreign_key="plans.id", nullable=False)
    billing_day: int = Field(nullable=False)
    price: Decimal = Field(sa_column=Column(Numeric(12, 2), nullable=False))
    mp_plan_id: str = Field(sa_column=Column(String(64), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, nullable=False)


class Charge(WithId, table=True):
    """The ledger: every amount asked of a payer, with the key that makes it idempotent."""

    __tablename__ = "charges"

    subscription_id: int = Field(foreign_key="subscriptions.id", index=True, nullable=False)
    kind: str = Field(sa_column=Column(String(20), nullable=False))  # installment|upgrade|paynow
    plan_id: int | None = Field(default=None, foreign_key="plans.id")  # an upgrade's target
    amount: Decimal = Field(sa_column=Column(Numeric(12, 2), nullable=False))
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    idempotency_key: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    mp_id: str | None = Field(default=None, sa_column=Column(String(64), index=True))
    # pending|approved|rejected|refunded|charged_back; a one-off's link can also be `expired`
    status: str = Field(sa_column=Column(String(20), nullable=False))
    # Mercado Pago's payment_type_id of the approved payment (credit_card, debit_card,
    # account_money...): the CFDI's FormaPago (billing/invoicing/catalogs.py)
    payment_type_id: str | None = Field(default=None, sa_column=Column(String(40)))
    # a one-off charge (pay-now, upgrade) is paid at a Checkout Pro preference:
    # its id, the payer's link and the link's expiry (billing/payments/checkout.py)
    mp_preference_id: str | None = Field(default=None, sa_column=Column(String(80)))
    checkout_url: str | None = Field(default=None, sa_column=Column(String(500)))
    expires_at: datetime | None = Field(default=None)
    period_start: date | None = Field(default=None)
    period_end: date | None = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, nullable=False)


class Drive(WithId, table=True):
    """A device's storage: counters kept exact by atomic UPDATEs (gateway/index.py)."""

    __tablename__ = "drives"

    device_id: int = Field(foreign_key="devices.id", nullable=False, unique=True)
    prefix: str = Field(sa_column=Column(String(200), nullable=False, unique=True))
    capacity_bytes: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    committed_bytes: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    reserved_bytes: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    object_count: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    last_upload_at: datetime | None = Field(default=None)


class DriveEntry(WithId, table=True):
    """The object index: one row per committed file or directory of a drive.

    `path` is the logical path a login sees (no leading slash); `key` is the
    immutable S3 key the bytes live under, so renames touch only this row.
    """

    __tablename__ = "drive_entries"
    __table_args__ = (
        UniqueConstraint("drive_id", "path", name="uq_drive_entries_path"),
        Index("ix_drive_entries_parent", "drive_id", "parent"),
        Index("ix_drive_entries_age", "drive_id", "is_dir", "committed_at"),
    )

    drive_id: int = Field(foreign_key="drives.id", nullable=False)
    path: str = Field(sa_column=Column(String(1024), nullable=False))
    parent: str = Field(sa_column=Column(String(1024), nullable=False))
    name: str = Field(sa_column=Column(String(255), nullable=False))
    is_dir: bool = Field(default=False, nullable=False)
    size: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    key: str | None = Field(default=None, sa_column=Column(String(300)))
    committed_at: datetime = Field(default_factory=utcnow, nullable=False)


class Recording(SQLModel, table=True):
    """A committed file whose name is a Dahua recording's (gateway/recordings.py).

    Written in the commit's transaction and gone with its entry (ON DELETE
    CASCADE: rotation, DELE, purge and fsck need not know it). Times are the
    recorder's local wall clock, naive: names carry no zone.
    """

    __tablename__ = "recordings"
    __table_args__ = (Index("ix_recordings_day", "drive_id", "starts_at"),)

    entry_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("drive_entries.id", ondelete="CASCADE"), primary_key=True
        )
    )
    drive_id: int = Field(foreign_key="drives.id", nullable=False)
    channel: int = Field(nullable=False)
    kind: str = Field(sa_column=Column(String(1), nullable=False))  # R M A I F
    starts_at: datetime = Field(sa_column=Column(DateTime(), nullable=False))
    ends_at: datetime = Field(sa_column=Column(DateTime(), nullable=False))
    is_snapshot: bool = Field(nullable=False)


class Reservation(SQLModel, table=True):
    """Bytes an in-flight upload holds on a drive, with a lease.

    A gateway renews the lease with every part; the janitor releases the
    reservations of crashed nodes and aborts their multipart uploads.
    """

    __tablename__ = "reservations"

    id: str = Field(sa_column=Column(String(32), primary_key=True))
    drive_id: int = Field(foreign_key="drives.id", nullable=False, index=True)
    bytes: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    key: str = Field(sa_column=Column(String(300), nullable=False))
    upload_id: str | None = Field(default=None, sa_column=Column(String(300)))
    node: str = Field(sa_column=Column(String(100), nullable=False))
    lease_expires_at: datetime = Field(nullable=False, index=True)
    created_at: datetime = Field(default_factory=utcnow, nullable=False)


class LoginFailure(SQLModel, table=True):
    """Failed logins per address; shared so that every gateway node bans alike."""

    __tablename__ = "login_failures"

    ip: str = Field(sa_column=Column(String(64), primary_key=True))
    failures: int = Field(default=0, nullable=False)
    window_started_at: datetime = Field(default_factory=utcnow, nullable=False)
    banned_until: datetime | None = Field(default=None)


class AccountLoginFailure(SQLModel, table=True):
    """Failed logins per account name, from any address: guesses spread over
    many addresses still add up (gateway/auth.py). `last_ok_ip` is where the
    account last logged in: its own recorder is not locked out by strangers."""

    __tablename__ = "account_login_failures"

    account: str = Field(sa_column=Column(String(320), primary_key=True))
    failures: int = Field(default=0, nullable=False)
    window_started_at: datetime = Field(default_factory=utcnow, nullable=False)
    banned_until: datetime | None = Field(default=None)
    last_ok_ip: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))


class AuditEvent(WithId, table=True):
    """Every state change, with who did it and why."""

    __tablename__ = "audit_log"

    at: datetime = Field(default_factory=utcnow, nullable=False, index=True)
    actor: str = Field(sa_column=Column(String(100), nullable=False))
    entity: str = Field(sa_column=Column(String(40), nullable=False))
    entity_id: str = Field(sa_column=Column(String(64), nullable=False))
    action: str = Field(sa_column=Column(String(60), nullable=False))
    cause: str = Field(sa_column=Column(Text, nullable=False))
    detail: str | None = Field(default=None, sa_column=Column(Text))


class Invoice(WithId, table=True):
    """The fiscal receipt of one approved charge: a stamped CFDI and its PDF in S3.

    The row is written before the PAC is called, with the folio and date the
    CFDI will carry, so a retried issue seals the same document again and a
    PAC recognises it instead of stamping a second one.
    """

    __tablename__ = "invoices"

    # the charge an ingreso invoices; a global or an egreso lists its charges
    # in invoice_lines instead (billing/invoicing/globals.py, credits.py)
    charge_id: int | None = Field(default=None, foreign_key="charges.id", unique=True)
    # I = the ingreso of one charge, G = a global ingreso to "público en
    # general" (InformacionGlobal), E = an egreso (credit note) for a refund
    kind: str = Field(default="I", sa_column=Column(String(1), nullable=False, server_default="I"))
    # what a global or an egreso is unique by ("G:2026-11:17", "E:42"), so two
    # schedulers racing open it once
    doc_key: str | None = Field(default=None, sa_column=Column(String(40), unique=True))
    related_uuid: str | None = Field(default=None, sa_column=Column(String(36)))
    # the c_Periodicidad / c_Meses / Año of a global (and of an egreso to público en general)
    periodicity: str | None = Field(default=None, sa_column=Column(String(2)))
    months: str | None = Field(default=None, sa_column=Column(String(2)))
    year: int | None = Field(default=None)
    cancel_reason: str | None = Field(default=None, sa_column=Column(String(2)))
    substitute_uuid: str | None = Field(default=None, sa_column=Column(String(36)))
    cancelled_at: datetime | None = Field(default=None)
    customer_id: int = Field(foreign_key="customers.id", nullable=False, index=True)
    serie: str = Field(sa_column=Column(String(25), nullable=False))
    folio: str = Field(sa_column=Column(String(40), nullable=False))
    issued_on: datetime = Field(nullable=False)  # the CFDI's Fecha, in UTC
    # pending | issued | failed | cancelled | void (refunded before it was stamped)
    status: str = Field(sa_column=Column(String(20), nullable=False))
    uuid: str | None = Field(default=None, sa_column=Column(String(36), unique=True))
    issuer_rfc: str | None = Field(default=None, sa_column=Column(String(13)))
    receiver_rfc: str | None = Field(default=None, sa_column=Column(String(13)))
    total: Decimal = Field(sa_column=Column(Numeric(12, 2), nullable=False))
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    xml_key: str | None = Field(default=None, sa_column=Column(String(300)))
    pdf_key: str | None = Field(default=None, sa_column=Column(String(300)))
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    attempts: int = Field(default=0, nullable=False)
    created_at: datetime = Field(default_factory=utcnow, nullable=False)
    stamped_at: datetime | None = Field(default=None)


class InvoiceLine(SQLModel, table=True):
    """A charge a global invoice or a credit note covers (a concept of its CFDI)."""

    __tablename__ = "invoice_lines"

    invoice_id: int = Field(foreign_key="invoices.id", primary_key=True)
    charge_id: int = Field(foreign_key="charges.id", primary_key=True, index=True)


class Notification(WithId, table=True):
    """The outbox: one email to send, unique by what it is about.

    `dedupe_key` names the event (e.g. `status:past_due:sub:7:audit:123`),
    so collecting twice, or two schedulers racing, queue it once. It goes to
    a customer, or (a forgotten password's link) to a distributor's staff
    member: `customer_id` or `staff_id`.
    """

    __tablename__ = "notifications"

    dedupe_key: str = Field(sa_column=Column(String(120), nullable=False, unique=True))
    kind: str = Field(sa_column=Column(String(40), nullable=False))
    customer_id: int | None = Field(default=None, foreign_key="customers.id", index=True)
    payload: str = Field(sa_column=Column(Text, nullable=False))  # JSON for the template
    status: str = Field(sa_column=Column(String(10), nullable=False, index=True))  # pending|sent
    attempts: int = Field(default=0, nullable=False)
    next_attempt_at: datetime = Field(default_factory=utcnow, nullable=False)
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow, nullable=False)
    sent_at: datetime | None = Field(default=None)
    staff_id: int | None = Field(default=None, foreign_key="distributor_users.id", index=True)


class Cursor(SQLModel, table=True):
    """How far a consumer of the audit log has read (e.g. the notifier)."""

    __tablename__ = "cursors"

    name: str = Field(sa_column=Column(String(40), primary_key=True))
    position: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


# --- ISPs' ERPs (billing/contracts.py, web/api/) ---------------------------------------


class ApiKey(WithId, table=True):
    """A distributor's ERP credential: `key_id` in clear, the secret only hashed."""

    __tablename__ = "api_keys"

    distributor_id: int = Field(foreign_key="distributors.id", index=True, nullable=False)
    key_id: str = Field(sa_column=Column(String(40), nullable=False, unique=True))
    secret_hash: str = Field(sa_column=Column(String(200), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, nullable=False)
    revoked_at: datetime | None = Field(default=None)


class DistributorPlan(WithId, table=True):
    """A plan a distributor sells (a product its ERP syncs) and what it pays for it."""

    __tablename__ = "distributor_plans"
    __table_args__ = (UniqueConstraint("distributor_id", "plan_id", name="uq_distributor_plans"),)

    distributor_id: int = Field(foreign_key="distributors.id", index=True, nullable=False)
    plan_id: int = Field(foreign_key="plans.id", nullable=False)
    wholesale_price: Decimal = Field(sa_column=Column(Numeric(12, 2), nullable=False))
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, nullable=False)


class Contract(WithId, table=True):
    """An ERP's contract: its own id, the customer and the one device (and drive) it made.

    Its status is the device's subscription's (kind `isp`), so the gateway's
    entitlement and viewing rules read one column whoever changed it.
    """

    __tablename__ = "contracts"
    __table_args__ = (
        UniqueConstraint("distributor_id", "external_id", name="uq_contracts_external"),
    )

    distributor_id: int = Field(foreign_key="distributors.id", nullable=False)
    external_id: str = Field(sa_column=Column(String(64), nullable=False))
    customer_id: int = Field(foreign_key="customers.id", index=True, nullable=False)
    device_id: int = Field(foreign_key="devices.id", nullable=False, unique=True)
    subscription_id: int = Field(foreign_key="subscriptions.id", nullable=False)
    created_at: datetime = Field(default_factory=utcnow, nullable=False)
    cancelled_at: datetime | None = Field(default=None)
    delete_on: date | None = Field(default=None)  # cancelled: the drive goes on this day
    next_plan_on: date | None = Field(default=None)  # a downgrade waits for this day


class ContractSpan(WithId, table=True):
    """Days a contract was billed to its ISP on one plan: [start_on, end_on)."""

    __tablename__ = "contract_spans"

    contract_id: int = Field(foreign_key="contracts.id", index=True, nullable=False)
    plan_id: int = Field(foreign_key="plans.id", nullable=False)
    price: Decimal = Field(sa_column=Column(Numeric(12, 2), nullable=False))  # monthly wholesale
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    start_on: date = Field(nullable=False)
    end_on: date | None = Field(default=None)


class IdempotentReply(WithId, table=True):
    """The first answer to an API call made with an `Idempotency-Key`, for its replays."""

    __tablename__ = "idempotent_replies"
    __table_args__ = (UniqueConstraint("distributor_id", "key", name="uq_idempotent_replies"),)

    distributor_id: int = Field(foreign_key="distributors.id", nullable=False)
    key: str = Field(sa_column=Column(String(200), nullable=False))
    fingerprint: str = Field(sa_column=Column(String(64), nullable=False))
    status_code: int = Field(nullable=False)
    body: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, nullable=False, index=True)


class CallbackEndpoint(SQLModel, table=True):
    """Where a distributor's ERP hears about its contracts, and the key events are signed with."""

    __tablename__ = "callback_endpoints"

    distributor_id: int = Field(foreign_key="distributors.id", primary_key=True)
    url: str = Field(sa_column=Column(String(500), nullable=False))
    secret: str = Field(sa_column=Column(String(200), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, nullable=False)


class CallbackEvent(WithId, table=True):
    """The ERP outbox: one signed POST to make, unique by the event it tells."""

    __tablename__ = "callback_events"

    distributor_id: int = Field(foreign_key="distributors.id", index=True, nullable=False)
    dedupe_key: str = Field(sa_column=Column(String(160), nullable=False, unique=True))
    event: str = Field(sa_column=Column(String(40), nullable=False))
    payload: str = Field(sa_column=Column(Text, nullable=False))  # the JSON body, as sent
    status: str = Field(sa_column=Column(String(10), nullable=False, index=True))
    attempts: int = Field(default=0, nullable=False)
    next_attempt_at: datetime = Field(default_factory=utcnow, nullable=False)
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow, nullable=False)
    sent_at: datetime | None = Field(default=None)


class MercadoPagoNotification(WithId, table=True):
    """A webhook from Mercado Pago, queued when it arrived and applied afterwards
    (billing/payments/notifications.py): a row survives a crash, a background task does not."""

    __tablename__ = "mp_notifications"

    topic: str = Field(sa_column=Column(String(40), nullable=False))
    resource_id: str = Field(sa_column=Column(String(64), nullable=False))
    received_at: datetime = Field(default_factory=utcnow, nullable=False)
    processed_at: datetime | None = Field(default=None, index=True)
    attempts: int = Field(default=0, nullable=False)
    last_error: str | None = Field(default=None, sa_column=Column(Text))


class DistributorUser(WithId, table=True):
    """A distributor's staff login to the portal (`cam2drive distributor add-user`).

    Apart from customers: staff act for the distributor over all its customers,
    and what they may see (never video without a grant) differs from a customer.
    """

    __tablename__ = "distributor_users"

    distributor_id: int = Field(foreign_key="distributors.id", index=True, nullable=False)
    email: str = Field(sa_column=Column(String(254), nullable=False, unique=True))
    name: str | None = Field(default=None, sa_column=Column(String(200)))
    locale: str | None = Field(default=None, sa_column=Column(String(5)))
    password_hash: str | None = Field(default=None, sa_column=Column(String(200)))
    created_at: datetime = Field(default_factory=utcnow, nullable=False)


class PrincipalToken(SQLModel):
    """A random token handed to a customer or a staff member (`kind`, `principal_id`);
    only its SHA-256 is kept, as the key."""

    token_hash: str = Field(sa_type=String(64), primary_key=True)
    kind: str = Field(sa_type=String(10), nullable=False)  # customer | staff
    principal_id: int = Field(nullable=False, index=True)


class WebSession(PrincipalToken, table=True):
    """A portal sign-in, kept on the server so it can be ended (sign-out, password reset)
    on every node; the cookie carries a random token whose SHA-256 is the key."""

    __tablename__ = "web_sessions"

    csrf: str = Field(sa_column=Column(String(64), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, nullable=False)
    expires_at: datetime = Field(nullable=False, index=True)


class PasswordLink(PrincipalToken, table=True):
    """A one-time link that sets a first password or resets one; only its hash is kept."""

    __tablename__ = "password_links"

    created_at: datetime = Field(default_factory=utcnow, nullable=False)
    expires_at: datetime = Field(nullable=False)
    used_at: datetime | None = Field(default=None)


class VideoGrant(SQLModel, table=True):
    """A customer's permission for their distributor's staff to watch their recordings."""

    __tablename__ = "video_grants"

    customer_id: int = Field(foreign_key="customers.id", primary_key=True)
    granted_at: datetime = Field(default_factory=utcnow, nullable=False)
