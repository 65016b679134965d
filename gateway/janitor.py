"""Clean up after crashed gateway nodes.

A node killed mid-upload leaves a reservation whose lease stops being
renewed (for a small file, the intent naming its key) and, for large
files, a multipart upload in S3. Once the lease has
expired the janitor aborts the multipart upload and releases the bytes; it
also aborts multipart uploads under drive prefixes that no live reservation
knows (a crash between CreateMultipartUpload and recording its id).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from billing.core.errors import Cam2DriveError
from billing.core.models import Reservation, utcnow
from billing.core.vocab import DRIVE_ROOT
from gateway.ingest import IngestPipeline

log = logging.getLogger("cam2drive.janitor")


@dataclass
class JanitorReport:
    released_reservations: int = 0
    released_bytes: int = 0
    aborted_uploads: int = 0
    errors: int = 0


def run_janitor(pipeline: IngestPipeline, now: datetime | None = None) -> JanitorReport:
    report = JanitorReport()
    ledger, store = pipeline.ledger, pipeline.store
    expired = ledger.expired(now)
    # A small file's single PutObject may have landed just before its node
    # died: the key was never indexed, so remove it. Most of these keys are
    # intents (gateway/ingest.py SessionIntents) of sessions that died or
    # idled past their lease, never written: one batched request for all.
    singles = [res.key for res in expired if not res.upload_id]
    try:
        store.delete(singles)
    except Cam2DriveError as exc:
        log.warning("cannot delete %d unindexed objects yet: %s", len(singles), exc)
        report.errors += 1
        expired = [res for res in expired if res.upload_id]
    for res in expired:
        try:
            if res.upload_id:
                store.abort_multipart(res.key, res.upload_id)
                report.aborted_uploads += 1
        except Cam2DriveError as exc:
            log.warning("cannot clean up %s yet: %s", res.key, exc)
            report.errors += 1
            continue
        ledger.release(res.id)
        report.released_reservations += 1
        report.released_bytes += res.bytes
        log.info(
            "released expired reservation %s of drive %s (%d bytes, node %s)",
            res.id,
            res.drive_id,
            res.bytes,
            res.node,
        )
    try:
        uploads = store.list_multipart(DRIVE_ROOT)
    except Cam2DriveError as exc:
        log.warning("cannot list multipart uploads: %s", exc)
        report.errors += 1
        return report
    table = Reservation.__table__  # type: ignore[attr-defined]
    with pipeline.engine.connect() as conn:
        live = {row.upload_id for row in conn.execute(select(table.c.upload_id)).all()}
    # An upload created a moment ago may not have its id recorded yet: only
    # abort unknown uploads initiated before the lease period.
    cutoff = (now or utcnow()) - ledger.lease
    for key, upload_id, initiated in uploads:
        if upload_id in live or (initiated is not None and initiated > cutoff):
            continue
        try:
            store.abort_multipart(key, upload_id)
            report.aborted_uploads += 1
            log.info("aborted orphan multipart upload %s", key)
        except Cam2DriveError:
            report.errors += 1
    return report
