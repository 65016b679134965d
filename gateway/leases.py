"""Leases of live uploads, renewed while their sessions live; stalled uploads ended.

A reservation's lease is how the janitor tells a live node from a dead one.
It used to be renewed only as data arrived, so a recorder that paused
longer than the lease (a slow uplink, a firmware idling mid-clip) lost its
reservation to the janitor and its commit was refused for good (550). One
thread per gateway process now renews the lease of every live upload, in
one statement, every third of the lease, whether data arrives or not; a
node that dies stops renewing, which is all the lease is for.

The same thread ends uploads that received nothing for `stall` seconds
while the gateway was ready to take more (no write, S3 wait or commit in
progress): such an upload holds a reservation, a stream thread and an S3
request while the recorder has given up or hung. It is failed with
`UploadStalled` (a transient error: FTP 451, an SFTP failure status), its
frontend aborts it and the reservation goes back; the recorder still has
the file and sends it again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from billing.core.errors import StorageUnavailable

log = logging.getLogger("cam2drive.leases")


class UploadStalled(StorageUnavailable):
    """No data arrived for the stall limit: the upload is ended, nothing stored."""


class LeasedUpload(Protocol):
    """What the keeper needs of an upload (gateway/ingest.py Upload)."""

    def lease_id(self) -> str | None: ...

    def stall_if_idle(self, limit: float, now: float) -> bool: ...


class LeaseRenewer(Protocol):
    @property
    def lease_seconds(self) -> float: ...

    def renew(self, rids: list[str]) -> set[str]: ...


class LeaseKeeper:
    """Renews the leases of a process's live uploads; ends the stalled ones.

    The thread runs only while there are uploads, so a process (or a test)
    with many pipelines keeps no idle threads.
    """

    def __init__(self, ledger: LeaseRenewer, stall: float) -> None:
        self.ledger = ledger
        self.stall = stall
        self.renew_every = ledger.lease_seconds / 3
        # a stall is noticed within a quarter of the limit, a lease renewed
        # within a third of its length
        self.tick = max(0.1, min(self.renew_every, stall / 4))
        self._live: set[LeasedUpload] = set()
        self._lock = threading.Lock()
        self._running = False
        self.renewals = 0  # statements run: for tests and metrics
        self.stalled = 0  # uploads ended for want of data

    def add(self, upload: LeasedUpload) -> None:
        with self._lock:
            self._live.add(upload)
            if self._running:
                return
            self._running = True
        threading.Thread(target=self._run, name="lease-keeper", daemon=True).start()

    def discard(self, upload: LeasedUpload) -> None:
        with self._lock:
            self._live.discard(upload)

    def live(self) -> list[LeasedUpload]:
        with self._lock:
            return list(self._live)

    def _run(self) -> None:
        renewed = time.monotonic()
        while True:
            time.sleep(self.tick)
            with self._lock:
                if not self._live:
                    self._running = False
                    return
                live = list(self._live)
            now = time.monotonic()
            for upload in live:
                try:
                    if upload.stall_if_idle(self.stall, now):
                        self.stalled += 1
                except Exception:  # noqa: BLE001  (a frontend hook's bug must not stop renewals)
                    log.exception("ending a stalled upload failed")
            if now - renewed >= self.renew_every:
                renewed = now
                self.renew_now(live)

    def renew_now(self, uploads: Iterable[LeasedUpload]) -> None:
        """One statement for every upload that holds a reservation."""
        rids = [rid for rid in (u.lease_id() for u in uploads) if rid is not None]
        if not rids:
            return
        try:
            held = self.ledger.renew(rids)
        except SQLAlchemyError as exc:  # the next tick tries again, well within the lease
            log.warning("could not renew %d upload leases: %s", len(rids), exc)
            return
        self.renewals += 1
        # an upload that committed since `uploads` was read is no loss
        lost = [u for u in self.live() if u.lease_id() in set(rids) - held]
        if lost:  # their commits will say so (451); nothing else to do here
            log.warning("%d live uploads had lost their reservations to the janitor", len(lost))
