"""Distributors, customers, devices, plans and courtesy subscriptions.

Every function validates its input, writes inside the caller's session and
audits the change; the caller's `session_scope` commits it all or nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal, overload

from sqlmodel import Session, col, select

from billing.core import audit
from billing.core.credentials import (
    hash_device_secret,
    hash_password,
    new_device_secret,
    new_device_username,
    parse_public_key,
)
from billing.core.errors import AlreadyExists, InvalidField, InvalidInput, NotFound
from billing.core.models import (
    Customer,
    Device,
    DeviceKey,
    Distributor,
    DistributorUser,
    Drive,
    OnFull,
    Plan,
    Subscription,
    SubscriptionStatus,
    utcnow,
)
from billing.core.vocab import LOCALES, drive_prefix

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PLAN_CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,39}$")
_UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]I?B|B)?\s*$", re.IGNORECASE)


def parse_capacity(text: str) -> int:
    """`50GB` -> 50_000_000_000 (decimal units as sold; `GiB` for binary)."""
    match = _SIZE.match(text)
    if not match:
        raise InvalidInput("capacity %(text)r is not a size such as 50GB, 500MB or 1TiB", text=text)
    number = Decimal(match.group(1))
    value = int(number * _UNITS[(match.group(2) or "").upper()])
    if value <= 0:
        raise InvalidInput("capacity must be greater than zero")
    return value


def parse_price(text: str) -> Decimal:
    try:
        price = Decimal(text)
    except InvalidOperation as exc:
        raise InvalidInput("price %(text)r is not a number such as 199.00", text=text) from exc
    if not price.is_finite() or price < 0 or price != price.quantize(Decimal("0.01")):
        raise InvalidInput(
            "price %(text)r must be zero or more, with at most 2 decimals", text=text
        )
    return price.quantize(Decimal("0.01"))


def _email(value: str) -> str:
    value = value.strip().lower()
    if not _EMAIL.match(value) or len(value) > 254:
        raise InvalidInput("%(value)r is not an email address", value=value)
    return value


def normalise_email(value: str) -> str:
    """An email as stored (trimmed, lower case); InvalidInput if it is not one."""
    return _email(value)


def unused_login_email(session: Session, value: str) -> str:
    """The address of a new portal login, as stored; AlreadyExists if someone signs in with it.

    One address is one person, customer or distributor staff alike: the portal's
    sign-in takes an email and a password, so it must never have to guess which
    of two accounts an address means.
    """
    email = _email(value)
    if session.exec(select(Customer.id).where(Customer.email == email)).first():
        raise AlreadyExists("a customer with email %(email)s already exists", email=email)
    if session.exec(select(DistributorUser.id).where(DistributorUser.email == email)).first():
        raise AlreadyExists("email: %(email)s already signs in to the portal", email=email)
    return email


@overload
def _text(value: str | None, what: str, limit: int, *, required: Literal[True]) -> str: ...


@overload
def _text(value: str | None, what: str, limit: int, *, required: bool = False) -> str | None: ...


def _text(value: str | None, what: str, limit: int, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise InvalidInput("%(what)s is required", what=what)
        return None
    value = value.strip()
    if required and not value:
        raise InvalidInput("%(what)s must not be empty", what=what)
    if len(value) > limit:
        raise InvalidInput("%(what)s is longer than %(limit)s characters", what=what, limit=limit)
    if any(ord(c) < 32 for c in value):
        raise InvalidInput("%(what)s must not contain control characters", what=what)
    return value or None


def add_distributor(session: Session, *, name: str, email: str, actor: str) -> Distributor:
    email = _email(email)
    if session.exec(select(Distributor).where(Distributor.email == email)).first():
        raise AlreadyExists("a distributor with email %(email)s already exists", email=email)
    dist = Distributor(name=_text(name, "name", 200, required=True), email=email)
    audit.created(session, dist, "distributor", actor=actor, name=dist.name, email=email)
    return dist


def get_distributor(session: Session, distributor_id: int) -> Distributor:
    dist = session.get(Distributor, distributor_id)
    if dist is None:
        raise NotFound("distributor %(id)s does not exist", id=distributor_id)
    return dist


def add_customer(
    session: Session,
    *,
    distributor_id: int,
    email: str,
    name: str | None = None,
    phone: str | None = None,
    tax_id: str | None = None,
    actor: str,
) -> Customer:
    get_distributor(session, distributor_id)
    email = unused_login_email(session, email)
    cust = Customer(
        distributor_id=distributor_id,
        email=email,
        name=_text(name, "name", 200),
        phone=_text(phone, "phone", 40),
        tax_id=_text(tax_id, "tax id", 40),
    )
    audit.created(
        session, cust, "customer", actor=actor, distributor_id=distributor_id, email=email
    )
    return cust


@dataclass(frozen=True)
class PlanTerms:
    """A plan as `cam2drive plan add` takes it, before `add_plan` checks it."""

    code: str
    capacity: str  # a size such as 50GB
    price: str  # such as 199.00
    currency: str = "MXN"
    on_full: str = OnFull.rotate.value


def add_plan(session: Session, terms: PlanTerms, *, actor: str) -> Plan:
    code, on_full = terms.code.strip().upper(), terms.on_full
    if not _PLAN_CODE.match(code):
        raise InvalidInput(
            "plan code %(code)r must be letters, digits, '-' or '_' (e.g. AC-ST-50)", code=code
        )
    if session.exec(select(Plan).where(Plan.code == code)).first():
        raise AlreadyExists("plan %(code)s already exists", code=code)
    currency = terms.currency.strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise InvalidInput(
            "currency %(currency)r must be a 3-letter ISO code such as MXN", currency=currency
        )
    if on_full not in {p.value for p in OnFull}:
        raise InvalidInput("on-full must be 'rotate' or 'reject', not %(on_full)r", on_full=on_full)
    plan = Plan(
        code=code,
        capacity_bytes=parse_capacity(terms.capacity),
        price=parse_price(terms.price),
        currency=currency,
        on_full=on_full,
    )
    audit.created(
        session,
        plan,
        "plan",
        actor=actor,
        code=code,
        capacity_bytes=plan.capacity_bytes,
        price=plan.price,
        currency=currency,
        on_full=on_full,
    )
    return plan


@dataclass(frozen=True)
class NewDevice:
    device: Device
    drive: Drive
    password: str  # shown once, never stored


def add_device(
    session: Session, *, customer_id: int, name: str, serial: str | None = None, actor: str
) -> NewDevice:
    get_customer(session, customer_id)
    name = _text(name, "device name", 100, required=True)
    if "/" in name:
        raise InvalidInput("device name must not contain '/'")
    taken = session.exec(
        select(Device).where(Device.customer_id == customer_id, Device.name == name)
    ).first()
    if taken:
        raise AlreadyExists(
            "customer %(customer)s already has a device named %(name)r",
            customer=customer_id,
            name=name,
        )
    password = new_device_secret()
    username = new_device_username()
    while session.exec(select(Device).where(Device.username == username)).first():
        username = new_device_username()
    device = Device(
        customer_id=customer_id,
        name=name,
        serial=_text(serial, "serial", 100),
        username=username,
        secret_hash=hash_device_secret(password),
    )
    session.add(device)
    session.flush()
    assert device.id is not None  # flushed
    drive = Drive(device_id=device.id, prefix=drive_prefix(customer_id, device.id))
    session.add(drive)
    session.flush()
    audit.record(
        session,
        "device",
        device.id,
        "created",
        audit.OPERATOR,
        actor=actor,
        customer_id=customer_id,
        username=username,
        drive_prefix=drive.prefix,
    )
    return NewDevice(device=device, drive=drive, password=password)


def get_device(session: Session, ref: str | int) -> Device:
    """A device by id or by login username."""
    text = str(ref).strip()
    device = (
        session.get(Device, int(text))
        if text.isdigit()
        else session.exec(select(Device).where(Device.username == text)).first()
    )
    if device is None:
        raise NotFound("device %(ref)s does not exist", ref=text)
    return device


def set_device_timezone(
    session: Session, ref: str | int, zone: str | None, *, actor: str
) -> Device:
    """The time zone a recorder's clock keeps (its file names carry none), or None
    for the `device_timezone` setting; the portal's timeline reads names in it."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    device = get_device(session, ref)
    if zone is not None:
        zone = zone.strip()
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidField(
                "timezone",
                "unknown time zone %(zone)r (e.g. America/Mexico_City)",
                zone=zone[:64],
            ) from None
    device.timezone = zone
    session.add(device)
    audit.record(
        session, "device", device.id, "timezone_set", audit.OPERATOR, actor=actor, timezone=zone
    )
    return device


def reset_device_password(session: Session, ref: str | int, *, actor: str) -> tuple[Device, str]:
    device = get_device(session, ref)
    password = new_device_secret()
    device.secret_hash = hash_device_secret(password)
    session.add(device)
    audit.record(session, "device", device.id, "password_reset", audit.OPERATOR, actor=actor)
    return device, password


def get_plan(session: Session, code: str) -> Plan:
    plan = session.exec(select(Plan).where(Plan.code == code.strip().upper())).first()
    if plan is None:
        raise NotFound("plan %(code)s does not exist", code=code)
    return plan


def drive_of(session: Session, device_id: int) -> Drive:
    drive = session.exec(select(Drive).where(Drive.device_id == device_id)).first()
    if drive is None:
        raise NotFound("device %(device)s has no drive", device=device_id)
    return drive


def grant_subscription(
    session: Session, *, device_ref: str | int, plan_code: str, actor: str
) -> Subscription:
    """Activate a courtesy subscription by hand: the drive gets the plan's capacity.

    A device has at most one live subscription: granting replaces the plan of
    the current one (and re-activates it) instead of adding a second.
    """
    device = get_device(session, device_ref)
    plan = get_plan(session, plan_code)
    assert device.id is not None and plan.id is not None  # rows read from the database
    drive = drive_of(session, device.id)
    sub = current_subscription(session, device.id)
    now = utcnow()
    if sub is None:
        sub = Subscription(
            device_id=device.id,
            plan_id=plan.id,
            status=SubscriptionStatus.active.value,
            kind="courtesy",
        )
        session.add(sub)
        session.flush()
        action, before = "granted", None
    else:
        before = sub.status
        sub.plan_id, sub.status, sub.updated_at = plan.id, SubscriptionStatus.active.value, now
        session.add(sub)
        action = "regranted"
    drive.capacity_bytes = plan.capacity_bytes
    session.add(drive)
    audit.subscription(
        session,
        sub.id,
        action,
        "courtesy grant by operator",
        actor=actor,
        device_id=device.id,
        plan=plan.code,
        status_before=before,
        status_after=sub.status,
    )
    return sub


def current_subscription(session: Session, device_id: int) -> Subscription | None:
    """The device's newest subscription that has not been deleted."""
    return session.exec(
        select(Subscription)
        .where(
            Subscription.device_id == device_id,
            Subscription.status != SubscriptionStatus.deleted.value,
        )
        .order_by(col(Subscription.id).desc())
    ).first()


MIN_PASSWORD = 10


def get_customer(session: Session, ref: str | int) -> Customer:
    """A customer by id or by email."""
    text = str(ref).strip()
    cust = (
        session.get(Customer, int(text))
        if text.isdigit()
        else session.exec(select(Customer).where(Customer.email == text.lower())).first()
    )
    if cust is None:
        raise NotFound("customer %(ref)s does not exist", ref=text)
    return cust


def check_new_password(password: str) -> str:
    """The one rule for a password a person chooses (customers and distributor staff)."""
    if len(password) < MIN_PASSWORD:
        raise InvalidField("password", "must have at least %(min)s characters", min=MIN_PASSWORD)
    if len(password) > 1024:
        raise InvalidField("password", "must have at most 1024 characters")
    if any(ord(c) < 32 for c in password):
        raise InvalidField("password", "must not contain control characters")
    return password


def set_customer_password(
    session: Session, ref: str | int, password: str, *, actor: str
) -> Customer:
    """The password an end customer uses to view recordings (email + password)."""
    cust = get_customer(session, ref)
    cust.password_hash = hash_password(check_new_password(password))
    session.add(cust)
    audit.record(session, "customer", cust.id, "password_set", "viewer password set", actor=actor)
    return cust


def add_device_key(session: Session, ref: str | int, key_text: str, *, actor: str) -> DeviceKey:
    device = get_device(session, ref)
    assert device.id is not None  # read from the database
    public = parse_public_key(key_text)
    fingerprint = public.fingerprint
    if session.exec(
        select(DeviceKey).where(
            DeviceKey.device_id == device.id, DeviceKey.fingerprint == fingerprint
        )
    ).first():
        raise AlreadyExists(
            "device %(device)s already has key %(fingerprint)s",
            device=device.id,
            fingerprint=fingerprint,
        )
    key = DeviceKey(device_id=device.id, **public._asdict())
    session.add(key)
    session.flush()
    audit.record(
        session,
        "device",
        device.id,
        "key_added",
        audit.OPERATOR,
        actor=actor,
        fingerprint=fingerprint,
    )
    return key


def device_keys(session: Session, ref: str | int) -> list[DeviceKey]:
    device = get_device(session, ref)
    return list(
        session.exec(
            select(DeviceKey).where(DeviceKey.device_id == device.id).order_by(col(DeviceKey.id))
        )
    )


def remove_device_key(session: Session, ref: str | int, key_ref: str, *, actor: str) -> DeviceKey:
    """Remove a key by its id or its SHA256 fingerprint."""
    for key in device_keys(session, ref):
        if key_ref in (str(key.id), key.fingerprint):
            session.delete(key)
            audit.record(
                session,
                "device",
                key.device_id,
                "key_removed",
                audit.OPERATOR,
                actor=actor,
                fingerprint=key.fingerprint,
            )
            return key
    raise NotFound("device %(device)s has no key %(key)s", device=ref, key=key_ref)


_REGIME, _USE, _POSTAL = (
    re.compile(r"^\d{3}$"),
    re.compile(r"^[A-Z]{1,2}\d{2}$"),
    re.compile(r"^\d{5}$"),
)


def set_customer_fiscal(
    session: Session,
    ref: str | int,
    *,
    actor: str,
    rfc: str | None = None,
    name: str | None = None,
    regime: str | None = None,
    cfdi_use: str | None = None,
    postal_code: str | None = None,
    locale: str | None = None,
) -> Customer:
    """The receiver data of the customer's CFDI invoices, and the language of their email.

    Everything is checked before anything is set, against the SAT's catalogues
    (billing/invoicing/catalogs.py): a receiver the PAC would reject is refused
    here, in one line, instead of failing on every billing pass.
    """
    from satcfdi.models.rfc import RFC

    from billing.invoicing import catalogs

    cust = get_customer(session, ref)
    if rfc is not None:
        rfc = rfc.strip().upper()
        try:
            valid = bool(catalogs.RFC_PATTERN.match(rfc)) and RFC(rfc).is_valid()
        except Exception:
            valid = False
        if not valid:
            raise InvalidInput(
                "%(rfc)r is not a valid RFC (13 characters for a persona física, "
                "12 for a persona moral)",
                rfc=rfc,
            )
        if rfc in catalogs.GENERIC_RFCS:
            raise InvalidInput(
                "%(rfc)s is the SAT's generic RFC: leave the RFC unset instead", rfc=rfc
            )
    if name is not None:
        name = _text(name, "name", 200, required=True)
    checked: dict[str, str] = {}
    for value, pattern, wrong, attr in (
        (regime, _REGIME, "%(value)r is not a régimen fiscal (e.g. 612)", "tax_regime"),
        (cfdi_use, _USE, "%(value)r is not a uso CFDI (e.g. G03)", "cfdi_use"),
        (
            postal_code,
            catalogs.POSTAL_PATTERN,
            "%(value)r is not a postal code (5 digits)",
            "postal_code",
        ),
    ):
        if value is not None:
            value = value.strip().upper()
            if not pattern.match(value):
                raise InvalidInput(wrong, value=value)
            checked[attr] = value
    if locale is not None and locale not in LOCALES:
        raise InvalidInput("locale must be one of %(locales)s", locales=", ".join(LOCALES))
    new_rfc = rfc or cust.tax_id
    new_regime = checked.get("tax_regime", cust.tax_regime)
    new_use = checked.get("cfdi_use", cust.cfdi_use)
    if new_rfc and new_regime:
        if new_use is None or (
            "cfdi_use" not in checked and catalogs.receiver_problem(new_rfc, new_regime, new_use)
        ):
            # no uso named (now or before a régimen change): the SAT's usual one
            if catalogs.receiver_problem(new_rfc, new_regime, "S01") is None:
                new_use = catalogs.default_use(new_rfc, new_regime)
        catalogs.check_receiver(new_rfc, new_regime, new_use or "S01")
    if rfc is not None:
        cust.tax_id = rfc
    if name is not None:
        cust.name = name
    for attr, value in checked.items():
        setattr(cust, attr, value)
    if new_use is not None:
        cust.cfdi_use = new_use
    if locale is not None:
        cust.locale = locale
    session.add(cust)
    audit.record(
        session,
        "customer",
        cust.id,
        "fiscal_data_set",
        audit.OPERATOR,
        actor=actor,
        rfc=cust.tax_id,
        regime=cust.tax_regime,
        use=cust.cfdi_use,
        postal_code=cust.postal_code,
        locale=cust.locale,
    )
    return cust
