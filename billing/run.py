"""One billing pass: poll payments, walk the dunning ladder, delete what is due.

Safe to run twice, or again after a crash: Mercado Pago charges the
installments itself (cam2drive never initiates a recurring charge), polling
is idempotent, and every subscription's changes are committed on their own,
so a pass resumes where the last one stopped. `dry_run` reads everything,
changes nothing, and reports what a real pass would do.

Only subscriptions that can change are polled (`due`): pending ones, unpaid
ones, those whose paid period has ended (renewal due) and those with an
upgrade payment in process, each at most every `billing_recheck_minutes`
(pending ones always). An active subscription paid through a later date
has nothing to learn from Mercado Pago until then, so on most days a pass
is a single query, and a second pass the same hour does no work.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, or_
from sqlmodel import Session, select

from billing import audit
from billing.errors import Cam2DriveError
from billing.mercadopago import MercadoPago
from billing.models import Charge, Subscription, SubscriptionStatus, utcnow
from billing.overdue import DriveStore, block, delete_drive, due_step
from billing.payments import sync
from billing.settings import Settings

S = SubscriptionStatus


@dataclass
class RunReport:
    date: str
    dry_run: bool
    polled: list[int] = field(default_factory=list)
    unreachable: list[int] = field(default_factory=list)
    renewing_today: list[int] = field(default_factory=list)
    activated: list[int] = field(default_factory=list)
    past_due: list[int] = field(default_factory=list)
    blocked: list[int] = field(default_factory=list)
    deleted: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def due(session: Session, today: date, now: datetime, recheck: timedelta) -> list[int]:
    """Ids of the paid subscriptions a pass must poll now (see the module docstring)."""
    sub = Subscription
    stale = or_(sub.checked_at.is_(None), sub.checked_at <= now - recheck)  # type: ignore[union-attr, operator]
    upgrading = select(Charge.subscription_id).where(Charge.kind == "upgrade",
                                                     Charge.status == "pending")
    return list(session.exec(select(sub.id).where(
        sub.kind == "paid",
        or_(sub.status == S.pending.value,
            and_(sub.status.in_([S.past_due.value, S.blocked.value]), stale),  # type: ignore[union-attr]
            and_(sub.status == S.active.value, stale,
                 or_(sub.paid_through.is_(None), sub.paid_through <= today)),  # type: ignore[union-attr, operator]
            sub.id.in_(upgrading)))  # type: ignore[union-attr]
        .order_by(sub.id)))  # type: ignore[arg-type]


def billing_pass(engine: Engine, mp: MercadoPago, store: DriveStore, settings: Settings,
                 today: date, *, dry_run: bool = False,
                 now: datetime | None = None) -> RunReport:
    """`now` is when "recently polled" is judged from (tests travel in time with it)."""
    report = RunReport(date=today.isoformat(), dry_run=dry_run)
    now = now or utcnow()
    with Session(engine, expire_on_commit=False) as session:
        ids = due(session, today, now, timedelta(minutes=settings.billing_recheck_minutes))
        for sub_id in ids:
            sub = session.get(Subscription, sub_id)
            assert sub is not None
            before = sub.status
            reached = sync(session, mp, sub, today, settings.billing_day)
            report.polled.append(sub_id)  # type: ignore[arg-type]
            if reached:
                sub.checked_at = now
                session.add(sub)
            if not reached:
                # unknown is not unpaid: the ladder waits for a pass that can see
                report.unreachable.append(sub_id)  # type: ignore[arg-type]
                _finish(session, dry_run)
                continue
            if sub.status == S.active.value and sub.paid_through == today:
                report.renewing_today.append(sub_id)  # type: ignore[arg-type]
            if before != sub.status:
                {S.active.value: report.activated,
                 S.past_due.value: report.past_due}.get(sub.status, []).append(sub_id)  # type: ignore[arg-type]
            step = due_step(sub, today, settings.grace_days, settings.delete_after_days)
            if step == "block":
                block(session, sub, today, settings.grace_days)
                report.blocked.append(sub_id)  # type: ignore[arg-type]
            elif step == "delete":
                if dry_run:
                    report.deleted.append({"subscription": sub_id, "objects": None,
                                           "bytes": None})
                else:
                    try:
                        objects, size = delete_drive(session, sub, store)
                    except Cam2DriveError as exc:
                        # storage failed halfway: what was deleted stays deleted, the
                        # subscription stays blocked, and the next pass finishes the job
                        session.rollback()
                        audit.record(session, actor="billing", entity="subscription",
                                     entity_id=sub_id, action="deletion_interrupted",
                                     cause=str(exc))
                        session.commit()
                        report.errors.append({"subscription": sub_id, "error": str(exc)})
                        continue
                    report.deleted.append({"subscription": sub_id, "objects": objects,
                                           "bytes": size})
            _finish(session, dry_run)
    return report


def _finish(session: Session, dry_run: bool) -> None:
    if dry_run:
        session.rollback()
    else:
        session.commit()


def billing_cycle(engine: Engine, mp: MercadoPago, store: Any, settings: Settings,
                  today: date, *, dry_run: bool = False) -> dict[str, Any]:
    """What `billing run` and the scheduler do: the pass, then its invoices and notices.

    Invoicing and notifications come after the pass and cannot stop it: a
    PAC or CSD problem is reported and retried next time, never raised.
    """
    from billing.invoices import issue_pending
    from billing.notify import collect

    report = billing_pass(engine, mp, store, settings, today, dry_run=dry_run).as_dict()
    if dry_run:
        return report
    try:
        report["invoices"] = issue_pending(engine, store, settings).as_dict()
    except Cam2DriveError as exc:
        report["invoices"] = {"error": str(exc)}
    report["notifications_queued"] = collect(engine, settings).queued
    return report
