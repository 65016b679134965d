"""A gateway's Prometheus metrics: uploads by protocol and outcome, bytes, commit latency."""

from __future__ import annotations

import ftplib

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from cli.devstack.seaweed import free_port
from gateway import metrics
from tests.support.stack import Stack, put


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_uploads_counted_by_protocol_and_outcome(stack: Stack) -> None:
    ok, refused = stack.device(capacity="1MB"), stack.device(grant=False)
    committed = sample("cam2drive_uploads_total", protocol="ftp", outcome="committed")
    denied = sample("cam2drive_uploads_total", protocol="ftp", outcome="refused")
    quota = sample("cam2drive_uploads_total", protocol="ftp", outcome="quota")
    size = sample("cam2drive_upload_bytes_total", protocol="ftp")
    commits = sample("cam2drive_commit_seconds_count", protocol="ftp")
    with stack.ftp(ok) as ftp:
        put(ftp, "a.jpg", b"x" * 1000)
        with pytest.raises(ftplib.error_perm, match="^552"):
            put(ftp, "b.jpg", b"x" * 1_000_001)  # larger than the drive
    with stack.ftp(refused) as ftp, pytest.raises(ftplib.error_perm, match="^532"):
        put(ftp, "c.jpg", b"x")
    assert sample("cam2drive_uploads_total", protocol="ftp", outcome="committed") == committed + 1
    assert sample("cam2drive_uploads_total", protocol="ftp", outcome="refused") == denied + 1
    assert sample("cam2drive_uploads_total", protocol="ftp", outcome="quota") == quota + 1
    assert sample("cam2drive_upload_bytes_total", protocol="ftp") == size + 1000
    assert sample("cam2drive_commit_seconds_count", protocol="ftp") == commits + 1


def test_metrics_port_serves_them_without_device_labels(stack: Stack) -> None:
    port = free_port()
    metrics.serve(stack.settings.model_copy(update={"metrics_port": port}))
    dev = stack.device()
    with stack.ftp(dev) as ftp:
        put(ftp, "a.jpg", b"frame")
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items())))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert ("cam2drive_uploads_total", (("outcome", "committed"), ("protocol", "ftp"))) in samples
    assert ("cam2drive_sessions", (("kind", "device"), ("protocol", "ftp"))) in samples
    assert dev.username not in text
    assert not any(k in ("device", "device_id", "username") for _, lb in samples for k, _v in lb)
