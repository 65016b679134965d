"""A gateway process's Prometheus metrics: uploads, bytes, commit latency, sessions.

Each is a counter increment or a histogram observation at the end of a
file (never per data block), labelled by protocol and outcome only, never
by device. Served on `metrics_host:metrics_port` when that is set (worker
i of a node on metrics_port + i). Reservations, bans, contracts and
billing are reported by the HTTP service's /metrics from the database.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from billing.core import errors
from billing.core.settings import Settings

log = logging.getLogger("cam2drive.metrics")

UPLOADS = Counter(
    "cam2drive_uploads", "Files uploaded, by protocol and outcome", ["protocol", "outcome"]
)
UPLOAD_BYTES = Counter("cam2drive_upload_bytes", "Bytes committed to drives", ["protocol"])
COMMIT_SECONDS = Histogram(
    "cam2drive_commit_seconds",
    "From the end of a file's data to its acknowledgement (S3 complete + index)",
    ["protocol"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SESSIONS = Gauge("cam2drive_sessions", "Logged-in sessions", ["protocol", "kind"])

_OUTCOMES: list[tuple[type[errors.Cam2DriveError], str]] = [
    (errors.NotEntitled, "refused"),
    (errors.QuotaExceeded, "quota"),
    (errors.UploadAborted, "aborted"),
]


def upload_committed(protocol: str, size: int, seconds: float) -> None:
    UPLOADS.labels(protocol, "committed").inc()
    UPLOAD_BYTES.labels(protocol).inc(size)
    COMMIT_SECONDS.labels(protocol).observe(seconds)


def upload_failed(protocol: str, exc: BaseException | None) -> None:
    """`exc` None: the client went away before the file was complete."""
    outcome = "aborted" if exc is None else "failed"
    for cls, name in _OUTCOMES:
        if isinstance(exc, cls):
            outcome = name
            break
    UPLOADS.labels(protocol, outcome).inc()


def serve(settings: Settings) -> None:
    """Start the /metrics listener on a daemon thread if `metrics_port` is set."""
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.metrics_host)
        log.info("metrics on http://%s:%s/metrics", settings.metrics_host, settings.metrics_port)
