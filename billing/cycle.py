"""One billing pass: poll payments, walk the dunning ladder, delete what is due.

Safe to run twice, or again after a crash: Mercado Pago charges the
installments itself (cam2drive never initiates a recurring charge), polling
is idempotent, and changes are committed a chunk of subscriptions at a time
(and before any drive deletion), so a pass resumes where the last one
stopped. `dry_run` reads everything, changes nothing, and reports what a
real pass would do.

Only subscriptions that can change are polled (`due`): pending ones, unpaid
ones, those whose paid period has ended (renewal due) and those with an
upgrade payment in process, each at most every `billing_recheck_minutes`
(pending ones always). An active subscription paid through a later date
has nothing to learn from Mercado Pago until then, so on most days a pass
is a single query, and a second pass the same hour does no work.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, and_, or_, true
from sqlmodel import Session, col, select

from billing.catalog import current_subscription
from billing.core import audit, staging
from billing.core.errors import Cam2DriveError
from billing.core.models import Charge, Drive, Plan, Subscription, SubscriptionStatus, utcnow
from billing.core.settings import Settings
from billing.dunning import DrivePurger, block, delete_drive, due_step
from billing.payments.accounts import OneOrByCurrency
from billing.payments.checkout import ONE_OFF
from billing.payments.mercadopago import MercadoPago, MercadoPagoFailed
from billing.payments.notifications import drain
from billing.payments.outbox import push_amount
from billing.payments.sync import Feed, Snapshot, feed, sync, try_fetch

if TYPE_CHECKING:
    from billing.invoicing.parts import Invoicing

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
    # plan changes Mercado Pago has not taken yet (the amount outbox): retried next pass
    retrying: list[dict[str, Any]] = field(default_factory=list)
    # Mercado Pago's payment search, read when many are due: payments read, or the error
    feed: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def due(
    session: Session,
    today: date,
    now: datetime,
    recheck: timedelta,
    currency: str | None = None,
) -> list[int]:
    """Ids of the paid subscriptions a pass must poll now (see the module docstring);
    with `currency`, only those whose plan charges in it (one Mercado Pago account's)."""
    sub = Subscription
    in_currency = (
        col(sub.plan_id).in_(select(Plan.id).where(Plan.currency == currency))
        if currency
        else true()
    )
    stale = or_(col(sub.checked_at).is_(None), col(sub.checked_at) <= now - recheck)
    upgrading = select(Charge.subscription_id).where(  # a pay-now or upgrade link waiting
        col(Charge.kind).in_(ONE_OFF), Charge.status == "pending"
    )
    return list(
        session.exec(
            select(sub.id)  # type: ignore[arg-type]  # SQLModel types keys int | None
            .where(
                sub.kind == "paid",
                in_currency,
                or_(
                    col(sub.status) == S.pending.value,
                    and_(col(sub.status).in_([S.past_due.value, S.blocked.value]), stale),
                    and_(
                        col(sub.status) == S.active.value,
                        stale,
                        or_(col(sub.paid_through).is_(None), col(sub.paid_through) <= today),
                    ),
                    col(sub.id).in_(upgrading),
                    col(sub.mp_amount_pending).is_not(None),
                    # cancelled by the customer: its retention ends some day
                    and_(
                        col(sub.status) == S.cancelled.value,
                        col(sub.blocked_at).is_not(None),
                        stale,
                    ),
                ),
            )
            .order_by(col(sub.id))
        )
    )


CHUNK = 500


def billing_pass(
    engine: Engine,
    mp: MercadoPago,
    purger: DrivePurger,
    settings: Settings,
    today: date,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    currency: str | None = None,
) -> RunReport:
    """`now` is when "recently polled" is judged from (tests travel in time with it).
    With `currency`, the pass is `mp`'s account's: only plans in that currency.

    With many due (a billing day), Mercado Pago's payment search is read
    first: a call per thousand payments tells most subscriptions' news, and
    only those it leaves open are polled one by one. Due subscriptions go in
    chunks: one query loads a chunk with its ledger rows, Mercado Pago is
    asked about those the feed did not settle from a few threads (the calls
    are I/O; applying them is not), and the chunk's changes are committed
    together. A crash loses at most the chunk in hand, which the
    next pass redoes: applying Mercado Pago's answers is idempotent.
    """
    report = RunReport(date=today.isoformat(), dry_run=dry_run)
    now = now or utcnow()
    if not dry_run and currency is None:  # (per account: billing_cycle drains once for all)
        # webhooks the HTTP service queued but could not apply yet
        drain(engine, mp, today, settings.billing_day, settings.pending_expiry_days)
    with (
        Session(engine, expire_on_commit=False) as session,
        ThreadPoolExecutor(max_workers=settings.billing_concurrency) as pool,
    ):
        staging.enable(session)  # the ledger and audit rows of a chunk: one insert each
        ids = due(
            session, today, now, timedelta(minutes=settings.billing_recheck_minutes), currency
        )
        # held for the whole pass: the identity map is weak, and without a strong
        # reference each subscription's plan lookup would be a query (and a flush)
        plans = list(session.exec(select(Plan)))
        _finish(session, dry_run)
        known: Feed | None = None
        if len(ids) >= settings.billing_feed_min:
            try:
                known = feed(mp, today)
                report.feed = {"subscriptions": len(known)}
            except MercadoPagoFailed as exc:
                report.feed = {"error": str(exc)}  # each one is polled instead
        # The feed and the due ids live for the whole pass and hold no cycles:
        # without this every full collection walks them again (on 100 000
        # renewals, 7.7 of 33 s went to the collector).
        gc.freeze()
        try:
            _chunks(session, pool, mp, purger, settings, today, now, ids, known, report, dry_run)
        finally:
            gc.unfreeze()
    del plans
    return report


def _chunks(
    session: Session,
    pool: ThreadPoolExecutor,
    mp: MercadoPago,
    purger: DrivePurger,
    settings: Settings,
    today: date,
    now: datetime,
    ids: list[int],
    known: Feed | None,
    report: RunReport,
    dry_run: bool,
) -> None:
    """The pass proper, a chunk of due subscriptions at a time."""
    for lo in range(0, len(ids), CHUNK):
        chunk = ids[lo : lo + CHUNK]
        subs = list(
            session.exec(
                select(Subscription)
                .where(col(Subscription.id).in_(chunk))
                .order_by(col(Subscription.id))
            )
        )
        ledger: dict[int | None, dict[str, Charge]] = {sub.id: {} for sub in subs}
        for charge in session.exec(select(Charge).where(col(Charge.subscription_id).in_(chunk))):
            ledger[charge.subscription_id][charge.idempotency_key] = charge
        # pending ones activate: their drives in one query, not one each
        drives = {
            d.device_id: d
            for d in session.exec(
                select(Drive).where(
                    col(Drive.device_id).in_(
                        [s.device_id for s in subs if s.status == S.pending.value]
                    )
                )
            )
        }
        upgrading = set(
            session.exec(
                select(Charge.subscription_id).where(
                    col(Charge.subscription_id).in_(chunk),
                    col(Charge.kind).in_(ONE_OFF),
                    Charge.status == "pending",
                )
            )
        )
        snapshots = list(
            pool.map(lambda sub: try_fetch(mp, sub, today, settings.billing_day, known), subs)
        )
        # no autoflush: the chunk's inserts and updates go out together at commit,
        # in a few multi-row statements instead of several per subscription
        with session.no_autoflush:
            for sub, snapshot in zip(subs, snapshots, strict=True):
                _one(
                    session,
                    mp,
                    purger,
                    settings,
                    today,
                    now,
                    sub,
                    snapshot,
                    ledger[sub.id],
                    sub.id in upgrading,
                    report,
                    dry_run,
                    drives.get(sub.device_id),
                )
        _finish(session, dry_run)


def _one(
    session: Session,
    mp: MercadoPago,
    purger: DrivePurger,
    settings: Settings,
    today: date,
    now: datetime,
    sub: Subscription,
    snapshot: Snapshot | BaseException,
    known: dict[str, Charge],
    upgrading: bool,
    report: RunReport,
    dry_run: bool,
    drive: Drive | None = None,
) -> None:
    """One subscription of a chunk: what Mercado Pago said, then the ladder."""
    assert sub.id is not None  # read from the database
    sub_id = sub.id
    before = sub.status
    reached = sync(
        session,
        mp,
        sub,
        today,
        settings.billing_day,
        snapshot,
        known,
        upgrading,
        drive,
        pending_expiry_days=settings.pending_expiry_days,
    )
    report.polled.append(sub_id)
    if not reached:
        # unknown is not unpaid: the ladder waits for a pass that can see
        report.unreachable.append(sub_id)
        return
    sub.checked_at = now
    session.add(sub)
    if sub.mp_amount_pending is not None and not dry_run:
        why = push_amount(session, mp, sub, actor="billing")
        if why is not None:
            report.retrying.append({"subscription": sub_id, "error": why})
    if sub.status == S.active.value and sub.paid_through == today:
        report.renewing_today.append(sub_id)
    if before != sub.status:
        {S.active.value: report.activated, S.past_due.value: report.past_due}.get(
            sub.status, []
        ).append(sub_id)
    step = due_step(sub, today, settings)
    if step == "block":
        block(session, sub, today, settings.grace_days)
        report.blocked.append(sub_id)
    elif step == "delete":
        if sub.status == S.cancelled.value:
            newest = current_subscription(session, sub.device_id)
            if newest is not None and newest.id != sub.id:
                return  # the device subscribed again: the drive is the new one's
        if dry_run:
            report.deleted.append({"subscription": sub_id, "objects": None, "bytes": None})
            return
        if sub.mp_preapproval_id:
            # never delete what Mercado Pago may still charge for: cancel, confirm
            try:
                mp.ensure_cancelled(sub.mp_preapproval_id)
            except MercadoPagoFailed as exc:
                sub.checked_at = None  # due again next pass
                session.add(sub)
                audit.subscription(session, sub_id, "deletion_postponed", str(exc), actor="billing")
                report.unreachable.append(sub_id)
                return
        _finish(session, dry_run)  # the chunk so far is safe before storage is touched
        try:
            objects, size = delete_drive(session, sub, purger)
        except Cam2DriveError as exc:
            # storage failed halfway: what was deleted stays deleted, the
            # subscription stays blocked, and the next pass finishes the job
            session.rollback()
            sub.checked_at = None  # due again at once, whatever the recheck period
            session.add(sub)
            audit.subscription(session, sub_id, "deletion_interrupted", str(exc), actor="billing")
            session.commit()
            report.errors.append({"subscription": sub_id, "error": str(exc)})
            return
        report.deleted.append({"subscription": sub_id, "objects": objects, "bytes": size})
        _finish(session, dry_run)


def _finish(session: Session, dry_run: bool) -> None:
    if dry_run:
        session.rollback()
    else:
        session.commit()


def merged(reports: Mapping[str, RunReport]) -> dict[str, Any]:
    """One report from the passes of several accounts: lists joined, the feed per currency."""
    out: dict[str, Any] = {}
    for currency, report in reports.items():
        for key, value in report.as_dict().items():
            if isinstance(value, list):
                out.setdefault(key, []).extend(value)
            elif key == "feed":
                out.setdefault("feed", {})[currency] = value
            else:
                out[key] = value
    return out


def billing_cycle(
    engine: Engine,
    mp: OneOrByCurrency,
    purger: DrivePurger,
    invoicing: Invoicing,
    settings: Settings,
    today: date,
    *,
    dry_run: bool = False,
) -> dict[str, Any]:
    """What `billing run` and the scheduler do: the pass, then its invoices and notices.

    Invoicing and notifications come after the pass and cannot stop it: a
    PAC or CSD problem is reported and retried next time, never raised.
    """
    from billing.invoicing.invoices import issue_pending
    from billing.notify.outbox import collect

    if isinstance(mp, Mapping):  # a pass per Mercado Pago account, each its currency's plans
        if not dry_run:
            drain(engine, mp, today, settings.billing_day, settings.pending_expiry_days)
        report = merged(
            {
                currency: billing_pass(
                    engine, account, purger, settings, today, dry_run=dry_run, currency=currency
                )
                for currency, account in mp.items()
            }
        )
    else:
        report = billing_pass(engine, mp, purger, settings, today, dry_run=dry_run).as_dict()
    if dry_run:
        return report
    try:
        report["invoices"] = issue_pending(invoicing).as_dict()
    except Cam2DriveError as exc:
        report["invoices"] = {"error": str(exc)}
    report["notifications_queued"] = collect(engine, settings).queued
    return report
