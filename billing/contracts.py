"""ERP contracts: what an ISP's HubSoft, MK or IXC provisions, blocks and cancels.

A contract is the ERP's id for one package on one subscriber's service
(seeds 001 and 002). It makes a customer (or reuses theirs, by email), one
recorder with its drive, and a subscription of kind `isp`: billed to the
ISP in its monthly statement (billing/statement.py), never charged through
Mercado Pago, and active from the first PUT. Its status *is* that
subscription's status, so the gateway's upload and viewing rules
(billing/entitlement.py, billing/core/vocab.py) read one column whoever
changed it:

| status          | recording | viewing | drive |
|-----------------|-----------|---------|-------|
| active          | yes       | yes     | kept  |
| blocked_partial | yes       | refused | kept  |
| blocked_total   | refused   | refused | kept  |
| suspended       | refused   | refused | kept  |
| cancelled       | refused   | refused | deleted after `contract_retention_days` |

Every action is audited on the contract (entity `contract`), with its
source as the actor (`api:<key id>`, `cli`, `billing`): that is the
contract's history. Functions write in the caller's session; the caller
commits.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Select
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from billing import callbacks, catalog, password_links
from billing.core import audit
from billing.core.credentials import verify
from billing.core.errors import AlreadyExists, Conflict, InvalidField, InvalidInput, NotFound
from billing.core.models import (
    AuditEvent,
    Contract,
    ContractSpan,
    Customer,
    Device,
    DistributorPlan,
    Drive,
    Plan,
    Subscription,
    SubscriptionStatus,
    utcnow,
)
from billing.core.settings import Settings
from billing.core.vocab import BILLED_CONTRACT_STATUSES
from billing.documents import normalise_document
from billing.dunning import DrivePurger
from billing.subscriptions.lifecycle import transition

S = SubscriptionStatus
KIND = "isp"
_EXTERNAL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_PHONE = re.compile(r"^\+?[0-9 ()-]{8,25}$")
ENDED = {S.deleted.value}


@dataclass(frozen=True)
class CustomerInput:
    name: str
    email: str
    phone: str
    document: str
    password: str | None = None


@dataclass(frozen=True)
class ContractView:
    """A contract as an ERP sees it (GET /contracts/{id}, and every verb's answer)."""

    contract_id: str
    status: str
    label: str
    next_label: str | None
    customer_id: int
    email: str
    username: str
    capacity_bytes: int
    committed_bytes: int
    last_upload_at: datetime | None
    delete_on: date | None


@dataclass(frozen=True)
class PutResult:
    created: bool
    view: ContractView
    device_password: str | None  # only when created: shown once


# --- input -----------------------------------------------------------------------


def check_contract_id(value: str) -> str:
    if not _EXTERNAL_ID.match(value):
        raise InvalidField("contract_id", "must be 1-64 letters, digits, '.', '_', ':' or '-'")
    return value


def _customer_fields(c: CustomerInput) -> CustomerInput:
    """Every customer field checked, each error naming its field; nothing written yet."""
    name = (c.name or "").strip()
    if not name or len(name) > 200 or any(ord(ch) < 32 for ch in name):
        raise InvalidField("customer.name", "is required (at most 200 printable characters)")
    try:
        email = catalog.normalise_email(c.email or "")
    except InvalidInput:
        raise InvalidField("customer.email", "is not an email address") from None
    phone = (c.phone or "").strip()
    if not phone:
        raise InvalidField("customer.phone", "is required (the ERP sends it with the package)")
    if not _PHONE.match(phone) or sum(ch.isdigit() for ch in phone) < 8:
        raise InvalidField("customer.phone", "is not a phone number")
    document = normalise_document(c.document or "")
    password = c.password
    if password is not None:
        if len(password) < catalog.MIN_PASSWORD or any(ord(ch) < 32 for ch in password):
            raise InvalidField(
                "customer.password",
                "must have at least %(min)s printable characters",
                min=catalog.MIN_PASSWORD,
            )
    return CustomerInput(name, email, phone, document, password)


def _product(session: Session, distributor_id: int, label: str) -> tuple[Plan, DistributorPlan]:
    row = session.exec(
        select(Plan, DistributorPlan)
        .join(DistributorPlan, col(DistributorPlan.plan_id) == Plan.id)
        .where(DistributorPlan.distributor_id == distributor_id, Plan.code == label.strip().upper())
    ).first()
    if row is None:
        raise InvalidField(
            "label", "%(label)r is not one of this distributor's products", label=label
        )
    return row[0], row[1]


# --- products and wholesale prices ------------------------------------------------


def set_wholesale_price(
    session: Session, distributor_id: int, plan_code: str, price: str, *, actor: str
) -> DistributorPlan:
    """Let a distributor sell a plan (a product its ERP syncs) at this monthly wholesale price."""
    catalog.get_distributor(session, distributor_id)
    plan = catalog.get_plan(session, plan_code)
    amount = catalog.parse_price(price)
    row = session.exec(
        select(DistributorPlan).where(
            DistributorPlan.distributor_id == distributor_id, DistributorPlan.plan_id == plan.id
        )
    ).first()
    if row is None:
        row = DistributorPlan(
            distributor_id=distributor_id,
            plan_id=plan.id,  # type: ignore[arg-type]
            wholesale_price=amount,
            currency=plan.currency,
        )
    before = row.wholesale_price if row.id else None
    row.wholesale_price = amount
    session.add(row)
    session.flush()
    audit.record(
        session,
        "distributor",
        distributor_id,
        "wholesale_price_set",
        audit.OPERATOR,
        actor=actor,
        plan=plan.code,
        price=amount,
        before=before,
    )
    return row


def products(session: Session, distributor_id: int) -> Sequence[tuple[Plan, DistributorPlan]]:
    """The plans a distributor sells, with its wholesale price: what the ERP syncs."""
    return session.exec(
        select(Plan, DistributorPlan)
        .join(DistributorPlan, col(DistributorPlan.plan_id) == Plan.id)
        .where(DistributorPlan.distributor_id == distributor_id)
        .order_by(Plan.code)
    ).all()


# --- the contract ------------------------------------------------------------------


def _find(session: Session, distributor_id: int, contract_id: str) -> Contract | None:
    return session.exec(
        select(Contract).where(
            Contract.distributor_id == distributor_id, Contract.external_id == contract_id
        )
    ).first()


def get(session: Session, distributor_id: int, contract_id: str) -> Contract:
    """The distributor's contract; another distributor's is NotFound, exactly like none."""
    row = _find(session, distributor_id, contract_id)
    if row is None:
        raise NotFound("contract %(contract)s does not exist", contract=contract_id)
    return row


_plan, _next = aliased(Plan, name="plan"), aliased(Plan, name="next_plan")
#: a contract's status, plans, customer, recorder and drive usage: one SELECT with joins
_VIEW: Select[*tuple[Any, ...]] = (
    sa_select(
        col(Contract.external_id),
        col(Subscription.status),
        col(_plan.code).label("label"),
        col(_next.code).label("next_label"),
        col(Customer.id).label("customer_id"),
        col(Customer.email),
        col(Device.username),
        col(Drive.capacity_bytes),
        col(Drive.committed_bytes),
        col(Drive.last_upload_at),
        col(Contract.delete_on),
    )
    .select_from(Contract)
    .join(Subscription, col(Subscription.id) == Contract.subscription_id)
    .join(_plan, col(_plan.id) == Subscription.plan_id)
    .outerjoin(_next, col(_next.id) == Subscription.next_plan_id)
    .join(Customer, col(Customer.id) == Contract.customer_id)
    .join(Device, col(Device.id) == Contract.device_id)
    .join(Drive, col(Drive.device_id) == Contract.device_id)
)


def _as_view(row: Any) -> ContractView:
    return ContractView(
        contract_id=row.external_id,
        status=row.status,
        label=row.label,
        next_label=row.next_label,
        customer_id=row.customer_id,
        email=row.email,
        username=row.username,
        capacity_bytes=row.capacity_bytes,
        committed_bytes=row.committed_bytes,
        last_upload_at=row.last_upload_at,
        delete_on=row.delete_on,
    )


def view(session: Session, contract: Contract) -> ContractView:
    """The contract as its writer just left it (the SELECT sees the session's flushed changes)."""
    row = session.execute(_VIEW.where(col(Contract.id) == contract.id)).one()
    return _as_view(row)


def status(conn: Connection | Session, distributor_id: int, contract_id: str) -> ContractView:
    """GET /contracts/{id}: the view in one round trip, no ORM objects; NotFound like `get`."""
    row = conn.execute(
        _VIEW.where(
            col(Contract.distributor_id) == distributor_id,
            col(Contract.external_id) == contract_id,
        )
    ).first()
    if row is None:
        raise NotFound("contract %(contract)s does not exist", contract=contract_id)
    return _as_view(row)


def _record(
    session: Session, contract: Contract, action: str, cause: str, *, actor: str, **detail: Any
) -> None:
    audit.record(session, "contract", contract.id, action, cause, actor=actor, **detail)


def put(
    session: Session,
    *,
    distributor_id: int,
    contract_id: str,
    label: str,
    customer: CustomerInput,
    actor: str,
    today: date,
    settings: Settings | None = None,
) -> PutResult:
    """Create the contract (201: device password shown once) or bring it to this state (200).

    Everything is validated before anything is written, so bad input
    creates nothing. A new label is a plan change: larger at once, smaller
    at the next month if the drive's usage fits. A new customer the ERP
    sent no `customer.password` for is emailed a one-time link to choose
    their own (billing/password_links.py, the portal's rule); without
    `settings` (contracts made in bulk by tests) no link is sent.
    """
    check_contract_id(contract_id)
    fields = _customer_fields(customer)
    plan, product = _product(session, distributor_id, label)
    existing = _find(session, distributor_id, contract_id)
    if existing is not None:
        _update(session, existing, plan, fields, actor=actor, today=today)
        return PutResult(False, view(session, existing), None)
    cust = session.exec(select(Customer).where(Customer.email == fields.email)).first()
    if cust is not None and cust.distributor_id != distributor_id:
        raise AlreadyExists("customer.email: this email belongs to another provider's customer")
    if cust is None:
        cust = catalog.add_customer(
            session,
            distributor_id=distributor_id,
            email=fields.email,
            name=fields.name,
            phone=fields.phone,
            tax_id=fields.document,
            actor=actor,
        )
    else:
        _customer_update(session, cust, fields)
    if fields.password is not None:
        catalog.set_customer_password(session, cust.id, fields.password, actor=actor)  # type: ignore[arg-type]
    elif cust.password_hash is None and settings is not None:
        password_links.email_customer(session, settings, cust, first=True)
    new = catalog.add_device(
        session,
        customer_id=cust.id,  # type: ignore[arg-type]
        name=f"contract-{contract_id}",
        actor=actor,
    )
    sub = Subscription(
        device_id=new.device.id,  # type: ignore[arg-type]
        plan_id=plan.id,  # type: ignore[arg-type]
        status=S.active.value,
        kind=KIND,
        start_date=today,
    )
    session.add(sub)
    session.flush()
    new.drive.capacity_bytes = plan.capacity_bytes
    session.add(new.drive)
    contract = Contract(
        distributor_id=distributor_id,
        external_id=contract_id,
        customer_id=cust.id,  # type: ignore[arg-type]
        device_id=new.device.id,  # type: ignore[arg-type]
        subscription_id=sub.id,  # type: ignore[arg-type]
    )
    session.add(contract)
    session.flush()
    _open_span(session, contract, plan, product, today)
    _record(
        session,
        contract,
        "created",
        "contract provisioned by the ERP",
        actor=actor,
        status_after=S.active.value,
        label=plan.code,
        device=new.device.username,
    )
    callbacks.queue(
        session,
        distributor_id,
        "contract.activated",
        f"contract.activated:{contract.id}:{sub.id}",
        {"contract_id": contract_id, "label": plan.code, "device": new.device.username},
    )
    return PutResult(True, view(session, contract), new.password)


def _customer_update(session: Session, cust: Customer, fields: CustomerInput) -> None:
    changed = {}
    for attr, value in (
        ("name", fields.name),
        ("phone", fields.phone),
        ("tax_id", fields.document),
    ):
        if getattr(cust, attr) != value:
            changed[attr] = value
            setattr(cust, attr, value)
    if changed:
        session.add(cust)


def _update(
    session: Session,
    contract: Contract,
    plan: Plan,
    fields: CustomerInput,
    *,
    actor: str,
    today: date,
) -> None:
    cust = session.get(Customer, contract.customer_id)
    sub = session.get(Subscription, contract.subscription_id)
    assert cust is not None and sub is not None
    if fields.email != cust.email:
        taken = session.exec(select(Customer.id).where(Customer.email == fields.email)).first()
        if taken is not None:
            raise AlreadyExists("customer.email: this email is another customer's")
        cust.email = fields.email
        session.add(cust)
        _record(session, contract, "email_changed", "ERP update", actor=actor)
    _customer_update(session, cust, fields)
    if fields.password is not None and not (
        cust.password_hash and verify(cust.password_hash, fields.password)
    ):
        catalog.set_customer_password(session, cust.id, fields.password, actor=actor)  # type: ignore[arg-type]
    if plan.id == sub.plan_id:
        if sub.next_plan_id is not None:  # the ERP went back: the downgrade is off
            sub.next_plan_id, contract.next_plan_on = None, None
            session.add_all([sub, contract])
            _record(session, contract, "downgrade_cancelled", "ERP update", actor=actor)
        return
    if sub.status not in BILLED_CONTRACT_STATUSES:
        raise Conflict(
            "contract %(contract)s is %(status)s: reactivate it first",
            contract=contract.external_id,
            status=sub.status,
        )
    current = session.get(Plan, sub.plan_id)
    assert current is not None
    if plan.capacity_bytes > current.capacity_bytes:
        _change_plan(session, contract, sub, plan, today)
        _record(
            session,
            contract,
            "upgraded",
            f"{current.code} -> {plan.code}, at once",
            actor=actor,
            label=plan.code,
        )
        return
    if sub.next_plan_id == plan.id:
        return
    drive = catalog.drive_of(session, contract.device_id)
    used = drive.committed_bytes + drive.reserved_bytes
    if used > plan.capacity_bytes:
        raise InvalidField(
            "label",
            "the drive holds %(used)s bytes, more than %(plan)s's %(capacity)s",
            used=used,
            plan=plan.code,
            capacity=plan.capacity_bytes,
        )
    sub.next_plan_id = plan.id
    contract.next_plan_on = _next_month(today)
    session.add_all([sub, contract])
    _record(
        session,
        contract,
        "downgrade_scheduled",
        f"{current.code} -> {plan.code} on {contract.next_plan_on}",
        actor=actor,
        label=plan.code,
    )


def _next_month(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def _change_plan(
    session: Session, contract: Contract, sub: Subscription, plan: Plan, on: date
) -> None:
    product = session.exec(
        select(DistributorPlan).where(
            DistributorPlan.distributor_id == contract.distributor_id,
            DistributorPlan.plan_id == plan.id,
        )
    ).first()
    assert product is not None
    sub.plan_id, sub.next_plan_id, sub.updated_at = plan.id, None, utcnow()  # type: ignore[assignment]
    contract.next_plan_on = None
    drive = catalog.drive_of(session, contract.device_id)
    drive.capacity_bytes = plan.capacity_bytes
    session.add_all([sub, contract, drive])
    _close_span(session, contract, on)
    _open_span(session, contract, plan, product, on)


def _open_span(
    session: Session, contract: Contract, plan: Plan, product: DistributorPlan, on: date
) -> None:
    session.add(
        ContractSpan(
            contract_id=contract.id,  # type: ignore[arg-type]
            plan_id=plan.id,  # type: ignore[arg-type]
            price=product.wholesale_price,
            currency=product.currency,
            start_on=on,
        )
    )


def _close_span(session: Session, contract: Contract, on: date) -> None:
    for span in session.exec(
        select(ContractSpan).where(
            ContractSpan.contract_id == contract.id, col(ContractSpan.end_on).is_(None)
        )
    ):
        span.end_on = max(on, span.start_on)
        session.add(span)


# --- actions -----------------------------------------------------------------------

_BLOCKABLE = frozenset({S.active.value, S.blocked_partial.value, S.blocked_total.value})
_SUSPENDABLE = _BLOCKABLE | {S.suspended.value}
_REOPENABLE = _SUSPENDABLE | {S.cancelled.value}  # reactivate and cancel start from any

#: verb -> (statuses it may start from, status it leads to)
_ACTIONS: dict[str, tuple[frozenset[str], str | None]] = {
    "block_partial": (_BLOCKABLE, S.blocked_partial.value),
    "block_total": (_BLOCKABLE, S.blocked_total.value),
    "unblock": (_BLOCKABLE, S.active.value),
    "suspend": (_SUSPENDABLE, S.suspended.value),
    "reactivate": (_REOPENABLE, S.active.value),
    "cancel": (_REOPENABLE, S.cancelled.value),
}
VERBS = tuple(_ACTIONS)
_CANNOT = "contract %(contract)s is %(status)s: cannot %(verb)s"
_CANNOT_ENDED = "contract %(contract)s is %(status)s: cannot %(verb)s; the drive was deleted"


def act(
    session: Session,
    settings: Settings,
    contract: Contract,
    verb: str,
    *,
    actor: str,
    today: date,
) -> ContractView:
    """Apply a verb; repeating one (block twice, cancel twice) changes nothing."""
    sources, target = _ACTIONS[verb]
    sub = session.get(Subscription, contract.subscription_id)
    assert sub is not None and target is not None
    if sub.status not in sources:
        raise Conflict(
            _CANNOT_ENDED if sub.status in ENDED else _CANNOT,
            contract=contract.external_id,
            status=sub.status,
            verb=verb,
        )
    if sub.status == target:
        return view(session, contract)
    before = sub.status
    cause = f"{verb.replace('_', ' ')} by the ERP" if actor.startswith("api:") else verb
    transition(session, sub, target, actor=actor, cause=cause, contract=contract.external_id)
    if target == S.cancelled.value:
        contract.cancelled_at = utcnow()
        contract.delete_on = today + timedelta(days=settings.contract_retention_days)
        _close_span(session, contract, today)
        callbacks.queue(
            session,
            contract.distributor_id,
            "drive.deletion_scheduled",
            f"drive.deletion_scheduled:{contract.id}:{contract.cancelled_at.isoformat()}",
            {"contract_id": contract.external_id, "delete_on": contract.delete_on.isoformat()},
        )
    elif before == S.cancelled.value:
        contract.cancelled_at, contract.delete_on = None, None
        plan = session.get(Plan, sub.plan_id)
        product = session.exec(
            select(DistributorPlan).where(
                DistributorPlan.distributor_id == contract.distributor_id,
                DistributorPlan.plan_id == sub.plan_id,
            )
        ).first()
        assert plan is not None and product is not None
        _open_span(session, contract, plan, product, today)
    session.add(contract)
    _record(
        session,
        contract,
        verb,
        cause,
        actor=actor,
        status_before=before,
        status_after=target,
        delete_on=contract.delete_on,
    )
    return view(session, contract)


def history(session: Session, contract: Contract) -> list[dict[str, Any]]:
    """Every action on the contract, oldest first: when, by whom (source), what it did."""
    import json

    rows = session.exec(
        select(AuditEvent)
        .where(AuditEvent.entity == "contract", AuditEvent.entity_id == str(contract.id))
        .order_by(col(AuditEvent.id))
    ).all()
    out = []
    for row in rows:
        detail = json.loads(row.detail) if row.detail else {}
        out.append(
            {
                "at": row.at,
                "action": row.action,
                "source": _source(row.actor),
                "effect": _effect(row.action, detail),
                "status_before": detail.get("status_before"),
                "status_after": detail.get("status_after"),
            }
        )
    return out


def _source(actor: str) -> str:
    if actor.startswith("api:"):
        return f"api_key {actor[4:]}"
    return actor


def _effect(action: str, detail: dict[str, Any]) -> str:
    if action == "drive_deleted":
        return f"drive deleted: {detail.get('objects')} objects, {detail.get('bytes')} bytes"
    if "status_after" in detail and detail.get("status_before"):
        text = f"status {detail['status_before']} -> {detail['status_after']}"
        if detail.get("delete_on"):
            text += f"; drive deleted on {detail['delete_on']} unless reactivated"
        return text
    if action == "created":
        return f"active on {detail.get('label')}; device {detail.get('device')}"
    if action in ("upgraded", "downgrade_scheduled"):
        return f"plan {detail.get('label')}"
    return action.replace("_", " ")


# --- the sweep (scheduler) ------------------------------------------------------------


@dataclass
class SweepReport:
    downgraded: list[str]
    deleted: list[dict[str, Any]]
    kept: list[str]


def sweep(session: Session, purger: DrivePurger, today: date) -> SweepReport:
    """Apply downgrades that are due and delete cancelled contracts' drives past retention.

    The deletion is the dunning ladder's (audited with what it removed,
    status `deleted` last, S3 first so a re-run after a crash finds less);
    a contract reactivated before its day is no longer `cancelled` and is
    never touched. The caller commits after each contract.
    """
    report = SweepReport([], [], [])
    for contract in session.exec(
        select(Contract).where(
            col(Contract.next_plan_on).is_not(None), col(Contract.next_plan_on) <= today
        )
    ).all():
        sub = session.get(Subscription, contract.subscription_id)
        assert sub is not None
        plan = session.get(Plan, sub.next_plan_id) if sub.next_plan_id else None
        on = contract.next_plan_on
        assert on is not None
        drive = catalog.drive_of(session, contract.device_id)
        if plan is None or drive.committed_bytes + drive.reserved_bytes > plan.capacity_bytes:
            sub.next_plan_id, contract.next_plan_on = None, None
            session.add_all([sub, contract])
            _record(
                session,
                contract,
                "downgrade_dropped",
                "the drive no longer fits the smaller plan",
                actor="billing",
            )
            report.kept.append(contract.external_id)
            continue
        old = session.get(Plan, sub.plan_id)
        _change_plan(session, contract, sub, plan, on)
        _record(
            session,
            contract,
            "downgraded",
            f"{old.code if old else '?'} -> {plan.code} on {on}",
            actor="billing",
            label=plan.code,
        )
        report.downgraded.append(contract.external_id)
        session.commit()
    due = session.exec(
        select(Contract, Subscription)
        .join(Subscription, col(Subscription.id) == Contract.subscription_id)
        .where(
            Subscription.status == S.cancelled.value,
            col(Contract.delete_on).is_not(None),
            Contract.delete_on <= today,  # type: ignore[operator]
        )
    ).all()
    for contract, sub in due:
        drive = session.exec(select(Drive).where(Drive.device_id == contract.device_id)).one()
        objects, size, rows = purger.purge(session, drive)
        audit.record(
            session,
            "drive",
            drive.id,
            "deleted",
            f"contract {contract.external_id} cancelled past its retention",
            actor="billing",
            objects=objects,
            bytes=size,
            index_rows=rows,
            prefix=drive.prefix,
        )
        transition(
            session,
            sub,
            S.deleted.value,
            actor="billing",
            cause="drive deleted after the cancelled contract's retention",
        )
        _record(
            session,
            contract,
            "drive_deleted",
            "cancelled past its retention",
            actor="billing",
            status_before=S.cancelled.value,
            status_after=S.deleted.value,
            objects=objects,
            bytes=size,
        )
        callbacks.queue(
            session,
            contract.distributor_id,
            "drive.deleted",
            f"drive.deleted:{contract.id}",
            {"contract_id": contract.external_id, "objects": objects, "bytes": size},
        )
        session.commit()
        report.deleted.append({"contract_id": contract.external_id, "objects": objects})
    return report


def contract_of_device(session: Session, device_id: int) -> Contract | None:
    return session.exec(select(Contract).where(Contract.device_id == device_id)).first()
