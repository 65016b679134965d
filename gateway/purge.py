"""Deleting a whole drive: its S3 objects, then its index rows, in billing's transaction.

Billing decides *when* a drive goes (billing/dunning.py); this decides *how*,
because only the gateway knows the index and the store. cli/ hands an
instance to billing as its `DrivePurger`.
"""

from __future__ import annotations

from sqlalchemy import CursorResult, delete, update
from sqlmodel import Session

from billing.core.models import Drive, DriveEntry
from gateway.store import S3DriveStore


class DrivePurge:
    def __init__(self, store: S3DriveStore) -> None:
        self.store = store

    def purge(self, session: Session, drive: Drive) -> tuple[int, int, int]:
        objects, size = self.store.delete_prefix(drive.prefix)
        entries = DriveEntry.__table__  # type: ignore[attr-defined]
        drives = Drive.__table__  # type: ignore[attr-defined]
        deleted = session.execute(delete(entries).where(entries.c.drive_id == drive.id))
        assert isinstance(deleted, CursorResult)  # what a DELETE gives
        indexed = deleted.rowcount
        session.execute(
            update(drives)
            .where(drives.c.id == drive.id)
            .values(committed_bytes=0, object_count=0, capacity_bytes=0)
        )
        return objects, size, indexed
